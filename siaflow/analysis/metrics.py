"""Aggregations behind the paper's tables and figures (pure functions on entropy tables).

Inputs are entropy tables (``siaflow.analysis.estimators.entropy_table``) with ``model`` and ``dataset``
columns added. Every confidence interval is a seeded bootstrap over *questions*.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import polars as pl

from siaflow.analysis.estimators import alignment_by_trajectory, entropy_table, sia_trajectories
from siaflow.analysis.stats import auc_with_ci, bootstrap_mean_ci, exact_mean
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
# Curves on a relative-position grid, bootstrap over questions
# --------------------------------------------------------------------------------------------


def relative_grid(points: int) -> np.ndarray:
    return np.round(np.linspace(0.0, 1.0, points), 10)


class TrajectoryPoints(NamedTuple):
    """Every trajectory's checkpoints in one table sorted by trajectory, then by ``order``:
    trajectory t owns rows ``bounds[t]:bounds[t + 1]`` of each array in ``cols``; ``trajs`` holds
    its keys and the columns constant within it (one row per trajectory, in ``tid`` order)."""

    trajs: pl.DataFrame
    tid: np.ndarray
    bounds: np.ndarray
    cols: dict

    @classmethod
    def of(
        cls,
        df: pl.LazyFrame | pl.DataFrame,
        *,
        order: str,
        values: list[str],
        keys: list[str] = TRAJ,
        per_trajectory: tuple[str, ...] = (),
    ) -> TrajectoryPoints:
        cols = list(dict.fromkeys([order, *values]))
        pts = df.lazy().select(*keys, *per_trajectory, *cols).sort(*keys, order).collect()
        tid = pts.select(pl.struct(keys).rle_id()).to_series().to_numpy()
        start = np.flatnonzero(np.r_[True, tid[1:] != tid[:-1]]) if len(tid) else np.zeros(0, dtype=np.int64)
        return cls(
            pts.select(*keys, *per_trajectory)[start],
            tid,
            np.r_[start, len(tid)],
            {c: pts[c].cast(pl.Float64).to_numpy() for c in cols},
        )

    def count_at_or_below(self, x: str, q: float, strict: bool = False) -> np.ndarray:
        """Per trajectory: how many of its points have x <= q (x < q when ``strict``)."""
        xs = self.cols[x]
        return np.bincount(self.tid[xs < q] if strict else self.tid[xs <= q], minlength=self.trajs.height)

    def interpolate(self, x: str, value: str, grid: np.ndarray, *, name: str = "rel_pos") -> pl.DataFrame:
        """Linear interpolation of ``value`` against ``x`` at each grid point, per trajectory (a
        point outside a trajectory's range takes its nearest end's value). One pass over the points
        per grid value."""
        xs, ys = self.cols[x], self.cols[value]
        n, start, size = self.trajs.height, self.bounds[:-1], np.diff(self.bounds)
        out_g, out_y = [np.zeros(0)], [np.zeros(0)]
        for g in np.asarray(grid, dtype=float):
            le = self.count_at_or_below(x, g)  # points with x <= g
            lt = self.count_at_or_below(x, g, strict=True)  # points with x < g
            i1 = start + np.minimum(lt, size - 1)  # first point at or after g (else the last)
            i0 = np.where(le > 0, start + le - 1, i1)  # last point at or before g (else the first)
            x0, x1, y0, y1 = xs[i0], xs[i1], ys[i0], ys[i1]
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = np.where(x1 > x0, (g - x0) / (x1 - x0), 0.0)
            out_g.append(np.full(n, g))
            out_y.append(y0 + (y1 - y0) * frac)
        idx = np.tile(np.arange(n), len(out_g) - 1)
        return self.trajs[idx].with_columns(
            pl.Series(name, np.concatenate(out_g)), pl.Series(value, np.concatenate(out_y))
        )

    def last_at_or_before(self, x: str, value: str, at: np.ndarray, *, name: str, used: str) -> pl.DataFrame:
        """``value`` at each ``at``: the last point with x <= at (null where there is none), and
        that point's x as ``used``."""
        xs, ys = self.cols[x], self.cols[value]
        n, start = self.trajs.height, self.bounds[:-1]
        rows = [np.where(le > 0, start + le - 1, -1) for le in (self.count_at_or_below(x, float(a)) for a in at)]
        row = np.concatenate([np.zeros(0, dtype=np.int64), *rows])
        ok, safe = row >= 0, np.maximum(row, 0)

        def pick(arr):
            return arr[safe] if len(arr) else np.zeros(len(row))

        out = self.trajs[np.tile(np.arange(n), len(rows))].with_columns(
            pl.Series(name, np.repeat(np.asarray(at), n)),
            pl.Series(used, pick(xs)),
            pl.Series(value, pick(ys)),
            pl.Series("_ok", ok),
        )
        return out.with_columns(pl.when("_ok").then(pl.col(used)), pl.when("_ok").then(pl.col(value))).drop("_ok")


def interpolate_to_grid(
    df: pl.LazyFrame, value: str, grid: np.ndarray, *, keys: list[str] = TRAJ, x: str = "rel_pos"
) -> pl.LazyFrame:
    """Linear interpolation of ``value`` (per trajectory, against ``x``) at each grid point.
    Every trajectory has checkpoints at x = 0 and x = 1, so every grid point is bracketed."""
    return TrajectoryPoints.of(df, order=x, values=[value], keys=keys).interpolate(x, value, grid, name=x).lazy()


def _question_matrix(df: pl.DataFrame, value: str, index: str = "question_id", column: str = "rel_pos"):
    """Per-question mean of ``value`` at each ``column`` point -> (questions x points) matrix."""
    per_q = df.group_by(index, column).agg(pl.col(value).mean())
    wide = per_q.pivot(on=column, index=index, values=value, sort_columns=True).sort(index)
    cols = sorted((c for c in wide.columns if c != index), key=float)
    return wide.select(cols).to_numpy().astype(float), np.array([float(c) for c in cols])


def curve_with_ci(df: pl.DataFrame, value: str, *, n_boot: int, ci: float, seed: int) -> pl.DataFrame:
    """Mean of ``value`` at each rel_pos over questions, 95% bootstrap CI over questions."""
    if df.height == 0:
        return pl.DataFrame(
            schema={
                "rel_pos": pl.Float64,
                "mean": pl.Float64,
                "lo": pl.Float64,
                "hi": pl.Float64,
                "n_questions": pl.Int64,
            }
        )
    m, x = _question_matrix(df, value)
    mean, lo, hi = bootstrap_mean_ci(m, n_boot=n_boot, ci=ci, seed=seed)
    return pl.DataFrame(
        {"rel_pos": x, "mean": mean, "lo": lo, "hi": hi, "n_questions": np.isfinite(m).sum(axis=0).astype(np.int64)}
    )


# --------------------------------------------------------------------------------------------
# Fig 1: normalised cumulative information gain
# --------------------------------------------------------------------------------------------


def normalised_gain(entropy: pl.LazyFrame, *, h: str = "H") -> pl.LazyFrame:
    """G_k = H_0 - H_k and G^_k = G_k / G_T per checkpoint; trajectories with G_T <= 0 get
    ``excluded`` = True (they have no normalised curve)."""
    first = pl.col(h).sort_by("k").first().over(TRAJ)
    last = pl.col(h).sort_by("k").last().over(TRAJ)
    return entropy.with_columns(G=first - pl.col(h), G_T=first - last).with_columns(
        excluded=pl.col("G_T") <= 0,
        G_hat=pl.when(pl.col("G_T") > 0).then(pl.col("G") / pl.col("G_T")).otherwise(None),
    )


def cumulative_gain_curves(
    entropy: pl.LazyFrame, *, h: str, grid: np.ndarray, n_boot: int, ci: float, seed: int
) -> pl.DataFrame:
    """Fig 1 data: mean G^ against relative position, correct vs incorrect, per model x dataset."""
    g = normalised_gain(entropy, h=h).select(*TRAJ, "k", "rel_pos", "G_hat", "excluded", "correct").collect()
    pts = TrajectoryPoints.of(g, order="k", values=["rel_pos", "G_hat"], per_trajectory=("excluded", "correct"))
    counts = pts.trajs.group_by(*GROUP, "correct").agg(n_trajectories=pl.len(), n_excluded=pl.col("excluded").sum())
    curves = pts.interpolate("rel_pos", "G_hat", grid).filter(~pl.col("excluded"))
    frames = []
    for (model, dataset, correct), part in curves.group_by(*GROUP, "correct", maintain_order=True):
        c = curve_with_ci(part, "G_hat", n_boot=n_boot, ci=ci, seed=seed)
        frames.append(c.with_columns(model=pl.lit(model), dataset=pl.lit(dataset), correct=pl.lit(correct)))
    out = pl.concat(frames) if frames else pl.DataFrame()
    return out.join(counts, on=[*GROUP, "correct"], how="left").sort(*GROUP, "correct", "rel_pos")


# --------------------------------------------------------------------------------------------
# Fig 2: early separability (ROC AUC of -H_k for correctness; siaflow.analysis.stats.auc_with_ci)
# --------------------------------------------------------------------------------------------


def values_at_absolute_k(entropy: pl.LazyFrame, value: str, ks: np.ndarray) -> pl.LazyFrame:
    """``value`` at absolute prefix lengths ``ks``: the last checkpoint at or before k, so a
    trajectory that ended before k carries its final value (null before its first checkpoint)."""
    pts = TrajectoryPoints.of(entropy, order="k", values=[value])
    return _at_absolute_k(pts, value, ks).lazy()


def _at_absolute_k(pts: TrajectoryPoints, value: str, ks: np.ndarray) -> pl.DataFrame:
    return pts.last_at_or_before("k", value, np.asarray(ks, dtype=np.int64), name="at_k", used="k_used").with_columns(
        pl.col("at_k").cast(pl.Int64), pl.col("k_used").cast(pl.Int64)
    )


def auc_curves(
    entropy: pl.LazyFrame, *, h: str, stride: int, grid: np.ndarray, n_boot: int, ci: float, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fig 2 data: AUC of -H_k vs absolute prefix length k and vs relative position."""
    df = entropy.with_columns(score=-pl.col(h))
    max_t = int(df.select(pl.col("T").max()).collect().item())
    ks = np.arange(0, max_t + 1, stride)
    # rel_pos = k / T rises with k, so one sort by k serves both axes
    pts = TrajectoryPoints.of(df, order="k", values=["rel_pos", "score"], per_trajectory=("correct",))
    absolute = _at_absolute_k(pts, "score", ks)
    relative = pts.interpolate("rel_pos", "score", grid)
    out_abs, out_rel = [], []
    for (model, dataset), part in absolute.group_by(*GROUP, maintain_order=True):
        out_abs.append(
            auc_with_ci(part, "score", "at_k", n_boot=n_boot, ci=ci, seed=seed).with_columns(
                model=pl.lit(model), dataset=pl.lit(dataset)
            )
        )
    for (model, dataset), part in relative.group_by(*GROUP, maintain_order=True):
        out_rel.append(
            auc_with_ci(part, "score", "rel_pos", n_boot=n_boot, ci=ci, seed=seed).with_columns(
                model=pl.lit(model), dataset=pl.lit(dataset)
            )
        )
    return pl.concat(out_abs).sort(*GROUP, "at_k"), pl.concat(out_rel).sort(*GROUP, "rel_pos")


# --------------------------------------------------------------------------------------------
# Fig 3: saturation
# --------------------------------------------------------------------------------------------


def rebound_flags(entropy: pl.LazyFrame, *, h: str, late_from: float, threshold: float) -> pl.LazyFrame:
    """Per trajectory: did H_k rise more than ``threshold`` above its running minimum over earlier
    checkpoints at some relative position >= ``late_from``?"""
    pts = TrajectoryPoints.of(entropy, order="k", values=["rel_pos", h], per_trajectory=("correct",))
    return _with_rebounds(pts, h=h, late_from=late_from, threshold=threshold).lazy()


def _with_rebounds(pts: TrajectoryPoints, *, h: str, late_from: float, threshold: float) -> pl.DataFrame:
    hk = pl.Series(h, pts.cols[h])
    prev_min = pl.DataFrame({"tid": pts.tid, h: hk}).select(pl.col(h).cum_min().shift(1).over("tid")).to_series()
    rise = (hk - prev_min).fill_null(0.0).to_numpy()
    hit = (rise > threshold) & (pts.cols["rel_pos"] >= late_from)
    return pts.trajs.with_columns(late_rebound=pl.Series(np.bincount(pts.tid[hit], minlength=pts.trajs.height) > 0))


def saturation_summary(
    entropy: pl.LazyFrame,
    *,
    h: str,
    grid: np.ndarray,
    n_boot: int,
    ci: float,
    seed: int,
    plateau_fraction: float,
    late_from: float,
    rebound_threshold: float,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fig 3 data: mean H_k against relative position per model x dataset (CI over questions), and
    per model x dataset the plateau level and the late-rebound rate."""
    pts = TrajectoryPoints.of(entropy, order="k", values=["rel_pos", h], per_trajectory=("correct",))
    curves = pts.interpolate("rel_pos", h, grid)
    frames = []
    for (model, dataset), part in curves.group_by(*GROUP, maintain_order=True):
        frames.append(
            curve_with_ci(part, h, n_boot=n_boot, ci=ci, seed=seed).with_columns(
                model=pl.lit(model), dataset=pl.lit(dataset)
            )
        )
    curve = pl.concat(frames).sort(*GROUP, "rel_pos")
    plateau = (
        curve.filter(pl.col("rel_pos") >= 1 - plateau_fraction - 1e-9)
        .group_by(GROUP)
        .agg(plateau_level=exact_mean(pl.col("mean")))
    )
    rebounds = (
        _with_rebounds(pts, h=h, late_from=late_from, threshold=rebound_threshold)
        .group_by(GROUP)
        .agg(late_rebound_rate=pl.col("late_rebound").mean(), n_trajectories=pl.len())
    )
    return curve, plateau.join(rebounds, on=GROUP).sort(GROUP)


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
