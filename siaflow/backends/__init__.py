"""Rollout backends behind one interface; ``make_backend`` picks one by name from config."""

from __future__ import annotations

from siaflow.backends.base import Backend, BackendInfo, Decoding, Generation, Request

BACKENDS = ("transformers", "vllm")


def make_backend(name: str, model: str, *, revision: str | None = None, **options) -> Backend:
    """Build the backend ``name`` for ``model`` (a local directory or hub id).

    Heavy engines are imported only when chosen, so analysis code never needs them.
    """
    if name == "transformers":
        from siaflow.backends.hf import TransformersBackend

        return TransformersBackend(model, revision=revision, **options)
    if name == "vllm":
        from siaflow.backends.vllm_backend import VLLMBackend

        options.pop("batch_rows", None)  # vLLM schedules its own batches
        options.pop("share_rows", None)  # and shares only the prompt (prefix caching)
        return VLLMBackend(model, revision=revision, **options)
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")


__all__ = ["Backend", "BackendInfo", "Decoding", "Generation", "Request", "make_backend", "BACKENDS"]
