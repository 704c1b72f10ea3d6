"""Seeded, batch-invariant sampling primitives shared by every backend that samples itself.

Each generated row carries a 62-bit *stream key* derived from (seed, question, trajectory,
checkpoint, sample, variant). The uniform number used at generation step ``t`` is a hash of
(key, t), so a row draws the same tokens whatever batch it shares, whatever order rows finish in,
and whether or not its prefix KV cache was shared with other rows. That is what makes resumed
shards and cache-sharing optimisations produce identical samples.
"""

from __future__ import annotations

import hashlib
import math

import torch

_MASK32 = 0xFFFFFFFF
_MIX = 0x45D9F3B  # < 2**27, so products stay inside int64


def stream_key(*parts) -> int:
    """A stable 62-bit key from any printable parts (seed, ids, indices...)."""
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") >> 2


def _mix32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = (x * _MIX) & _MASK32
    x = x ^ (x >> 16)
    x = (x * _MIX) & _MASK32
    return x ^ (x >> 16)


def uniforms(keys: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
    """Uniform(0, 1) float64 numbers, one per key, a pure function of (key, step)."""
    keys = keys.to(torch.int64)
    lo, hi = keys & _MASK32, (keys >> 32) & _MASK32
    step = torch.as_tensor(step, dtype=torch.int64)
    x = _mix32(lo ^ ((step * 0x9E3779B1) & _MASK32))
    x = _mix32(x ^ hi)
    x = _mix32(x ^ ((step * 0x7F4A7C15 + 0x632BE5AB) & _MASK32))
    return (x.to(torch.float64) + 0.5) / 4294967296.0


def token_entropy(logprobs: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary entropy ``-sum p log p`` (nats) of each row of log-probabilities."""
    p = logprobs.exp()
    return -(p * torch.where(p > 0, logprobs, torch.zeros_like(logprobs))).sum(-1)


def self_certainty(logprobs: torch.Tensor, floor: float = -1e4) -> torch.Tensor:
    """Self-certainty KL(U || p) = -log V - (1/V) sum_v log p(v) per row (nats), as Kang et al.
    compute it (backprop07/Self-Certainty, ``src/confidence_list.py: confidence_logits``:
    ``-1/V * sum(log_softmax(logits) + log V)``), from the model's raw logits (temperature 1,
    before top-p): pass ``log_softmax(logits)``. Log-probabilities of exactly zero-probability
    tokens (masked logits) are floored at ``floor`` so the value stays finite."""
    V = logprobs.shape[-1]
    return -math.log(V) - logprobs.clamp(min=floor).mean(-1)


def token_confidence(raw: torch.Tensor, k: int, tokens: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """DeepConf's token confidence as its authors compute it (facebookresearch/deepconf,
    ``deepconf/utils.py: compute_confidence``): minus the mean log-probability of the entries vLLM
    returns for the step with ``logprobs=k`` in its default ``raw_logprobs`` mode, i.e. of the
    model's raw distribution (``raw = log_softmax(logits)``: temperature 1, before top-p): the k
    most likely tokens and, when the sampled token is not among them, that token too (k + 1
    entries; ``vllm/v1/sample/sampler.py: gather_logprobs``). One value per drawn token
    ``tokens[i]``, drawn from model row ``rows[i]`` (default: row i)."""
    rows = torch.arange(len(tokens)) if rows is None else rows
    top_v, top_i = raw.topk(min(k, raw.shape[-1]), dim=-1)
    top_v, top_i = top_v[rows].double(), top_i[rows]
    inside = (top_i == tokens[:, None]).any(-1)
    own = raw[rows, tokens].double()
    total = top_v.sum(-1) + torch.where(inside, torch.zeros_like(own), own)
    return -total / (top_v.shape[-1] + (~inside).double())


def distribution_stats(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    *,
    temperature: float,
    top_p: float,
    k: int,
    rows: torch.Tensor | None = None,
    scaled: torch.Tensor | None = None,
    nucleus=None,
) -> dict[str, torch.Tensor]:
    """The per-token statistics of drawn tokens, from the model's raw ``logits`` (rows, vocab) and
    the decoding: ``tokens[i]`` was drawn from row ``rows[i]`` (default: row i). Each value is
    (len(tokens),), keyed by its ``Generation`` field:

    * ``logprobs``: the token's log-probability under the distribution it was drawn from (logits /
      temperature, renormalised over the top-p nucleus: ``nucleus_logprobs``);
    * ``entropies``: that distribution's entropy;
    * ``entropies_full``: the entropy of the whole temperature-scaled distribution (no top-p);
    * ``self_certainty``: Kang et al.'s, of the raw logits at temperature 1 (``self_certainty``);
    * ``confidence``: DeepConf's, of the raw top ``k`` and the drawn token (``token_confidence``).

    ``scaled``: ``log_softmax(logits / temperature)`` as the caller drew from it (so the statistics
    are of the very rows it sampled); ``nucleus``: ``sorted_nucleus(scaled, top_p)`` if the caller
    has it. What the transformers backend records while sampling and the scoring pass afterwards."""
    logits = logits.float()
    if scaled is None:
        scaled = torch.log_softmax(logits / temperature, dim=-1)
    raw = torch.log_softmax(logits.to(scaled.device), dim=-1)
    rows = torch.arange(len(tokens)) if rows is None else rows
    sampled = nucleus_logprobs(scaled, top_p, nucleus)
    return {
        "logprobs": sampled[rows, tokens],
        "entropies": token_entropy(sampled)[rows],
        "entropies_full": token_entropy(scaled)[rows],
        "self_certainty": self_certainty(raw)[rows],
        "confidence": token_confidence(raw, k, tokens, rows).float(),
    }


def sorted_nucleus(logprobs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities sorted in descending order with the tokens outside the nucleus (the smallest
    set of most probable tokens with mass >= top_p) set to zero, and the sort order. The one
    definition of the nucleus; it keeps the same tokens as vLLM's top-p (``apply_top_k_top_p``)."""
    probs, order = logprobs.exp().to(torch.float64).sort(dim=-1, descending=True)
    before = probs.cumsum(-1) - probs
    return torch.where(before < top_p, probs, torch.zeros_like(probs)), order


def nucleus_logprobs(logprobs: torch.Tensor, top_p: float, nucleus=None) -> torch.Tensor:
    """The distribution a token is sampled from under top-p: ``logprobs`` renormalised over the
    nucleus, -inf outside it (what vLLM returns with ``logprobs_mode="processed_logprobs"``);
    ``logprobs`` itself when top_p = 1. ``nucleus``: ``sorted_nucleus(logprobs, top_p)`` if the
    caller has it already."""
    if top_p >= 1.0:
        return logprobs
    kept, order = nucleus if nucleus is not None else sorted_nucleus(logprobs, top_p)
    keep = torch.zeros_like(kept, dtype=torch.bool).scatter_(-1, order, kept > 0)
    return torch.log_softmax(logprobs.masked_fill(~keep, float("-inf")), dim=-1)


def sample_tokens(logprobs: torch.Tensor, u: torch.Tensor, top_p: float, nucleus=None) -> torch.Tensor:
    """Inverse-CDF sampling of one token per row from ``exp(logprobs)`` restricted to the
    nucleus (smallest set of most probable tokens with mass >= top_p), using uniforms ``u``.
    ``nucleus``: ``sorted_nucleus(logprobs, top_p)`` if the caller has it already."""
    if top_p < 1.0:
        probs, order = nucleus if nucleus is not None else sorted_nucleus(logprobs, top_p)
    else:
        probs, order = logprobs.exp().to(torch.float64), None
    cdf = probs.cumsum(-1)
    target = (u.to(torch.float64) * cdf[:, -1]).unsqueeze(-1)
    idx = torch.searchsorted(cdf, target).clamp_(max=probs.shape[-1] - 1)
    # never land on a zero-probability token (can happen only through rounding at the edge)
    idx = torch.where(probs.gather(-1, idx) > 0, idx, probs.argmax(-1, keepdim=True))
    if order is not None:
        idx = order.gather(-1, idx)
    return idx.squeeze(-1)
