"""The SIA estimators (docs/design.md §2), natural logarithms throughout.

Two forms of each quantity live here, side by side:

* scalar reference definitions on one checkpoint's answer counts / one trajectory's series
  (``conditional_answer_entropy``, ``gold_surprisal``, ``alignment_coefficient``), written to be
  read against the paper;
* vectorised polars versions (``answer_distribution_stats``, ``entropy_table``,
  ``alignment_by_trajectory``) used by the workflow on millions of rows. Tests hold the two equal.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from siaflow.keys import IN_SHARD, TRAJ, entropy_resolution, smoothed_gold_probability  # noqa: F401 (the estimator's resolution, defined with the keys config reads)

# --------------------------------------------------------------------------------------------
# Scalar reference definitions
# --------------------------------------------------------------------------------------------


def _counts(answers_or_counts) -> Counter:
    if isinstance(answers_or_counts, Mapping):
        return Counter({a: int(c) for a, c in answers_or_counts.items() if c > 0})
    return Counter(answers_or_counts)


def conditional_answer_entropy(answers_or_counts, *, miller_madow: bool = False) -> float:
    """Plug-in entropy ``H_k = -sum_a p(a) log p(a)`` of the empirical answer distribution
    (``NULL`` is an answer like any other); optionally with the Miller-Madow correction
    ``+ (m - 1) / (2K)``, ``m`` the number of distinct answers seen."""
    c = _counts(answers_or_counts)
    K = sum(c.values())
    if K == 0:
        raise ValueError("conditional_answer_entropy needs at least one sample")
    # fsum is correctly rounded, so H depends on the counts alone, not on their order
    h = -math.fsum((n / K) * math.log(n / K) for n in c.values())
    if miller_madow:
        h += (len(c) - 1) / (2 * K)
    return h


def gold_surprisal(
    answers_or_counts, gold: str, *, alpha: float = 0.5, k_ref: int | None = None
) -> tuple[float, float]:
    """Smoothed gold surprisal ``S_k = -log p~(a*)`` with the gold-vs-rest estimate
    ``p~(a*) = (c(a*) + alpha) / (K + 2 alpha)``; returns ``(S_k, raw p^(a*))``.

    ``k_ref``: smooth at this reference K instead of the checkpoint's own,
    ``p~ = (p^ k_ref + alpha) / (k_ref + 2 alpha)`` (the same where K = k_ref). Under adaptive
    sampling checkpoints stop at different K; smoothing each at its own K would give S a floor
    (every draw on the gold) and a ceiling (gold unseen) that follow K, and K follows H
    (docs/costs.md#adaptive-sampling).

    The smoothing sees only the gold's count and K, never how the non-gold mass is split: with the
    support-size smoothing ``(c + alpha) / (K + alpha |supp ∪ {a*}|)`` an unseen gold (c = 0) makes
    S_k follow the number of distinct answers, hence H_k, and manufactures rho near +1
    (docs/design.md#what-the-estimator-itself-made)."""
    c = _counts(answers_or_counts)
    K = sum(c.values())
    if K == 0:
        raise ValueError("gold_surprisal needs at least one sample")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 so that an unseen gold answer has finite surprisal, got {alpha}")
    cg = c.get(gold, 0)
    return -math.log(smoothed_gold_probability(cg, K, alpha=alpha, k_ref=k_ref)), cg / K


def split_sample(answers: Sequence[str], gold: str, *, alpha: float = 0.5) -> tuple[float, float]:
    """``(H_k from the first half of the draws, S_k from the second half)``: the two estimates
    share no draw, so they cannot move together mechanically."""
    half = len(answers) // 2
    if half == 0:
        raise ValueError("split_sample needs at least 2 draws")
    return conditional_answer_entropy(answers[:half]), gold_surprisal(answers[half:], gold, alpha=alpha)[0]


ALIGNMENT_REASONS = ("ok", "too_few_checkpoints", "gold_unseen", "constant_H", "constant_S")
MIN_CHECKPOINTS = 3
_CONST_TOL = 1e-12


def alignment_coefficient(
    h: Iterable[float], s: Iterable[float], gold_counts: Iterable[int] | None = None
) -> tuple[float, str]:
    """SIA alignment coefficient of one trajectory: Pearson correlation of ``(H_k, S_k)`` across its
    checkpoints. Returns ``(rho, "ok")`` or ``(nan, reason)`` with the reason it is undefined, checked
    in this order: fewer than 3 checkpoints, the gold never drawn at any of them (``gold_counts``, the
    gold's count per checkpoint: S_k is then the smoothing alone, and p(a*) unknown), constant H,
    constant S."""
    h, s = np.asarray(list(h), dtype=float), np.asarray(list(s), dtype=float)
    if len(h) != len(s):
        raise ValueError("H and S series differ in length")
    if len(h) < MIN_CHECKPOINTS:
        return math.nan, "too_few_checkpoints"
    if gold_counts is not None and sum(gold_counts) == 0:
        return math.nan, "gold_unseen"
    if np.ptp(h) <= _CONST_TOL:
        return math.nan, "constant_H"
    if np.ptp(s) <= _CONST_TOL:
        return math.nan, "constant_S"
    hc, sc = h - h.mean(), s - s.mean()
    return float((hc @ sc) / math.sqrt((hc @ hc) * (sc @ sc))), "ok"


# --------------------------------------------------------------------------------------------
# Vectorised (polars) versions
# --------------------------------------------------------------------------------------------


def _entropy_of_count_profiles(profiles: pl.Series) -> pl.Series:
    """H of each sorted count profile ("1,2,3"), by the scalar definition. A float sum in polars
    depends on memory layout in its last bit; this does not, so reruns give identical tables.
    There are few distinct profiles (partitions of K), so each is computed once."""
    table = {p: conditional_answer_entropy(dict(enumerate(map(int, p.split(","))))) for p in profiles.unique()}
    return profiles.replace_strict(table, return_dtype=pl.Float64)


def answer_distribution_stats(
    samples: pl.LazyFrame, keys: list[str], *, alpha: float, suffix: str = "", k_ref: int | None = None
) -> pl.LazyFrame:
    """Per checkpoint (``keys``): K, distinct answers m, H (plug-in), H_mm (Miller-Madow),
    raw p(gold), smoothed S (at ``k_ref`` when given: ``gold_surprisal``), and the MAP answer (ties
    broken by the smallest answer text).

    ``samples`` has ``keys`` + ``answer`` + ``gold`` (one row per continuation)."""
    counts = samples.group_by([*keys, "answer"]).agg(c=pl.len(), is_gold=(pl.col("answer") == pl.col("gold")).first())
    c, K = pl.col("c"), pl.col("c").sum()
    stats = counts.group_by(keys).agg(
        K=K.cast(pl.Int64),
        m=pl.len().cast(pl.Int64),
        _profile=c.sort().cast(pl.String).str.join(","),
        c_gold=c.filter(pl.col("is_gold")).sum().cast(pl.Int64),
        map_answer=pl.col("answer").sort_by(["c", "answer"], descending=[True, False]).first(),
    )
    out = (
        stats.with_columns(H=pl.col("_profile").map_batches(_entropy_of_count_profiles, return_dtype=pl.Float64))
        .drop("_profile")
        .with_columns(
            H_mm=pl.col("H") + (pl.col("m") - 1) / (2 * pl.col("K")),
            p_gold=pl.col("c_gold") / pl.col("K"),
            S=_smoothed_surprisal(alpha, k_ref),
        )
    )
    if suffix:
        out = out.rename(
            {col: f"{col}{suffix}" for col in ["K", "m", "H", "c_gold", "map_answer", "H_mm", "p_gold", "S"]}
        )
    return out


def _smoothed_surprisal(alpha: float, k_ref: int | None) -> pl.Expr:
    c_gold, K = pl.col("c_gold"), pl.col("K")
    own = -smoothed_gold_probability(c_gold, K, alpha=alpha).log()
    if k_ref is None:
        return own
    at_ref = -smoothed_gold_probability(c_gold, K, alpha=alpha, k_ref=k_ref).log()
    return pl.when(K == k_ref).then(own).otherwise(at_ref)  # a fixed run's S to the last bit


# what the entropy table reads of each trajectory (a rollouts table's columns)
TRAJECTORY_COLUMNS = ("question_id", "trajectory", "T", "correct", "gold", "answer_start")


def sia_trajectories(rollouts, n_trajectories: int):
    """The trajectories that get checkpoint continuations: the first ``n_trajectories`` of each
    question (rollouts may draw a larger EDIS pool; its first N are the same draws)."""
    return rollouts.filter(pl.col("trajectory") < n_trajectories)


def trajectory_columns(rollouts: pl.LazyFrame, where: str = "the rollouts") -> pl.LazyFrame:
    """The columns of ``TRAJECTORY_COLUMNS``; a rollouts table made before siaflow recorded where
    each answer begins is named, with what to do."""
    missing = [c for c in TRAJECTORY_COLUMNS if c not in rollouts.collect_schema().names()]
    if missing:
        raise ValueError(
            f"{where} lack column(s) {missing}: they were made by an older siaflow, which did not record "
            f"where each answer begins; regenerate them (snakemake --forcerun rollouts)"
        )
    return rollouts.select(*TRAJECTORY_COLUMNS)


def before_answer() -> pl.Expr:
    """A checkpoint whose prefix holds none of the final answer: k < T and k <= answer_start (the
    first token of the statement the extractor reads; null when the answer is NULL, then k < T)."""
    return (pl.col("k") < pl.col("T")) & (pl.col("answer_start").is_null() | (pl.col("k") <= pl.col("answer_start")))


def entropy_table(
    samples: pl.LazyFrame, trajectories: pl.LazyFrame, *, alpha: float, k_ref: int | None = None
) -> pl.LazyFrame:
    """One row per (question, trajectory, checkpoint k) with H_k, S_k, p^_k(gold), split-sample
    halves (H_a from draws [0, K/2), S_b and its gold count c_gold_b from draws [K/2, K)), the MAP
    answer and its correctness, and whether the checkpoint is ``before_answer``.

    ``samples``: question_id, trajectory, k, sample, answer; the empty prefix (k = 0) is stored once
    per question with trajectory = -1 and is shared by all the question's trajectories.
    ``trajectories``: ``TRAJECTORY_COLUMNS``. ``k_ref``: the K the draws were asked for (the
    shards' ``n_continuations``): S and S_b are smoothed at it (and at its second half), so a
    checkpoint that stopped early under adaptive sampling has the fixed run's smoothing; None:
    each checkpoint's own K (equal where every checkpoint drew k_ref).
    """
    ints = {"trajectory": pl.Int64, "k": pl.Int64}
    samples = samples.with_columns(pl.col(c).cast(t) for c, t in {**ints, "sample": pl.Int64}.items())
    trajectories = trajectories.with_columns(
        pl.col("trajectory").cast(pl.Int64), pl.col("T").cast(pl.Int64), pl.col("answer_start").cast(pl.Int64)
    )
    gold = trajectories.select("question_id", "gold").unique("question_id")
    s = samples.join(gold, on="question_id", how="left")
    keys = ["question_id", "trajectory", "k"]
    half_k = pl.col("sample").max().over(keys) + 1
    full = answer_distribution_stats(s, keys, alpha=alpha, k_ref=k_ref)
    a = answer_distribution_stats(s.filter(pl.col("sample") < half_k // 2), keys, alpha=alpha, suffix="_a")
    b_ref = None if k_ref is None else k_ref - k_ref // 2
    b = answer_distribution_stats(
        s.filter(pl.col("sample") >= half_k // 2), keys, alpha=alpha, suffix="_b", k_ref=b_ref
    )
    stats = full.join(a.select(*keys, "H_a"), on=keys, how="left").join(
        b.select(*keys, "S_b", "c_gold_b"), on=keys, how="left"
    )
    traj = trajectories.select(*TRAJECTORY_COLUMNS)
    shared = (
        stats.filter(pl.col("trajectory") == -1)
        .drop("trajectory")
        .join(traj.select("question_id", "trajectory"), on="question_id", how="inner")
    )
    own = stats.filter(pl.col("trajectory") != -1)
    cols = [*keys, "K", "m", "H", "H_mm", "c_gold", "p_gold", "S", "H_a", "S_b", "c_gold_b", "map_answer"]
    table = pl.concat([own.select(cols), shared.select(cols)]).join(traj, on=IN_SHARD, how="inner")
    return table.with_columns(
        rel_pos=pl.when(pl.col("T") > 0).then(pl.col("k") / pl.col("T")).otherwise(1.0),
        map_correct=pl.col("map_answer") == pl.col("gold"),
        before_answer=before_answer(),
    ).sort(keys)


def alignment_by_trajectory(
    table: pl.LazyFrame,
    *,
    h: str = "H",
    s: str = "S",
    gold: str = "c_gold",
    keys: list[str] | None = None,
    name: str = "rho",
    where: pl.Expr | None = None,
) -> pl.LazyFrame:
    """Per trajectory: ``name`` = Pearson(h, s) across its checkpoints (those where ``where`` holds,
    when given), with ``{name}_reason`` saying why it is undefined (``alignment_coefficient``'s
    reasons, in its order; ``gold`` is the column of the gold's count behind ``s``) and
    ``{name}_n_checkpoints``. Every trajectory of ``table`` gets a row."""
    keys = keys or TRAJ
    use = pl.col("k").is_not_null() if where is None else where
    hc, sc, k = pl.col(h).filter(use), pl.col(s).filter(use), pl.col("k").filter(use)
    n_checkpoints = f"{name}_n_checkpoints"
    agg = (
        table.group_by(keys)
        .agg(
            use.sum().cast(pl.Int64).alias(n_checkpoints),
            _gold=pl.col(gold).filter(use).sum(),
            _h_range=hc.max() - hc.min(),
            _s_range=sc.max() - sc.min(),
            _r=pl.corr(hc.sort_by(k), sc.sort_by(k)),  # in checkpoint order, whatever the row order
            correct=pl.col("correct").first(),
        )
        .sort(keys)
    )  # group_by order varies between runs; every mean over these rows must not
    reason = (
        pl.when(pl.col(n_checkpoints) < MIN_CHECKPOINTS)
        .then(pl.lit("too_few_checkpoints"))
        .when(pl.col("_gold") == 0)
        .then(pl.lit("gold_unseen"))
        .when(pl.col("_h_range") <= _CONST_TOL)
        .then(pl.lit("constant_H"))
        .when(pl.col("_s_range") <= _CONST_TOL)
        .then(pl.lit("constant_S"))
        .otherwise(pl.lit("ok"))
    )
    return (
        agg.with_columns(reason.alias(f"{name}_reason"))
        .with_columns(pl.when(pl.col(f"{name}_reason") == "ok").then(pl.col("_r")).otherwise(float("nan")).alias(name))
        .drop("_gold", "_h_range", "_s_range", "_r")
    )
