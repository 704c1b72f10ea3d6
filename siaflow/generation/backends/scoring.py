"""Exact per-token statistics of responses another engine sampled: one teacher-forced forward
pass per response through the transformers model.

vLLM returns, per generated token, only the top-k log-probabilities of the distribution it sampled
from (``processed_logprobs``), so its entropy is a lower bound, and the statistics of the raw
logits (self-certainty, DeepConf's confidence) and the whole-vocabulary entropy are missing.
Where the nucleus is wide the bound is far off: at temperature 1 / top-p 1, SmolLM2's top-20
entropy missed the exact one by up to 4 nats. Scoring the sampled tokens once through the same
weights gives, at each position, the model's logits, and from them exactly what the transformers
backend records while sampling (``siaflow.generation.sampling.distribution_stats``). The cost is
one forward pass per response, small next to the K continuations of each of its checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from siaflow.generation.backends.base import Decoding, progress_bar
from siaflow.generation.backends.hf import left_padded
from siaflow.generation.sampling import distribution_stats


@dataclass
class Scored:
    """One response's statistics, a value per token (as ``Generation`` holds them)."""

    logprobs: list[float]
    entropies: list[float]
    entropies_full: list[float]
    self_certainty: list[float]
    confidence: list[float]


def score_responses(
    backend,
    prompts: list[list[int]],
    responses: list[list[int]],
    decoding: Decoding,
    *,
    batch_tokens: int = 4096,
    progress: str | None = None,
) -> list[Scored]:
    """Per-token statistics of each ``responses[i]`` as a continuation of ``prompts[i]`` under
    ``decoding``, from ``backend`` (a ``TransformersBackend``: its model, device and DeepConf k).

    Sequences are left-padded into batches of at most ``batch_tokens`` positions (a sequence
    longer than that is a batch of its own); the attention mask and positions counted from each
    sequence's own start keep the padding out of every logit."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(responses[i]))
    batches, cur, width = [], [], 0
    for i in order:
        n = len(prompts[i]) + len(responses[i])
        if cur and max(width, n) * (len(cur) + 1) > batch_tokens:
            batches.append(cur)
            cur, width = [], 0
        cur.append(i)
        width = max(width, n)
    if cur:
        batches.append(cur)
    out: list[Scored | None] = [None] * len(prompts)
    bar = progress_bar(len(prompts), progress)
    with torch.inference_mode():
        for batch in batches:
            for i, scored in zip(
                batch, _score_batch(backend, [prompts[i] for i in batch], [responses[i] for i in batch], decoding)
            ):
                out[i] = scored
            if bar is not None:
                bar.update(len(batch))
    if bar is not None:
        bar.close()
    return out  # type: ignore[return-value]


def _score_batch(backend, prompts, responses, decoding: Decoding) -> list[Scored]:
    """One forward pass over a batch, left-padded so that every response ends at the last column;
    only the last ``max(T) + 1`` positions' logits are computed (``logits_to_keep``): the vocabulary
    projection of the prompts would cost more than the pass itself."""
    seqs = [list(p) + list(r) for p, r in zip(prompts, responses)]
    keep = max(len(r) for r in responses) + 1
    ids, att, pos = (x.to(backend.device) for x in left_padded(seqs, backend.pad_id))  # (batch, width)
    args = dict(input_ids=ids, attention_mask=att, position_ids=pos)
    try:
        logits = backend.model(**args, logits_to_keep=keep).logits  # (batch, keep, vocab)
    except TypeError:  # a model class without logits_to_keep: every position's logits
        logits = backend.model(**args).logits[:, -keep:]
    backend.stats["prefill_tokens"] += sum(len(s) for s in seqs)
    out = []
    for b, r in enumerate(responses):
        if not r:
            out.append(Scored([], [], [], [], []))
            continue
        # column c predicts the token at column c + 1: the response's tokens are the last len(r)
        rows = logits[b, keep - 1 - len(r) : keep - 1].float().cpu()  # (T, vocab)
        stats = distribution_stats(
            rows,
            torch.tensor(r, dtype=torch.long),
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            k=backend.confidence_top_k,
        )
        out.append(Scored(**{name: v.float().tolist() for name, v in stats.items()}))
    return out
