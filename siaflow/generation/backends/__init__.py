"""Rollout backends behind one interface (``base.Backend``), chosen by name from config.

``REGISTRY`` maps a backend name (``models.<name>.backend``) to ``"module:Class"``; the module is
imported only when its backend is built, so analysis code never needs torch or vLLM. A new engine
is a ``Backend`` subclass, its settings (``engine_settings``) and one line here and there.
A backend is built from an ``EngineSettings`` (``open_backend``): from the config by
``backend_for`` (``engine_for`` reads it), or by ``make_backend`` from keyword options.
"""

from __future__ import annotations

import importlib

from siaflow.generation.backends.base import Backend, BackendInfo, Decoding, Generation, Request
from siaflow.generation.backends.engine_settings import (
    EngineSettings,
    ServerSettings,
    TransformersSettings,
    VLLMSettings,
    engine_of,
)

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


def open_backend(settings: EngineSettings) -> Backend:
    """The backend ``settings`` name, started on its weights with its kind's settings."""
    cls = backend_class(settings.backend)
    return cls(settings.model, settings.engine, revision=settings.revision, label=settings.label)


def make_backend(name: str, model: str, *, revision: str | None = None, label: str | None = None, **options) -> Backend:
    """The backend ``name`` for ``model`` (a local directory or hub id); ``options`` are fields of
    its kind's settings (``engine_settings``), and one it does not take is an error naming it."""
    engine = engine_of(name, options, f"make_backend({name!r})")
    return open_backend(EngineSettings(name, model, engine, revision=revision, label=label))


def backend_for(model_spec: dict, sampling: dict, label: str | None = None) -> Backend:
    """The backend of a configured model (``models.<name>``) under the ``sampling`` settings."""
    return open_backend(engine_for(model_spec, sampling, label))


def engine_for(model_spec: dict, sampling: dict, label: str | None = None) -> EngineSettings:
    """How a configured model's engine runs, the one place it is read from the config: a vLLM
    engine from ``models.<name>.vllm`` (its tensor parallelism from the model's GPUs when unset),
    a served model from ``models.<name>.server``, the transformers backend from ``sampling``
    (``batch_rows``, ``share_rows``); the model's ``dtype`` for both engines that load weights."""
    backend, where = model_spec.get("backend", "transformers"), f"models.{label or '<name>'}"
    dtype = model_spec.get("dtype", "auto")
    if backend == "openai":
        engine = engine_of(backend, server_options(model_spec), f"{where}.server")
    elif backend == "vllm":
        engine = engine_of(backend, {"dtype": dtype, **vllm_options(model_spec)}, f"{where}.vllm")
    else:
        options = {"dtype": dtype, "batch_rows": sampling["batch_rows"], "share_rows": sampling["share_rows"]}
        engine = engine_of(backend, options, where)
    return EngineSettings(backend, model_spec["path"], engine, revision=model_spec.get("revision"), label=label)


def scorer_for(model_spec: dict, engine: Backend, label: str | None = None) -> Backend:
    """The transformers backend that scores an engine's rollouts exactly (the scoring pass): the
    same weights, in the dtype the engine ran in, DeepConf's k = the engine's top k."""
    dtype = str(engine.info.settings.get("dtype", model_spec.get("dtype", "auto"))).removeprefix("torch.")
    options = TransformersSettings(dtype=dtype, confidence_top_k=getattr(engine, "logprobs", 20))
    revision = model_spec.get("revision")
    return open_backend(EngineSettings("transformers", model_spec["path"], options, revision=revision, label=label))


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
    "EngineSettings",
    "ServerSettings",
    "TransformersSettings",
    "VLLMSettings",
    "make_backend",
    "open_backend",
    "backend_for",
    "engine_for",
    "scorer_for",
    "server_options",
    "vllm_options",
    "BACKENDS",
    "REGISTRY",
]
