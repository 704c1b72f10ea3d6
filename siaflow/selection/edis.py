"""EDIS: instability of the token-entropy trajectory, and Best-of-N selection (docs/design.md §2, second paper).

Per trajectory, from its token entropies H_1..H_T (1-indexed below, as in the paper):

* burst spikes      S_burst  = #{t <= T - w : H_{t+w} - H_t > tau_b}
* peak-valley spikes S_rebound = #{t >= 2 : H_t - min_{s<t} H_s > tau_r}
* S = (S_burst + S_rebound) / 2 and EDIS = S * (1 + Var(H)) with the population variance;
  lower EDIS = more stable;
* baselines: mean token entropy (lower is better) and self-certainty
  (1/T) sum_t KL(U || pi_t) (higher is better).

H_t is the entropy ``EdisParams.token_entropy`` names (the papers do not say which): of the
distribution the token was drawn from (``sampled``: temperature, then top-p) or of the whole
temperature-scaled vocabulary (``full``). Self-certainty is of the raw logits (docs/selection.md).

Best-of-N (``siaflow.selection.bestofn``) draws N-subsets of each question's pool of sampled responses and
picks an answer by each rule; a tie is scored by its expected accuracy under a uniform random
tie-break.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import polars as pl

from siaflow.selection import bestofn
from siaflow.selection.bestofn import Selector, vote_weights  # noqa: F401 (vote_weights: part of this module's API)
from siaflow.selection.token_stats import require_token_stats

# edis.token_entropy -> the rollouts column EDIS and the mean-entropy score read
ENTROPY_COLUMNS = {"sampled": "token_entropy", "full": "token_entropy_full"}


@dataclass(frozen=True)
class EdisParams:
    window: int = 8
    tau_burst: float = 1.36
    tau_rebound: float = 1.33
    token_entropy: str = "sampled"  # which token entropy H_t is: ENTROPY_COLUMNS

    def __post_init__(self):
        if self.token_entropy not in ENTROPY_COLUMNS:
            raise ValueError(f"edis.token_entropy: {self.token_entropy!r} is not one of {sorted(ENTROPY_COLUMNS)}")

    @property
    def entropy_column(self) -> str:
        """The rollouts column of the token entropies H_t."""
        return ENTROPY_COLUMNS[self.token_entropy]

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The keys of the config's ``edis`` block that define the score."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, edis_config: dict) -> EdisParams:
        """The parameters from the config's ``edis`` block."""
        return cls(**{k: edis_config[k] for k in cls.keys()})


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
    return {
        "n_burst": nb,
        "n_rebound": nr,
        "spike_score": s,
        "var_entropy": var,
        "edis": s * (1 + var),
        "mean_entropy": float(h.mean()),
    }


def spike_positions(h, params: EdisParams = EdisParams()) -> tuple[np.ndarray, np.ndarray]:
    """0-based token positions of burst spikes (the end t + w of each rising window) and of
    peak-valley spikes, for drawing them on a trajectory."""
    h = np.asarray(h, dtype=float)
    w = params.window
    burst = np.nonzero(h[w:] - h[:-w] > params.tau_burst)[0] + w if len(h) > w else np.array([], dtype=int)
    rebound = (
        np.nonzero(h[1:] - np.minimum.accumulate(h)[:-1] > params.tau_rebound)[0] + 1
        if len(h) > 1
        else np.array([], dtype=int)
    )
    return burst, rebound


def trajectory_scores(rollouts: pl.DataFrame, params: EdisParams, *, source: str | None = None) -> pl.DataFrame:
    """Per trajectory: EDIS and its parts, mean entropy (of ``params.entropy_column``),
    self-certainty, answer and correctness. Stops, naming the statistic (and ``source``), where
    the rollouts lack one (``token_stats.require_token_stats``)."""
    column = params.entropy_column
    require_token_stats(rollouts, [column, "token_self_certainty"], needed_by="EDIS", source=source)
    rows = []
    for r in rollouts.iter_rows(named=True):
        h = r[column] or []
        sc = r["token_self_certainty"]
        rows.append(
            {
                "model": r["model"],
                "dataset": r["dataset"],
                "question_id": r["question_id"],
                "trajectory": r["trajectory"],
                "answer": r["answer"],
                "gold": r["gold"],
                "correct": r["correct"],
                "T": len(h),
                **edis_score(h, params),
                "self_certainty": float(np.mean(sc)) if sc else math.nan,
            }
        )
    return pl.DataFrame(rows)


def example_trajectories(rollouts: pl.DataFrame, params: EdisParams, per_class: int) -> pl.DataFrame:
    """The trajectories Fig. EDIS-1 draws, one row per token (t, H, burst, rebound): per model x
    dataset and class (correct / incorrect), the ``per_class`` responses with the most spikes, one
    per question (a confident model repeats the same trace), ties broken by id, so the choice is
    deterministic and shows the patterns. H: the column ``params.entropy_column``."""
    rows = []
    for (model, dataset), part in rollouts.group_by("model", "dataset", maintain_order=True):
        for correct in (True, False):
            cand = part.filter(pl.col("correct") == correct)
            ranked = sorted(
                cand.iter_rows(named=True),
                key=lambda r: (
                    -sum(map(len, spike_positions(r[params.entropy_column] or [], params))),
                    r["question_id"],
                    r["trajectory"],
                ),
            )
            chosen, seen = [], set()
            for r in ranked:
                if r["question_id"] not in seen and len(chosen) < per_class:
                    seen.add(r["question_id"])
                    chosen.append(r)
            for r in chosen:
                h = r[params.entropy_column] or []
                burst, rebound = (set(p.tolist()) for p in spike_positions(h, params))
                rows += [
                    {
                        "model": model,
                        "dataset": dataset,
                        "question_id": r["question_id"],
                        "trajectory": r["trajectory"],
                        "correct": correct,
                        "t": t,
                        "H": float(v),
                        "burst": t in burst,
                        "rebound": t in rebound,
                    }
                    for t, v in enumerate(h)
                ]
    return pl.DataFrame(rows)


# score -> sign that makes "higher means more likely correct"
SEPARATION_SCORES = {"edis": -1, "mean_entropy": -1, "self_certainty": 1}


def separation_aucs(scores: pl.DataFrame) -> pl.DataFrame:
    """Per model x dataset and score: ROC AUC of the signed score for correctness (Fig. EDIS-2)."""
    from siaflow.analysis.stats import roc_auc

    rows = []
    for (model, dataset), part in scores.group_by("model", "dataset", maintain_order=True):
        for score, sign in SEPARATION_SCORES.items():
            rows.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "score": score,
                    "auc": roc_auc(sign * part[score].to_numpy(), part["correct"].to_numpy()),
                    "n_correct": int(part["correct"].sum()),
                    "n_incorrect": int((~part["correct"]).sum()),
                }
            )
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Best-of-N (siaflow.selection.bestofn): the EDIS paper's selection rules
# --------------------------------------------------------------------------------------------

METHODS = {
    "random": Selector(None, None, False),
    "majority": Selector(None, None, True),
    "mean_entropy": Selector("mean_entropy", "min", False),
    "self_certainty": Selector("self_certainty", "max", False),
    "edis": Selector("edis", "min", False),
    "weighted_mean_entropy": Selector("mean_entropy", "min", True),
    "weighted_self_certainty": Selector("self_certainty", "max", True),
    "weighted_edis": Selector("edis", "min", True),
}


def select_accuracy(
    correct: np.ndarray, codes: np.ndarray, gold_code: int, scores: np.ndarray | None, method: str, idx: np.ndarray
) -> np.ndarray:
    """``bestofn.select_accuracy`` of the EDIS method named ``method``."""
    return bestofn.select_accuracy(correct, codes, gold_code, scores, METHODS[method], idx)


def best_of_n(scores: pl.DataFrame, **kwargs) -> pl.DataFrame:
    """``bestofn.best_of_n`` with the EDIS paper's methods."""
    return bestofn.best_of_n(scores, METHODS, **kwargs)
