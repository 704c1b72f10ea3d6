"""EDIS: instability of the token-entropy trajectory, and Best-of-N selection (docs/design.md §2, second paper).

Per trajectory, from its token entropies H_1..H_T (1-indexed below, as in the paper):

* burst spikes      S_burst  = #{t <= T - w : H_{t+w} - H_t > tau_b}
* peak-valley spikes S_rebound = #{t >= 2 : H_t - min_{s<t} H_s > tau_r}
* S = (S_burst + S_rebound) / 2 and EDIS = S * (1 + Var(H)) with the population variance;
  lower EDIS = more stable;
* baselines: mean token entropy (lower is better) and self-certainty
  (1/T) sum_t KL(U || pi_t) (higher is better).

Best-of-N draws N-subsets of each question's pool of sampled responses and picks an answer by each
rule; a tie is scored by its expected accuracy under a uniform random tie-break.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from siaflow.answers import NULL


@dataclass(frozen=True)
class EdisParams:
    window: int = 8
    tau_burst: float = 1.36
    tau_rebound: float = 1.33


def burst_spikes(h, window: int, tau: float) -> int:
    """#{t <= T - w : H_{t+w} - H_t > tau}; 0 when T <= w."""
    h = np.asarray(h, dtype=float)
    if len(h) <= window:
        return 0
    return int(np.count_nonzero(h[window:] - h[:-window] > tau))


def rebound_spikes(h, tau: float) -> int:
    """#{t >= 2 : H_t - min_{s<t} H_s > tau}: rebounds above the running minimum."""
    h = np.asarray(h, dtype=float)
    if len(h) < 2:
        return 0
    return int(np.count_nonzero(h[1:] - np.minimum.accumulate(h)[:-1] > tau))


def edis_score(h, params: EdisParams = EdisParams()) -> dict:
    """Spike counts, S, population variance and EDIS of one token-entropy trajectory
    (all NaN for an empty trajectory, which has no entropy to score)."""
    h = np.asarray(h, dtype=float)
    if len(h) == 0:
        nan = math.nan
        return {"n_burst": 0, "n_rebound": 0, "spike_score": nan, "var_entropy": nan, "edis": nan, "mean_entropy": nan}
    nb, nr = burst_spikes(h, params.window, params.tau_burst), rebound_spikes(h, params.tau_rebound)
    s = (nb + nr) / 2
    var = float(h.var())
    return {"n_burst": nb, "n_rebound": nr, "spike_score": s, "var_entropy": var, "edis": s * (1 + var),
            "mean_entropy": float(h.mean())}


def spike_positions(h, params: EdisParams = EdisParams()) -> tuple[np.ndarray, np.ndarray]:
    """0-based token positions of burst spikes (the end t + w of each rising window) and of
    peak-valley spikes, for drawing them on a trajectory."""
    h = np.asarray(h, dtype=float)
    w = params.window
    burst = np.nonzero(h[w:] - h[:-w] > params.tau_burst)[0] + w if len(h) > w else np.array([], dtype=int)
    rebound = np.nonzero(h[1:] - np.minimum.accumulate(h)[:-1] > params.tau_rebound)[0] + 1 if len(h) > 1 else np.array([], dtype=int)
    return burst, rebound


def trajectory_scores(rollouts: pl.DataFrame, params: EdisParams) -> pl.DataFrame:
    """Per trajectory: EDIS and its parts, mean entropy, self-certainty, answer and correctness.
    ``approximate`` is true when the backend saw only top-k log-probabilities."""
    rows = []
    has_sc = "token_self_certainty" in rollouts.columns
    for r in rollouts.iter_rows(named=True):
        h = r["token_entropy"] or []
        sc = r["token_self_certainty"] if has_sc else None
        rows.append({"model": r["model"], "dataset": r["dataset"], "question_id": r["question_id"],
                     "trajectory": r["trajectory"], "answer": r["answer"], "gold": r["gold"], "correct": r["correct"],
                     "T": len(h), **edis_score(h, params),
                     "self_certainty": float(np.mean(sc)) if sc else math.nan})
    return pl.DataFrame(rows)


def example_trajectories(rollouts: pl.DataFrame, params: EdisParams, per_class: int) -> pl.DataFrame:
    """The trajectories Fig. EDIS-1 draws, one row per token (t, H, burst, rebound): per model x
    dataset and class (correct / incorrect), the ``per_class`` responses with the most spikes, one
    per question (a confident model repeats the same trace), ties broken by id, so the choice is
    deterministic and shows the patterns."""
    rows = []
    for (model, dataset), part in rollouts.group_by("model", "dataset", maintain_order=True):
        for correct in (True, False):
            cand = part.filter(pl.col("correct") == correct)
            ranked = sorted(cand.iter_rows(named=True), key=lambda r: (
                -sum(map(len, spike_positions(r["token_entropy"] or [], params))), r["question_id"], r["trajectory"]))
            chosen, seen = [], set()
            for r in ranked:
                if r["question_id"] not in seen and len(chosen) < per_class:
                    seen.add(r["question_id"])
                    chosen.append(r)
            for r in chosen:
                h = r["token_entropy"] or []
                burst, rebound = (set(p.tolist()) for p in spike_positions(h, params))
                rows += [{"model": model, "dataset": dataset, "question_id": r["question_id"],
                          "trajectory": r["trajectory"], "correct": correct, "t": t, "H": float(v),
                          "burst": t in burst, "rebound": t in rebound} for t, v in enumerate(h)]
    return pl.DataFrame(rows)


# score -> sign that makes "higher means more likely correct"
SEPARATION_SCORES = {"edis": -1, "mean_entropy": -1, "self_certainty": 1}


def separation_aucs(scores: pl.DataFrame) -> pl.DataFrame:
    """Per model x dataset and score: ROC AUC of the signed score for correctness (Fig. EDIS-2)."""
    from siaflow.stats import roc_auc

    rows = []
    for (model, dataset), part in scores.group_by("model", "dataset", maintain_order=True):
        for score, sign in SEPARATION_SCORES.items():
            rows.append({"model": model, "dataset": dataset, "score": score,
                         "auc": roc_auc(sign * part[score].to_numpy(), part["correct"].to_numpy()),
                         "n_correct": int(part["correct"].sum()), "n_incorrect": int((~part["correct"]).sum())})
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Best-of-N
# --------------------------------------------------------------------------------------------

# method -> (score column, "min" or "max", weighted vote?)
METHODS = {
    "random": (None, None, False),
    "majority": (None, None, True),
    "mean_entropy": ("mean_entropy", "min", False),
    "self_certainty": ("self_certainty", "max", False),
    "edis": ("edis", "min", False),
    "weighted_mean_entropy": ("mean_entropy", "min", True),
    "weighted_self_certainty": ("self_certainty", "max", True),
    "weighted_edis": ("edis", "min", True),
}


def vote_weights(scores: np.ndarray, direction: str | None) -> np.ndarray:
    """Weight of each response in a vote: 1 (majority), (s + 0.1)^-1 for lower-is-better
    scores (entropy, EDIS), s for self-certainty; a response without a score weighs 0."""
    if direction is None:
        return np.ones_like(scores, dtype=float)
    w = 1.0 / (scores + 0.1) if direction == "min" else scores.astype(float)
    return np.where(np.isfinite(w), w, 0.0)


def select_accuracy(correct: np.ndarray, codes: np.ndarray, gold_code: int, scores: np.ndarray | None,
                    method: str, idx: np.ndarray) -> np.ndarray:
    """Expected accuracy of ``method`` on each row of ``idx`` (draws x N indices into one
    question's pool). ``codes`` are integer answer codes (-1 = NULL, never voted for)."""
    col, direction, vote = METHODS[method]
    c = correct[idx].astype(float)
    if method == "random":
        return c.mean(axis=1)
    if not vote:
        s = scores[idx].astype(float)
        s = np.where(np.isfinite(s), s, np.inf if direction == "min" else -np.inf)
        best = s.min(axis=1, keepdims=True) if direction == "min" else s.max(axis=1, keepdims=True)
        tied = s == best
        return (c * tied).sum(axis=1) / tied.sum(axis=1)
    w = vote_weights(scores[idx] if scores is not None else np.ones(idx.shape), direction)
    a = codes[idx]
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


def best_of_n(scores: pl.DataFrame, *, n_values: list[int], n_draws: int, seed: int, n_boot: int, ci: float) -> pl.DataFrame:
    """Accuracy of every selection rule per model x dataset x N: the mean over questions of each
    question's accuracy averaged over ``n_draws`` random N-subsets of its pool, with a bootstrap CI
    over questions. A question whose pool is smaller than N is skipped and counted."""
    from siaflow.stats import bootstrap_mean_ci

    out = []
    for (model, dataset), part in scores.sort("question_id", "trajectory").group_by("model", "dataset", maintain_order=True):
        for n in n_values:
            per_q = {m: [] for m in METHODS}
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
                for m, (col, _, _) in METHODS.items():
                    sc = pool[col].to_numpy().astype(float) if col else None
                    per_q[m].append(select_accuracy(correct, codes, gold_code, sc, m, idx).mean())
            for m, vals in per_q.items():
                vals = np.array(vals, dtype=float)
                mean, lo, hi = bootstrap_mean_ci(vals, n_boot=n_boot, ci=ci, seed=seed) if vals.size else ([np.nan],) * 3
                out.append({"model": model, "dataset": dataset, "N": n, "method": m, "accuracy": float(mean[0]),
                            "lo": float(lo[0]), "hi": float(hi[0]), "n_questions": int(vals.size),
                            "n_questions_skipped": skipped})
    return pl.DataFrame(out)
