"""What vLLM is asked and what its answers mean, as plain Python: a sample's seed and
``SamplingParams`` arguments, the stop strings of a round, and a ``CompletionOutput`` read into a
``Generation`` (the sampled token's log-probability and the top-k entropy, finish reasons, the
prefill ledger). The in-process engine (``vllm_backend``) uses them; nothing here
imports vLLM.
"""

from __future__ import annotations

import math

from siaflow.answers import FINAL_MARKER
from siaflow.generation.backends.base import Decoding, Generation
from siaflow.generation.sampling import stream_key

VLLM_FINISH_REASONS = {"stop": "stop", "length": "length"}  # vLLM CompletionOutput.finish_reason -> ours
LOGPROBS_MODE = "processed_logprobs"


def topk_entropy(step: dict, k: int | None = None) -> float:
    """Entropy (nats) from one step's top-k log-probabilities, the mass outside the top k counted
    as one extra outcome: -sum_i p_i log p_i - r log r with r = 1 - sum_i p_i. Only entries of rank
    <= k count (vLLM adds the sampled token with its own rank when it is not in the top k); with
    ``k`` None, every entry. A lower bound on the full entropy when the rest is spread out."""
    entries = [lp for lp in step.values() if k is None or getattr(lp, "rank", None) is None or lp.rank <= k]
    ps = [math.exp(getattr(lp, "logprob", lp)) for lp in entries]
    rest = max(0.0, 1.0 - sum(ps))
    return -sum(p * math.log(p) for p in ps if p > 0) - (rest * math.log(rest) if rest > 0 else 0.0)


def seed31(key: int) -> int:
    """A 31-bit vLLM seed from a 62-bit stream key."""
    return int(key % (2**31 - 1))


def sample_seed(key: int, round_: int = 0) -> int:
    """The vLLM seed of a sample's round: its stream key's in round 0, a key derived from it later."""
    return seed31(key if round_ == 0 else stream_key("vllm-round", key, round_))


def sampling_args(
    decoding: Decoding,
    *,
    seed: int,
    max_tokens: int,
    stop_token_ids: tuple[int, ...],
    logprobs: int | None = None,
    stop: list[str] | None = None,
) -> dict:
    """Keyword arguments of one ``SamplingParams``: one sample, the decoding config, its seed and
    token budget, stop token ids, top-k log-probs when asked; with ``stop``, stop strings kept in
    the output (and the detokenisation they need), else no detokenisation."""
    args = dict(
        n=1,
        temperature=decoding.temperature,
        top_p=decoding.top_p,
        max_tokens=max_tokens,
        seed=seed,
        stop_token_ids=list(stop_token_ids),
        logprobs=logprobs,
        detokenize=bool(stop),
    )
    if stop:
        args.update(stop=list(stop), include_stop_str_in_output=True)
    return args


def parse_completion(
    completion, *, stop_token_ids: tuple[int, ...], token_stats: bool, k: int | None = None
) -> Generation:
    """One vLLM ``CompletionOutput`` -> ``Generation``: the stop token is dropped from the ids,
    finish reasons map to "stop"/"length", and per token the sampled token's log-probability and
    the top-k entropy (entries of rank <= ``k``) are read from ``completion.logprobs``. In
    ``processed_logprobs`` mode these are of the temperature-scaled nucleus, so the statistics of
    the raw logits (self-certainty, DeepConf's confidence) and the whole-vocabulary entropy cannot
    be read: they are left None, for the scoring pass (``sampling.exact_token_stats``) to fill."""
    reason = VLLM_FINISH_REASONS.get(completion.finish_reason)
    if reason is None:
        raise ValueError(f"vLLM finished a sample with reason {completion.finish_reason!r}")
    ids = list(completion.token_ids)
    steps = list(completion.logprobs) if (token_stats and completion.logprobs is not None) else None
    if reason == "stop" and ids and ids[-1] in stop_token_ids:
        ids = ids[:-1]
        steps = steps[:-1] if steps is not None else None
    if not token_stats:
        return Generation(token_ids=ids, finish_reason=reason)
    if steps is None or len(steps) != len(ids):
        raise ValueError("vLLM returned no per-token logprobs; was SamplingParams.logprobs set?")
    logprobs = [getattr(step[t], "logprob", step[t]) for t, step in zip(ids, steps)]
    return Generation(
        token_ids=ids,
        finish_reason=reason,
        logprobs=logprobs,
        entropies=[topk_entropy(s, k) for s in steps],
    )


def count_work(stats: dict, prompt_lengths: list[int], outputs) -> None:
    """Add one ``generate`` call's work to ``stats``: the prompt tokens each request computed
    (those not served from the prefix cache: ``RequestOutput.num_cached_tokens``) and its sampled
    tokens. Exact for ``n = 1`` requests, the only kind this backend sends."""
    for n, out in zip(prompt_lengths, outputs):
        stats["prefill_tokens"] += n - int(getattr(out, "num_cached_tokens", None) or 0)
        stats["decoded_tokens"] += sum(len(c.token_ids) for c in out.outputs)


def marker_stops(text: str) -> list[str]:
    """Stop strings that end a round where ``####`` completes: the marker, and when ``text`` ends
    with its first characters (``###``), the rest of it (vLLM matches stop strings in the
    generated text only, so a marker split across the prefix and the continuation needs its own)."""
    tail = next((n for n in range(len(FINAL_MARKER) - 1, 0, -1) if text.endswith(FINAL_MARKER[:n])), 0)
    return [FINAL_MARKER] + ([FINAL_MARKER[tail:]] if tail else [])
