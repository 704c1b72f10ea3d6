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
    """KL(U || pi) = -log V - (1/V) sum_v log pi(v) per row (nats). Log-probabilities of exactly
    zero-probability tokens (masked logits) are floored at ``floor`` so the value stays finite."""
    V = logprobs.shape[-1]
    return -math.log(V) - logprobs.clamp(min=floor).mean(-1)


def token_confidence(logprobs: torch.Tensor, k: int) -> torch.Tensor:
    """DeepConf's token confidence ``-(1/k) sum_j log p(j)`` over the k most likely tokens of each
    row (Fu et al. 2025, "Deep Think with Confidence", eq. 2). Tokens of zero probability (outside
    a top-p nucleus, ``-inf``) are left out, so k is at most the nucleus size."""
    top = logprobs.topk(min(k, logprobs.shape[-1]), dim=-1).values
    finite = torch.isfinite(top)
    return -torch.where(finite, top, torch.zeros_like(top)).sum(-1) / finite.sum(-1).clamp(min=1)


def distribution_stats(logprobs: torch.Tensor, top_p: float, k: int, nucleus=None):
    """Per row of temperature-scaled log-probabilities: the distribution a token is drawn from
    (renormalised over the top-p nucleus, ``nucleus_logprobs``), its entropy, the self-certainty of
    the whole row (it needs every token: before top-p) and DeepConf's confidence of its top ``k``.
    What the transformers backend records while sampling and the scoring pass records afterwards."""
    sampled = nucleus_logprobs(logprobs, top_p, nucleus)
    return sampled, token_entropy(sampled), self_certainty(logprobs), token_confidence(sampled, k)


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
