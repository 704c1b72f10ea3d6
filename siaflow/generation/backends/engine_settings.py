"""How a model's engine is run, gathered in named settings: one frozen object per engine kind
(``TransformersSettings``, ``VLLMSettings``, ``ServerSettings``), and ``EngineSettings``, which
names the backend, the weights and the label errors name the model by. The draw side is
``siaflow.generation.settings.DrawSettings``.

They are built from the config in one place (``backends.engine_for``: ``models.<name>`` with its
``vllm`` or ``server`` block, and ``sampling``), or by ``make_backend`` from keyword options; a
backend's constructor takes its kind's object whole. What resumable parts depend on is not read
from here but from the engine the backend started (``BackendInfo.settings``: vLLM's version, the
dtype it chose, its context).
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class TransformersSettings:
    """The transformers backend: ``dtype`` (``auto``: float32 on a CPU), ``device`` (``auto``: CUDA
    when there is one), model rows per batch, row sharing between samples with the same token
    history, DeepConf's k (``confidence_top_k``, vLLM's ``logprobs`` in the scoring pass)."""

    dtype: str = "auto"
    device: str = "auto"
    batch_rows: int = 256
    share_rows: bool = True
    confidence_top_k: int = 20
    stop_token_ids: tuple[int, ...] = ()
    trust_remote_code: bool = False


@dataclass(frozen=True)
class VLLMSettings:
    """vLLM's offline engine: ``models.<name>.vllm`` (docs/backends.md, Engine settings) and the
    model's ``dtype``; ``seed`` is the engine's own (every request carries its stream key's)."""

    dtype: str = "auto"
    seed: int = 0
    logprobs: int = 20
    stop_token_ids: tuple[int, ...] = ()
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = False
    kv_cache_gib: float | None = None
    block_size: int | None = None


@dataclass(frozen=True)
class ServerSettings:
    """A served model: ``models.<name>.server`` (``served_model`` is its ``model`` key: the name the
    server serves it under, the model's path when unset). The API key is read from the
    environment variable ``api_key_env`` names, never kept here."""

    base_url: str
    served_model: str | None = None
    api_key_env: str | None = None
    logprobs: int = 20
    max_concurrency: int = 8
    timeout_s: float = 600.0
    retries: int = 4
    stop_token_ids: tuple[int, ...] = ()


KINDS = {"transformers": TransformersSettings, "vllm": VLLMSettings, "openai": ServerSettings}
Engine = TransformersSettings | VLLMSettings | ServerSettings


def engine_of(backend: str, options: dict, where: str) -> Engine:
    """The settings of ``backend`` from ``options``; an option it does not take is named, as
    ``where`` (the config block, or the caller) spells it, with the ones it takes."""
    if backend not in KINDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {tuple(KINDS)}")
    cls = KINDS[backend]
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"{where}: {', '.join(unknown)} is not a setting of backend {backend!r}; it takes {known}")
    return cls(**options)


@dataclass(frozen=True)
class EngineSettings:
    """Which backend runs a model, on which weights (a local directory or hub id, at ``revision``),
    named ``label`` in errors, with its kind's settings (``engine``)."""

    backend: str
    model: str
    engine: Engine
    revision: str | None = None
    label: str | None = None

    def __post_init__(self):
        if self.backend not in KINDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {tuple(KINDS)}")
        if not isinstance(self.engine, KINDS[self.backend]):
            raise TypeError(f"backend {self.backend!r} takes {KINDS[self.backend].__name__}, not {self.engine!r}")
