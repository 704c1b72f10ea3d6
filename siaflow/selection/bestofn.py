"""Best-of-N selection from a pool of sampled responses, for any per-response score: the EDIS table
(``siaflow.selection.edis.METHODS``) and the every-selector table (``siaflow.selection.selectors.METHODS``).

A selector either picks the response with the best score, or votes: every (kept) response adds its
weight to its answer and the heaviest answer wins. ``keep`` first keeps the responses whose score is
at least the (1 - keep) percentile of the answered ones' scores (DeepConf's confidence filter,
``deepconf/utils.py: filter_top_confidence``); ``borda`` weighs a response by its rank instead of
its score (Self-Certainty's Borda vote, ``src/voting_from_list.py``). A response without an answer
(NULL) is never picked, never voted for and fills no filter slot. A tie is scored by its expected
accuracy under a uniform random tie-break. Accuracy of a rule at N is the mean over questions of its mean accuracy
over random N-subsets of the question's pool, with a bootstrap CI over questions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl

from siaflow.answers import NULL


class Selector(NamedTuple):
    score: str | None  # the score column (None: random pick, or an unweighted majority vote)
    direction: str | None  # "min" or "max": which end of the score is better
    vote: bool  # vote weighted by the score (vote_weights) instead of picking the best
    keep: float | None = None  # vote among the answered responses at or above the (1 - keep) percentile
    borda: float | None = None  # Borda vote: weight (N - rank + 1) ** borda by rank of score among the N


def vote_weights(scores: np.ndarray, direction: str | None) -> np.ndarray:
    """Weight of each response in a vote: 1 (majority), (s + 0.1)^-1 for lower-is-better
    scores (entropy, EDIS), s for higher-is-better ones (self-certainty, confidence); a response
    without a score weighs 0."""
    if direction is None:
        return np.ones_like(scores, dtype=float)
    w = 1.0 / (scores + 0.1) if direction == "min" else scores.astype(float)
    return np.where(np.isfinite(w), w, 0.0)


def kept_by_score(s: np.ndarray, direction: str, keep: float, answered: np.ndarray | None = None) -> np.ndarray:
    """Per row of ``s`` (draws x N), DeepConf's filter (``deepconf/utils.py: filter_top_confidence``):
    the answered responses whose score is at least the (1 - keep) * 100th percentile (numpy's
    linear interpolation) of the answered responses' scores. A response without an answer or a
    score is never kept, and takes no part in the percentile."""
    answered = np.ones(s.shape, dtype=bool) if answered is None else answered
    better = np.where(np.isfinite(s) & answered, s if direction == "max" else -s, np.nan)
    srt = np.sort(better, axis=1)  # NaN last
    m = np.isfinite(srt).sum(axis=1)
    pos = (1 - keep) * np.maximum(m - 1, 0)
    lo, hi = np.floor(pos).astype(int), np.ceil(pos).astype(int)
    rows = np.arange(len(s))
    threshold = srt[rows, lo] + (pos - lo) * (srt[rows, hi] - srt[rows, lo])
    with np.errstate(invalid="ignore"):
        return (m > 0)[:, None] & (better >= threshold[:, None])


def borda_weights(s: np.ndarray, direction: str, power: float) -> np.ndarray:
    """Per row of ``s`` (draws x N), Self-Certainty's Borda weight (``src/voting_from_list.py``): the
    responses ranked r = 1..N by score (best first; equal scores in their order in the row, as
    Python's stable sort leaves them; a missing score last), weight (N - r + 1) ** power."""
    n = s.shape[1]
    better = np.where(np.isfinite(s), s if direction == "max" else -s, -np.inf)
    order = np.argsort(-better, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(1, n + 1)[None].repeat(len(s), axis=0), axis=1)
    return (n - rank + 1.0) ** power


def _pick_accuracy(c: np.ndarray, s: np.ndarray, answered: np.ndarray, direction: str) -> np.ndarray:
    """Expected accuracy of picking the best-scored answered response (a missing score is worst; no
    answered response: 0)."""
    s = np.where(np.isfinite(s), s if direction == "max" else -s, -np.inf)
    best = np.max(np.where(answered, s, -np.inf), axis=1, keepdims=True)
    tied = answered & (s == best)
    return np.where(tied.any(axis=1), (c * tied).sum(axis=1) / np.maximum(tied.sum(axis=1), 1), 0.0)


def select_accuracy(
    correct: np.ndarray,
    codes: np.ndarray,
    gold_code: int,
    scores: np.ndarray | None,
    selector: Selector,
    idx: np.ndarray,
) -> np.ndarray:
    """Expected accuracy of ``selector`` on each row of ``idx`` (draws x N indices into one
    question's pool). ``codes`` are integer answer codes (-1 = NULL: never picked, never voted for)."""
    c = correct[idx].astype(float)
    if selector.score is None and not selector.vote:
        return c.mean(axis=1)
    direction = selector.direction
    a = codes[idx]
    if not selector.vote:
        return _pick_accuracy(c, scores[idx].astype(float), a >= 0, direction)
    s = scores[idx].astype(float) if scores is not None else np.ones(idx.shape)
    w = borda_weights(s, direction, selector.borda) if selector.borda is not None else vote_weights(s, direction)
    if selector.keep is not None:
        w = w * kept_by_score(s, direction, selector.keep, a >= 0)
    n_codes = int(codes.max()) + 1 if codes.size and codes.max() >= 0 else 0
    if n_codes == 0:
        return np.zeros(len(idx))
    totals = np.zeros((len(idx), n_codes))
    rows = np.repeat(np.arange(len(idx)), idx.shape[1])
    valid = a.ravel() >= 0
    np.add.at(totals, (rows[valid], a.ravel()[valid]), w.ravel()[valid])
    best = totals.max(axis=1, keepdims=True)
    tied = (totals == best) & (best > 0)
    n_tied = tied.sum(axis=1)
    hit = tied[:, gold_code] if 0 <= gold_code < n_codes else np.zeros(len(idx), dtype=bool)
    return np.where(n_tied > 0, hit / np.maximum(n_tied, 1), 0.0)


def best_of_n(
    scores: pl.DataFrame,
    methods: dict[str, Selector],
    *,
    n_values: list[int],
    n_draws: int,
    seed: int,
    n_boot: int,
    ci: float,
) -> pl.DataFrame:
    """Accuracy of every selection rule per model x dataset x N: the mean over questions of each
    question's accuracy averaged over ``n_draws`` random N-subsets of its pool, with a bootstrap CI
    over questions. A question whose pool is smaller than N is skipped and counted."""
    from siaflow.analysis.stats import bootstrap_mean_ci

    out = []
    for (model, dataset), part in scores.sort("question_id", "trajectory").group_by(
        "model", "dataset", maintain_order=True
    ):
        for n in n_values:
            per_q = {m: [] for m in methods}
            skipped = 0
            for qi, (_, pool) in enumerate(part.group_by("question_id", maintain_order=True)):
                P = pool.height
                if P < n:
                    skipped += 1
                    continue
                rng = np.random.default_rng([seed, n, qi])
                idx = rng.permuted(np.tile(np.arange(P), (n_draws, 1)), axis=1)[:, :n]
                answers = pool["answer"].to_list()
                vocab = {a: i for i, a in enumerate(dict.fromkeys(a for a in answers if a != NULL))}
                codes = np.array([vocab.get(a, -1) for a in answers])
                gold_code = vocab.get(pool["gold"][0], -1)
                correct = pool["correct"].to_numpy()
                for m, sel in methods.items():
                    sc = pool[sel.score].to_numpy().astype(float) if sel.score else None
                    per_q[m].append(select_accuracy(correct, codes, gold_code, sc, sel, idx).mean())
            for m, vals in per_q.items():
                vals = np.array(vals, dtype=float)
                mean, lo, hi = (
                    bootstrap_mean_ci(vals, n_boot=n_boot, ci=ci, seed=seed) if vals.size else ([np.nan],) * 3
                )
                out.append(
                    {
                        "model": model,
                        "dataset": dataset,
                        "N": n,
                        "method": m,
                        "accuracy": float(mean[0]),
                        "lo": float(lo[0]),
                        "hi": float(hi[0]),
                        "n_questions": int(vals.size),
                        "n_questions_skipped": skipped,
                    }
                )
    return pl.DataFrame(out)


def wide_table(long: pl.DataFrame, methods) -> pl.DataFrame:
    """``best_of_n``'s long table as one row per model x dataset x N, one accuracy column per rule."""
    return long.pivot(on="method", index=["model", "dataset", "N", "n_questions"], values="accuracy").select(
        "model", "dataset", "N", "n_questions", *methods
    )
