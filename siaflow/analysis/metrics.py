"""Aggregations behind the SIA paper's Tables 1-3, and the aligned / non-aligned split of Figures
1-2 vs 4-5 (pure functions on entropy tables; the figures' curves are in ``siaflow.analysis.curves``).

Inputs are entropy tables (``siaflow.analysis.estimators.entropy_table``) with ``model`` and ``dataset``
columns added. Every confidence interval is a seeded bootstrap over *questions*.
"""

from __future__ import annotations

import math

import polars as pl

from siaflow.analysis.estimators import alignment_by_trajectory, entropy_table, sia_trajectories
from siaflow.analysis.stats import exact_mean
from siaflow.keys import GROUP, IN_SHARD, TRAJ

# --------------------------------------------------------------------------------------------
# Table 1: alignment
# --------------------------------------------------------------------------------------------


def trajectory_alignment(entropy: pl.LazyFrame, *, h: str = "H") -> pl.LazyFrame:
    """Per trajectory: rho (H_k vs S_k), rho_split (H from half a vs S from half b), reasons."""
    main = alignment_by_trajectory(entropy, h=h, s="S", keys=TRAJ, name="rho")
    split = alignment_by_trajectory(entropy, h="H_a", s="S_b", keys=TRAJ, name="rho_split")
    return main.join(split.select(*TRAJ, "rho_split", "rho_split_reason"), on=TRAJ, how="left", maintain_order="left")


def _mean_defined(col: str, where: pl.Expr | None = None) -> pl.Expr:
    x = pl.col(col)
    ok = x.is_not_nan() if where is None else (x.is_not_nan() & where)
    return exact_mean(x.filter(ok))


def _std_defined(col: str) -> pl.Expr:
    """Sample standard deviation of the defined values, order-independent like ``exact_mean``."""
    x = pl.col(col).filter(pl.col(col).is_not_nan())
    n = x.count()
    squares = ((x - exact_mean(x)) ** 2).sort().cum_sum().last()
    return pl.when(n > 1).then((squares / (n - 1)).sqrt())


def table1_alignment(traj: pl.LazyFrame) -> pl.DataFrame:
    """Mean SIA alignment per model x dataset, with standard error, n defined / n total, the
    correct / incorrect split, the split-sample rho and why undefined trajectories are undefined."""
    ok = pl.col("rho").is_not_nan()
    correct = pl.col("correct")
    out = traj.group_by(GROUP).agg(
        n_total=pl.len(),
        n_defined=ok.sum(),
        mean_rho=_mean_defined("rho"),
        se_rho=_std_defined("rho") / ok.sum().sqrt(),
        mean_rho_correct=_mean_defined("rho", correct),
        n_correct_defined=(ok & correct).sum(),
        mean_rho_incorrect=_mean_defined("rho", ~correct),
        n_incorrect_defined=(ok & ~correct).sum(),
        mean_rho_split=_mean_defined("rho_split"),
        n_split_defined=pl.col("rho_split").is_not_nan().sum(),
        accuracy=correct.mean(),
        n_too_few_checkpoints=(pl.col("rho_reason") == "too_few_checkpoints").sum(),
        n_constant_H=(pl.col("rho_reason") == "constant_H").sum(),
        n_constant_S=(pl.col("rho_reason") == "constant_S").sum(),
    )
    return out.sort(GROUP).collect()


# --------------------------------------------------------------------------------------------
# Aligned vs non-aligned (Figs 1-2 vs Figs 4-5)
# --------------------------------------------------------------------------------------------


def split_by_alignment(table1: pl.DataFrame, threshold: float) -> tuple[set, set]:
    """(aligned, non-aligned) sets of (model, dataset): mean rho >= threshold is aligned; a pair
    whose mean rho is undefined (no trajectory has a rho) counts as non-aligned."""
    aligned, nonaligned = set(), set()
    for model, dataset, rho in table1.select("model", "dataset", "mean_rho").iter_rows():
        ok = rho is not None and not math.isnan(rho) and rho >= threshold
        (aligned if ok else nonaligned).add((model, dataset))
    return aligned, nonaligned


def restrict(df: pl.LazyFrame, pairs: set) -> pl.LazyFrame:
    keys = pl.LazyFrame(
        {"model": [m for m, _ in pairs], "dataset": [d for _, d in pairs]},
        schema={"model": pl.String, "dataset": pl.String},
    )
    return df.join(keys, on=GROUP, how="semi")


# --------------------------------------------------------------------------------------------
# Table 2: shuffle-prefix ablation
# --------------------------------------------------------------------------------------------


def shuffle_comparison(original: pl.LazyFrame, shuffled: pl.LazyFrame, *, h: str = "H") -> pl.DataFrame:
    """Original vs shuffled-prefix alignment per model x dataset, with the mean paired change of
    H_k and S_k under shuffling (same question, trajectory and checkpoint)."""

    def summary(ent, tag):
        return (
            trajectory_alignment(ent, h=h)
            .group_by(GROUP)
            .agg(
                _mean_defined("rho").alias(f"mean_rho_{tag}"),
                pl.col("rho").is_not_nan().sum().alias(f"n_defined_{tag}"),
                pl.len().alias("n_total"),
            )
        )

    keys = [*TRAJ, "k"]
    paired = (
        original.select(*keys, pl.col(h).alias("H_o"), pl.col("S").alias("S_o"))
        .join(shuffled.select(*keys, pl.col(h).alias("H_s"), pl.col("S").alias("S_s")), on=keys, how="inner")
        .group_by(GROUP)
        .agg(
            mean_H_original=exact_mean(pl.col("H_o")),
            mean_H_shuffled=exact_mean(pl.col("H_s")),
            mean_delta_H=exact_mean(pl.col("H_s") - pl.col("H_o")),
            mean_S_original=exact_mean(pl.col("S_o")),
            mean_S_shuffled=exact_mean(pl.col("S_s")),
            mean_delta_S=exact_mean(pl.col("S_s") - pl.col("S_o")),
            n_checkpoints=pl.len(),
        )
    )
    out = summary(original, "original").join(summary(shuffled, "shuffled").drop("n_total"), on=GROUP)
    out = out.with_columns(delta_rho=pl.col("mean_rho_shuffled") - pl.col("mean_rho_original"))
    return out.join(paired, on=GROUP, how="left").sort(GROUP).collect()


# --------------------------------------------------------------------------------------------
# Table 3: Monte-Carlo ablation (coarser stride, fewer samples)
# --------------------------------------------------------------------------------------------


def subsample_continuations(
    samples: pl.LazyFrame, trajectories: pl.LazyFrame, *, stride: int, n_continuations: int
) -> pl.LazyFrame:
    """The exact sub-sample of a finer run that a coarser (stride, K') run would have produced:
    checkpoints k in {0, s', 2s', ...} ∪ {T} and the first K' draws of each (draws are stored in
    sample order and use per-sample random streams, so these are the same draws)."""
    T = trajectories.select(pl.col("question_id"), pl.col("trajectory").cast(pl.Int64), pl.col("T").cast(pl.Int64))
    s = samples.with_columns(pl.col("trajectory").cast(pl.Int64), pl.col("k").cast(pl.Int64))
    s = s.join(T, on=IN_SHARD, how="left")
    keep = (pl.col("k") % stride == 0) | (pl.col("k") == pl.col("T"))
    return s.filter(keep & (pl.col("sample") < n_continuations)).drop("T")


def mc_ablation_table(
    original: pl.LazyFrame,
    rollouts: pl.LazyFrame,
    samples: pl.LazyFrame,
    *,
    h: str,
    alpha: float,
    n_trajectories: int,
    main: dict,
    ablated: dict,
) -> pl.DataFrame:
    """Table 3: mean rho per model x dataset at the main setting (``original`` entropy rows) and
    re-estimated from the draws a coarser run (``ablated``: stride, n_continuations) would have
    made, sub-sampled from the stored per-sample answers (``samples``, with model and dataset
    columns) of a finer run: no new generation. ``main`` holds the main stride and K."""
    rows = []
    pairs = rollouts.select(GROUP).unique(maintain_order=True).collect().iter_rows()
    for model, dataset in pairs:
        pair = (pl.col("model") == model) & (pl.col("dataset") == dataset)
        roll = sia_trajectories(rollouts.filter(pair), n_trajectories).select(
            "question_id", "trajectory", "T", "correct", "gold"
        )
        draws = samples.filter(pair).select("question_id", "trajectory", "k", "sample", "answer")
        sub = subsample_continuations(draws, roll, stride=ablated["stride"], n_continuations=ablated["n_continuations"])
        ent = entropy_table(sub, roll, alpha=alpha).with_columns(model=pl.lit(model), dataset=pl.lit(dataset))
        rows.append(table1_alignment(trajectory_alignment(ent, h=h)))
    coarse = pl.concat(rows).select(
        "model",
        "dataset",
        pl.col("mean_rho").alias("mean_rho_ablated"),
        pl.col("se_rho").alias("se_rho_ablated"),
        pl.col("n_defined").alias("n_defined_ablated"),
    )
    orig = table1_alignment(trajectory_alignment(original, h=h)).select(
        "model",
        "dataset",
        pl.col("mean_rho").alias("mean_rho_original"),
        pl.col("se_rho").alias("se_rho_original"),
        pl.col("n_defined").alias("n_defined_original"),
        "n_total",
    )
    return orig.join(coarse, on=GROUP).with_columns(
        stride_original=pl.lit(int(main["stride"])),
        K_original=pl.lit(main["n_continuations"]),
        stride_ablated=pl.lit(ablated["stride"]),
        K_ablated=pl.lit(ablated["n_continuations"]),
    )
