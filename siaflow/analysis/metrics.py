"""Aggregations behind the SIA paper's Tables 1-3, and the aligned / non-aligned split of Figures
1-2 vs 4-5 (pure functions on entropy tables; the figures' curves are in ``siaflow.analysis.curves``).

Inputs are entropy tables (``siaflow.analysis.estimators.entropy_table``) with ``model`` and ``dataset``
columns added. Every confidence interval is a seeded bootstrap over *questions*.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from siaflow.analysis.estimators import (
    ALIGNMENT_REASONS,
    alignment_by_trajectory,
    entropy_table,
    sia_trajectories,
    trajectory_columns,
)
from siaflow.analysis.stats import bootstrap_cluster_difference, bootstrap_cluster_mean, exact_mean
from siaflow.keys import GROUP, IN_SHARD, TRAJ

# --------------------------------------------------------------------------------------------
# Table 1: alignment
# --------------------------------------------------------------------------------------------

# the two rho of a trajectory: the paper's (every checkpoint, k = T included) and over the
# checkpoints before its final answer begins (k < T and k <= answer_start), which the settled answer
# at k = T cannot pull towards +1 or -1 by correctness alone
RHO_VARIANTS = {"rho": "", "rho_pre": "pre_"}


def trajectory_alignment(entropy: pl.LazyFrame, *, h: str = "H") -> pl.LazyFrame:
    """Per trajectory: rho (H_k vs S_k over every checkpoint), rho_pre (over the checkpoints before
    the answer begins), rho_split and rho_split_pre (H from half a vs S from half b of the draws, over
    the same two sets of checkpoints), each with its reason when undefined and its number of
    checkpoints."""
    before = pl.col("before_answer")
    main = alignment_by_trajectory(entropy, h=h, s="S", keys=TRAJ, name="rho")
    pre = alignment_by_trajectory(entropy, h=h, s="S", keys=TRAJ, name="rho_pre", where=before)
    split = {"gold": "c_gold_b", "keys": TRAJ}
    out = main.join(pre.drop("correct"), on=TRAJ, how="left", maintain_order="left")
    for name, where in (("rho_split", None), ("rho_split_pre", before)):
        part = alignment_by_trajectory(entropy, h="H_a", s="S_b", name=name, where=where, **split)
        out = out.join(part.select(*TRAJ, name, f"{name}_reason"), on=TRAJ, how="left", maintain_order="left")
    return out


def _fmean(values: np.ndarray) -> float:
    """The mean of the defined values, correctly rounded (the same whatever their order)."""
    v = values[~np.isnan(values)]
    return math.fsum(v) / len(v) if len(v) else math.nan


def _rho_columns(part: pl.DataFrame, col: str, boot: dict) -> dict:
    """Mean ``col`` (one of ``RHO_VARIANTS``) over the defined trajectories with its bootstrap over
    questions (CI and standard error), the correct / incorrect means, and the reasons counted."""
    tag = RHO_VARIANTS[col]
    v, correct = part[col].to_numpy().astype(float), part["correct"].to_numpy().astype(bool)
    ok = ~np.isnan(v)
    cm = bootstrap_cluster_mean(v, part["question_id"].to_numpy(), **boot)
    reasons = part[f"{col}_reason"].to_list()
    return {
        f"mean_{col}": _fmean(v),
        f"{col}_lo": cm.lo,
        f"{col}_hi": cm.hi,
        f"se_{col}": cm.se,
        f"n_{tag}defined": int(ok.sum()),
        f"mean_{col}_correct": _fmean(np.where(correct, v, np.nan)),
        f"n_{tag}correct_defined": int((ok & correct).sum()),
        f"mean_{col}_incorrect": _fmean(np.where(~correct, v, np.nan)),
        f"n_{tag}incorrect_defined": int((ok & ~correct).sum()),
        **{f"n_{tag}{r}": reasons.count(r) for r in ALIGNMENT_REASONS if r != "ok"},
    }


def _per_group(df: pl.DataFrame, row) -> pl.DataFrame:
    """``row(part)`` (a dict) for each model x dataset of ``df``, in sorted order, the part's rows
    sorted by trajectory (so that every sum is in one order, whatever order the rows came in)."""
    rows = []
    for (model, dataset), part in df.sort(TRAJ).group_by(GROUP, maintain_order=True):
        rows.append({"model": model, "dataset": dataset, **row(part)})
    return pl.DataFrame(rows)


def table1_alignment(traj: pl.LazyFrame, *, n_boot: int, ci: float, seed: int) -> pl.DataFrame:
    """Mean SIA alignment per model x dataset, for both rho (the paper's, and before the answer):
    its bootstrap CI and standard error over questions, n defined / n total, the correct / incorrect
    split and why undefined trajectories are undefined; and both split-sample rho (H and S from
    disjoint halves of the draws, which cannot move together merely because they share draws)."""
    boot = dict(n_boot=n_boot, ci=ci, seed=seed)

    def row(part):
        split, split_pre = (part[c].to_numpy().astype(float) for c in ("rho_split", "rho_split_pre"))
        return {
            "n_total": part.height,
            "accuracy": float(part["correct"].mean()),
            **_rho_columns(part, "rho", boot),
            **_rho_columns(part, "rho_pre", boot),
            "mean_rho_split": _fmean(split),
            "n_split_defined": int((~np.isnan(split)).sum()),
            "mean_rho_split_pre": _fmean(split_pre),
            "n_split_pre_defined": int((~np.isnan(split_pre)).sum()),
        }

    return _per_group(traj.collect(), row)


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
# Tables 2 and 3: rho of the same trajectories under another estimate (shuffled prefixes, fewer draws)
# --------------------------------------------------------------------------------------------


def compare_alignment(a: pl.DataFrame, b: pl.DataFrame, tags: tuple[str, str], *, boot: dict) -> pl.DataFrame:
    """Per model x dataset and for both rho (``RHO_VARIANTS``): the mean over each side's defined
    trajectories (the paper's comparison) and their difference b - a, with a *paired* bootstrap over
    questions (both sides are the same trajectories), and the difference over the trajectories
    defined on both sides. ``a`` and ``b``: ``trajectory_alignment`` rows."""
    ta, tb = tags
    cols = list(RHO_VARIANTS)
    both = a.select(*TRAJ, "correct", *cols).join(
        b.select(*TRAJ, *[pl.col(c).alias(f"{c}_b") for c in cols]), on=TRAJ, how="left"
    )

    def row(part):
        q = part["question_id"].to_numpy()
        out = {"n_total": part.height}
        for col, tag in RHO_VARIANTS.items():
            va, vb = part[col].to_numpy().astype(float), part[f"{col}_b"].to_numpy().astype(float)
            for side, v in ((ta, va), (tb, vb)):
                cm = bootstrap_cluster_mean(v, q, **boot)
                out |= {f"mean_{col}_{side}": _fmean(v), f"se_{col}_{side}": cm.se}
                out[f"n_{tag}defined_{side}"] = int((~np.isnan(v)).sum())
            d = bootstrap_cluster_difference(va, vb, q, **boot)
            out |= {f"delta_{col}": d.mean, f"delta_{col}_lo": d.lo, f"delta_{col}_hi": d.hi}
            paired = ~np.isnan(va) & ~np.isnan(vb)
            d = bootstrap_cluster_difference(np.where(paired, va, np.nan), np.where(paired, vb, np.nan), q, **boot)
            out |= {f"delta_{col}_both": d.mean, f"delta_{col}_both_lo": d.lo, f"delta_{col}_both_hi": d.hi}
            out[f"n_{tag}defined_both"] = int(paired.sum())
        return out

    return _per_group(both, row)


def shuffle_comparison(
    original: pl.LazyFrame, shuffled: pl.LazyFrame, *, h: str = "H", n_boot: int, ci: float, seed: int
) -> pl.DataFrame:
    """Table 2: original vs shuffled-prefix alignment per model x dataset (``compare_alignment``),
    with the mean paired change of H_k and S_k under shuffling (same question, trajectory and
    checkpoint)."""
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
    a, b = (trajectory_alignment(e, h=h).collect() for e in (original, shuffled))
    out = compare_alignment(a, b, ("original", "shuffled"), boot=dict(n_boot=n_boot, ci=ci, seed=seed))
    return out.join(paired.collect(), on=GROUP, how="left").sort(GROUP)


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
    boot: dict,
) -> pl.DataFrame:
    """Table 3: rho per model x dataset at the main setting (``original`` entropy rows) and
    re-estimated from the draws a coarser run (``ablated``: stride, n_continuations) would have
    made, sub-sampled from the stored per-sample answers (``samples``, with model and dataset
    columns) of a finer run: no new generation. Both sides are the same trajectories, compared by
    ``compare_alignment``. ``main`` holds the main stride and K."""
    rows = []
    pairs = rollouts.select(GROUP).unique(maintain_order=True).collect().iter_rows()
    for model, dataset in pairs:
        pair = (pl.col("model") == model) & (pl.col("dataset") == dataset)
        roll = trajectory_columns(sia_trajectories(rollouts.filter(pair), n_trajectories))
        draws = samples.filter(pair).select("question_id", "trajectory", "k", "sample", "answer")
        sub = subsample_continuations(draws, roll, stride=ablated["stride"], n_continuations=ablated["n_continuations"])
        ent = entropy_table(sub, roll, alpha=alpha, k_ref=ablated["n_continuations"]).with_columns(
            model=pl.lit(model), dataset=pl.lit(dataset)
        )
        rows.append(trajectory_alignment(ent, h=h).collect())
    coarse = pl.concat(rows)
    out = compare_alignment(trajectory_alignment(original, h=h).collect(), coarse, ("original", "ablated"), boot=boot)
    return out.with_columns(
        stride_original=pl.lit(int(main["stride"])),
        K_original=pl.lit(main["n_continuations"]),
        stride_ablated=pl.lit(ablated["stride"]),
        K_ablated=pl.lit(ablated["n_continuations"]),
    )
