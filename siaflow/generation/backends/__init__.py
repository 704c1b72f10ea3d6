"""Rollout backends behind one interface (``base.Backend``), chosen by name from config.

``REGISTRY`` maps a backend name (``models.<name>.backend``) to ``"module:Class"``; the module is
imported only when its backend is built, so analysis code never needs torch or vLLM. A new engine
is a ``Backend`` subclass and one line here.
"""

from __future__ import annotations

import importlib
import inspect

from siaflow.generation.backends.base import Backend, BackendInfo, Decoding, Generation, Request

REGISTRY = {
    "transformers": "siaflow.generation.backends.hf:TransformersBackend",
    "vllm": "siaflow.generation.backends.vllm_backend:VLLMBackend",
    "openai": "siaflow.generation.backends.served:ServedBackend",
}
BACKENDS = tuple(REGISTRY)


def backend_class(name: str) -> type[Backend]:
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(name: str, model: str, *, revision: str | None = None, **options) -> Backend:
    """Build the backend ``name`` for ``model`` (a local directory or hub id). Options the backend's
    constructor does not take are dropped (vLLM schedules its own batches: no ``batch_rows``)."""
    cls = backend_class(name)
    accepted = inspect.signature(cls.__init__).parameters
    return cls(model, revision=revision, **{k: v for k, v in options.items() if k in accepted})


def backend_for(model_spec: dict, sampling: dict, label: str | None = None) -> Backend:
    """The backend of a configured model (``models.<name>``) under the ``sampling`` settings; a vLLM
    engine takes ``models.<name>.vllm``, its tensor parallelism from the model's GPUs when unset,
    and a served model ``models.<name>.server``."""
    backend = model_spec.get("backend", "transformers")
    options = server_options(model_spec) if backend == "openai" else vllm_options(model_spec)
    return make_backend(
        backend,
        model_spec["path"],
        revision=model_spec.get("revision"),
        dtype=model_spec.get("dtype", "auto"),
        batch_rows=sampling["batch_rows"],
        share_rows=sampling["share_rows"],
        label=label,
        **options,
    )


def server_options(model_spec: dict) -> dict:
    """``models.<name>.server`` as the served backend's options (``model`` is the served name)."""
    opts = {k: v for k, v in (model_spec.get("server") or {}).items() if v is not None}
    if "model" in opts:
        opts["served_model"] = opts.pop("model")
    return opts


def vllm_options(model_spec: dict) -> dict:
    """``models.<name>.vllm`` with ``tensor_parallel_size`` filled in: the model's
    ``resources.gpu`` (at least 1) when not given."""
    opts = {k: v for k, v in (model_spec.get("vllm") or {}).items() if v is not None}
    if "tensor_parallel_size" not in opts:
        opts["tensor_parallel_size"] = max(1, int((model_spec.get("resources") or {}).get("gpu") or 1))
    return opts


__all__ = [
    "Backend",
    "BackendInfo",
    "Decoding",
    "Generation",
    "Request",
    "make_backend",
    "backend_for",
    "vllm_options",
    "BACKENDS",
    "REGISTRY",
]
