"""What generation and analysis both name: the key columns of the results tables, the
checkpoints k of a trajectory at which the answer entropy H_k is measured (docs/design.md §2), the
tokens a stored draw generated, the smallest change of H_k that K draws can show, and the smoothed
gold probability behind S_k (the adaptive stopping rule predicts what the estimators report)."""

from __future__ import annotations

GROUP = ["model", "dataset"]  # one row of Tables 1-3 / one curve of a figure
TRAJ = [*GROUP, "question_id", "trajectory"]  # one trajectory
IN_SHARD = ["question_id", "trajectory"]  # one trajectory within a model x dataset table
# continuation variants: the trajectory's own prefix and its shuffled tokens (K full continuations
# each), and the forced-answer probe (K short answers after an answer cue; siaflow.generation.probes)
VARIANTS = ("original", "shuffled")
PROBE_VARIANT = "probe"


def draw_tokens():
    """A polars expression: the tokens one stored draw (a row of continuations or probes) generated,
    its text plus the stop token or the stop string's tokens (``Generation.n_sampled``)."""
    import polars as pl  # here, not at the top: the Snakefile imports this module

    return pl.col("n_generated") + (pl.col("finish_reason") == "stop").cast(pl.Int64) + pl.col("cut").cast(pl.Int64)


def entropy_resolution(K: int, *, miller_madow: bool = False) -> float:
    """The smallest non-zero plug-in H_k that K draws can give: one draw apart from the rest,
    counts (K - 1, 1), so ``log K - (K - 1)/K log(K - 1)`` (+ 1/(2K) with Miller-Madow).
    A change of H_k smaller than this is below what the estimator can see (the config's rebound
    threshold and ``siaflow.analysis.estimators`` both read it)."""
    import math

    if K < 2:
        raise ValueError(f"the entropy resolution needs K >= 2 draws, got {K}")
    h = math.log(K) - (K - 1) / K * math.log(K - 1)
    return h + (1 / (2 * K) if miller_madow else 0.0)


def smoothed_gold_probability(c_gold, K, *, alpha: float, k_ref: int | None = None):
    """``p~(a*) = (c(a*) + alpha) / (K + 2 alpha)``, the gold-vs-rest estimate behind S_k; at a
    reference ``k_ref`` it is ``(p^ k_ref + alpha) / (k_ref + 2 alpha)`` (the same where K = k_ref).
    Scalars or numpy arrays; ``siaflow.analysis.estimators.gold_surprisal`` (and its polars twin) and
    ``siaflow.adaptive_stopping`` read it."""
    n = K if k_ref is None else k_ref
    return (c_gold * n / K + alpha) / (n + 2 * alpha)


def checkpoint_positions(T: int, stride: int) -> list[int]:
    """``{0, s, 2s, ...} ∪ {T}``: token positions in the generated part of a trajectory."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return sorted(set(range(0, T, stride)) | {T})
