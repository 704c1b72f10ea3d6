"""The curves behind Figures 1-3 (pure functions on entropy tables): every trajectory put on a
relative-position grid, and per-grid-point means with a seeded bootstrap over *questions*.

Inputs are entropy tables (``siaflow.analysis.estimators.entropy_table``) with ``model`` and
``dataset`` columns added; the tables' aggregations are in ``siaflow.analysis.metrics``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl

from siaflow.analysis.stats import auc_with_ci, bootstrap_mean_ci, exact_mean
from siaflow.keys import GROUP, TRAJ

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


# what a trajectory's cumulative gain is built from: the paper's Def. 11, per sampled trace from
# the gold surprisal (G_k = S_0 - S_k: a step gains when it makes the *correct* answer more
# probable), or the entropy drop H_0 - H_k (its expectation, the same for any trace that converges)
GAIN_BASES = ("surprisal", "entropy")


def normalised_gain(entropy: pl.LazyFrame, *, h: str = "H", gain: str = "surprisal") -> pl.LazyFrame:
    """G_k = S_0 - S_k (``gain="surprisal"``, the paper's Def. 11) or H_0 - H_k (``"entropy"``, with
    ``h`` the H_k column), and G^_k = G_k / G_T per checkpoint; trajectories with G_T <= 0 get
    ``excluded`` = True (they have no normalised curve)."""
    if gain not in GAIN_BASES:
        raise ValueError(f"gain must be one of {GAIN_BASES}, got {gain!r}")
    value = pl.col("S" if gain == "surprisal" else h)
    first = value.sort_by("k").first().over(TRAJ)
    last = value.sort_by("k").last().over(TRAJ)
    return entropy.with_columns(G=first - value, G_T=first - last).with_columns(
        excluded=pl.col("G_T") <= 0,
        G_hat=pl.when(pl.col("G_T") > 0).then(pl.col("G") / pl.col("G_T")).otherwise(None),
    )


def cumulative_gain_curves(
    entropy: pl.LazyFrame, *, h: str, grid: np.ndarray, n_boot: int, ci: float, seed: int
) -> pl.DataFrame:
    """Fig 1 data: mean G^ against relative position, correct vs incorrect, per model x dataset,
    for each ``gain`` basis (``GAIN_BASES``), with the trajectories each curve excludes counted; a
    class whose every trajectory is excluded keeps one row with its counts and no curve (null
    rel_pos), so that the figure can say so."""
    frames = []
    for gain in GAIN_BASES:
        g = normalised_gain(entropy, h=h, gain=gain).select(*TRAJ, "k", "rel_pos", "G_hat", "excluded", "correct")
        pts = TrajectoryPoints.of(
            g.collect(), order="k", values=["rel_pos", "G_hat"], per_trajectory=("excluded", "correct")
        )
        counts = pts.trajs.group_by(*GROUP, "correct").agg(n_trajectories=pl.len(), n_excluded=pl.col("excluded").sum())
        curves = pts.interpolate("rel_pos", "G_hat", grid).filter(~pl.col("excluded"))
        parts = []
        for (model, dataset, correct), part in curves.group_by(*GROUP, "correct", maintain_order=True):
            c = curve_with_ci(part, "G_hat", n_boot=n_boot, ci=ci, seed=seed)
            parts.append(c.with_columns(model=pl.lit(model), dataset=pl.lit(dataset), correct=pl.lit(correct)))
        if not parts:  # every class excluded: curve_with_ci's empty curve, under its keys
            none = {"model": pl.String, "dataset": pl.String, "correct": pl.Boolean}
            empty = curve_with_ci(curves.head(0), "G_hat", n_boot=n_boot, ci=ci, seed=seed)
            parts = [empty.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in none.items())]
        curve = pl.concat(parts)
        out = counts.join(curve, on=[*GROUP, "correct"], how="left")
        frames.append(out.with_columns(gain=pl.lit(gain)))
    if not frames:
        return pl.DataFrame()
    order = ["gain", *GROUP, "correct", "rel_pos"]
    return pl.concat(frames, how="diagonal_relaxed").sort(order, descending=[True, False, False, False, False])


# --------------------------------------------------------------------------------------------
# Fig 2: early separability (ROC AUC of -H_k for correctness; siaflow.analysis.stats.auc_with_ci)
# --------------------------------------------------------------------------------------------


def early_auc(entropy: pl.LazyFrame, *, h: str, at: float, n_boot: int, ci: float, seed: int) -> dict:
    """ROC AUC of -H_k for correctness at relative position ``at`` (each trajectory's H_k
    interpolated there; one model x dataset), with its bootstrap CI over questions: ``auc``, ``lo``,
    ``hi``, ``n_trajectories``, ``n_correct`` (``stats.auc_with_ci``)."""
    early = interpolate_to_grid(entropy.with_columns(score=-pl.col(h)), "score", np.array([at])).collect()
    early = early.join(entropy.select(*TRAJ, "correct").unique(TRAJ).collect(), on=TRAJ)
    return auc_with_ci(early, "score", "rel_pos", n_boot=n_boot, ci=ci, seed=seed).row(0, named=True)


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
