"""Aggregations behind the paper's tables and figures (pure functions on entropy tables).

Inputs are entropy tables (``siaflow.estimators.entropy_table``) with ``model`` and ``dataset``
columns added. Every confidence interval is a seeded bootstrap over *questions*.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import polars as pl

from siaflow.estimators import alignment_by_trajectory

TRAJ = ["model", "dataset", "question_id", "trajectory"]
GROUP = ["model", "dataset"]


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


def exact_mean(x: pl.Expr) -> pl.Expr:
    """A mean that is bit-identical whatever order the rows arrive in (a lazy join or group_by does
    not fix it): the values are added one by one in sorted order (a cumulative sum, which the query
    optimiser cannot reorder as it may a plain sum after a sort)."""
    return x.sort().cum_sum().last() / x.count()


def table1_alignment(traj: pl.LazyFrame) -> pl.DataFrame:
    """Mean SIA alignment per model x dataset, with standard error, n defined / n total, the
    correct / incorrect split, the split-sample rho and why undefined trajectories are undefined."""
    rho, ok = pl.col("rho"), pl.col("rho").is_not_nan()
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
    def of(cls, df: pl.LazyFrame | pl.DataFrame, *, order: str, values: list[str], keys: list[str] = TRAJ,
           per_trajectory: tuple[str, ...] = ()) -> "TrajectoryPoints":
        cols = list(dict.fromkeys([order, *values]))
        pts = df.lazy().select(*keys, *per_trajectory, *cols).sort(*keys, order).collect()
        tid = pts.select(pl.struct(keys).rle_id()).to_series().to_numpy()
        start = np.flatnonzero(np.r_[True, tid[1:] != tid[:-1]]) if len(tid) else np.zeros(0, dtype=np.int64)
        return cls(pts.select(*keys, *per_trajectory)[start], tid, np.r_[start, len(tid)],
                   {c: pts[c].cast(pl.Float64).to_numpy() for c in cols})

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
            le = self.count_at_or_below(x, g)                # points with x <= g
            lt = self.count_at_or_below(x, g, strict=True)   # points with x < g
            i1 = start + np.minimum(lt, size - 1)            # first point at or after g (else the last)
            i0 = np.where(le > 0, start + le - 1, i1)        # last point at or before g (else the first)
            x0, x1, y0, y1 = xs[i0], xs[i1], ys[i0], ys[i1]
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = np.where(x1 > x0, (g - x0) / (x1 - x0), 0.0)
            out_g.append(np.full(n, g))
            out_y.append(y0 + (y1 - y0) * frac)
        idx = np.tile(np.arange(n), len(out_g) - 1)
        return self.trajs[idx].with_columns(pl.Series(name, np.concatenate(out_g)), pl.Series(value, np.concatenate(out_y)))

    def last_at_or_before(self, x: str, value: str, at: np.ndarray, *, name: str, used: str) -> pl.DataFrame:
        """``value`` at each ``at``: the last point with x <= at (null where there is none), and
        that point's x as ``used``."""
        xs, ys = self.cols[x], self.cols[value]
        n, start = self.trajs.height, self.bounds[:-1]
        rows = [np.where(le > 0, start + le - 1, -1) for le in (self.count_at_or_below(x, float(a)) for a in at)]
        row = np.concatenate([np.zeros(0, dtype=np.int64), *rows])
        ok, safe = row >= 0, np.maximum(row, 0)
        pick = (lambda arr: arr[safe] if len(arr) else np.zeros(len(row)))
        out = self.trajs[np.tile(np.arange(n), len(rows))].with_columns(
            pl.Series(name, np.repeat(np.asarray(at), n)), pl.Series(used, pick(xs)), pl.Series(value, pick(ys)),
            pl.Series("_ok", ok))
        return out.with_columns(pl.when("_ok").then(pl.col(used)), pl.when("_ok").then(pl.col(value))).drop("_ok")


def interpolate_to_grid(df: pl.LazyFrame, value: str, grid: np.ndarray, *, keys: list[str] = TRAJ,
                        x: str = "rel_pos") -> pl.LazyFrame:
    """Linear interpolation of ``value`` (per trajectory, against ``x``) at each grid point.
    Every trajectory has checkpoints at x = 0 and x = 1, so every grid point is bracketed."""
    return TrajectoryPoints.of(df, order=x, values=[value], keys=keys).interpolate(x, value, grid, name=x).lazy()


def bootstrap_mean_ci(values: np.ndarray, *, n_boot: int, ci: float, seed: int, chunk: int = 200):
    """Mean over rows (questions) of a (questions x points) matrix, NaN-aware, with a percentile
    bootstrap CI from resampling rows. Returns (mean, lo, hi) arrays over points."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    n = values.shape[0]
    if n == 0:
        mean = np.full(values.shape[1], np.nan)
        return mean, mean.copy(), mean.copy()
    # all-NaN columns (no question has a value there) stay NaN without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
        rng = np.random.default_rng(seed)
        present = ~np.isnan(values)
        filled = np.where(present, values, 0.0)
        boots = []
        for start in range(0, n_boot, chunk):
            idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
            # how often each row was drawn, then the NaN-aware resample means as two matrix products
            counts = np.bincount((idx + n * np.arange(len(idx))[:, None]).ravel(), minlength=len(idx) * n)
            counts = counts.reshape(len(idx), n).astype(float)
            boots.append((counts @ filled) / (counts @ present))
        boots = np.concatenate(boots)
        a = (1 - ci) / 2
        lo, hi = np.nanquantile(boots, a, axis=0), np.nanquantile(boots, 1 - a, axis=0)
    return mean, lo, hi


def _question_matrix(df: pl.DataFrame, value: str, index: str = "question_id", column: str = "rel_pos"):
    """Per-question mean of ``value`` at each ``column`` point -> (questions x points) matrix."""
    per_q = df.group_by(index, column).agg(pl.col(value).mean())
    wide = per_q.pivot(on=column, index=index, values=value, sort_columns=True).sort(index)
    cols = sorted((c for c in wide.columns if c != index), key=float)
    return wide.select(cols).to_numpy().astype(float), np.array([float(c) for c in cols])


def curve_with_ci(df: pl.DataFrame, value: str, *, n_boot: int, ci: float, seed: int) -> pl.DataFrame:
    """Mean of ``value`` at each rel_pos over questions, 95% bootstrap CI over questions."""
    if df.height == 0:
        return pl.DataFrame(schema={"rel_pos": pl.Float64, "mean": pl.Float64, "lo": pl.Float64, "hi": pl.Float64,
                                    "n_questions": pl.Int64})
    m, x = _question_matrix(df, value)
    mean, lo, hi = bootstrap_mean_ci(m, n_boot=n_boot, ci=ci, seed=seed)
    return pl.DataFrame({"rel_pos": x, "mean": mean, "lo": lo, "hi": hi,
                         "n_questions": np.isfinite(m).sum(axis=0).astype(np.int64)})


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


def cumulative_gain_curves(entropy: pl.LazyFrame, *, h: str, grid: np.ndarray, n_boot: int, ci: float,
                           seed: int) -> pl.DataFrame:
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
# Fig 2: early separability (ROC AUC of -H_k for correctness)
# --------------------------------------------------------------------------------------------


def roc_auc(scores, labels, weights=None) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (ties count one half),
    optionally with non-negative sample weights. NaN when only one class is present."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(s) & (w > 0)
    s, y, w = s[keep], y[keep], w[keep]
    wp, wn = w[y].sum(), w[~y].sum()
    if wp == 0 or wn == 0:
        return math.nan
    uniq, inv = np.unique(s, return_inverse=True)
    pos = np.bincount(inv, weights=w * y, minlength=len(uniq))
    neg = np.bincount(inv, weights=w * ~y, minlength=len(uniq))
    neg_below = np.cumsum(neg) - neg
    return float((pos * (neg_below + 0.5 * neg)).sum() / (wp * wn))


def bootstrap_roc_auc(scores, labels, groups, counts: np.ndarray, chunk: int = 32) -> np.ndarray:
    """ROC AUC of ``scores`` for boolean ``labels`` under each row of ``counts`` (bootstrap
    resamples x groups: how many times each group was drawn; a row weighs its group's count).
    Equal to ``roc_auc(scores, labels, counts[b, groups])`` for every b, vectorised: one sort, then
    per resample an integer cumulative sum of negative weights read off at each positive (exact,
    and several times faster than a float cumulative sum)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    gi = np.asarray(groups, dtype=np.int64)
    keep = np.isfinite(s)
    s, y, gi = s[keep], y[keep], gi[keep]
    counts = np.asarray(counts)
    out = np.full(counts.shape[0], np.nan)
    if counts.size == 0:
        return out
    top = int(counts.max())
    # pair products are at most top * (top * rows) * 2 (ties doubled); int32 while that fits
    counts = counts.astype(np.int32 if 2 * top * top * max(len(s), 1) < 2 ** 31 else np.int64)
    neg_s, neg_g = s[~y], gi[~y]
    order = np.argsort(neg_s, kind="stable")
    neg_s, neg_g = neg_s[order], neg_g[order]
    pos_s, pos_g = s[y], gi[y]
    lt = np.searchsorted(neg_s, pos_s, side="left")    # negatives strictly below each positive
    le = np.searchsorted(neg_s, pos_s, side="right")   # ... at or below it (ties count one half)
    ties = bool((lt != le).any())
    pos_per_group = np.bincount(pos_g, minlength=counts.shape[1]).astype(np.float64)
    for b0 in range(0, counts.shape[0], chunk):
        c = counts[b0:b0 + chunk]
        cum = np.zeros((c.shape[0], len(neg_g) + 1), dtype=c.dtype)
        np.cumsum(c[:, neg_g], axis=1, out=cum[:, 1:])
        below = cum[:, lt] + cum[:, le] if ties else cum[:, lt]          # doubled when ties count half
        num = (c[:, pos_g] * below).sum(axis=1, dtype=np.int64) * (0.5 if ties else 1.0)
        wp, wn = c @ pos_per_group, cum[:, -1].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b0:b0 + chunk] = np.where((wp > 0) & (wn > 0), num / (wp * wn), np.nan)
    return out


@functools.lru_cache(maxsize=4)
def resample_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """How many times each of ``n`` items is drawn in each of ``n_boot`` seeded resamples with
    replacement (n_boot x n, read-only; cached, as every curve of a group reuses them)."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) if n else np.zeros((n_boot, 0), dtype=np.int64)
    counts.flags.writeable = False
    return counts


def _workers() -> int:
    """CPUs this process may use (SLURM and taskset restrict the affinity mask)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def auc_with_ci(df: pl.DataFrame, score: str, at: str, *, n_boot: int, ci: float, seed: int) -> pl.DataFrame:
    """AUC of ``score`` for ``correct`` at every value of ``at``, with a bootstrap CI that
    resamples questions (a question drawn m times weighs its trajectories m times). The same
    resamples serve every point; points are computed in parallel threads (numpy releases the GIL)."""
    qids = df["question_id"].unique().sort()
    n_q = len(qids)
    counts = resample_counts(n_q, n_boot, seed)
    df = df.with_columns(_qi=pl.col("question_id").replace_strict(qids, np.arange(n_q), return_dtype=pl.Int64))
    a = (1 - ci) / 2

    def one(item):
        x, part = item
        s, y = part[score].to_numpy(), part["correct"].to_numpy()
        auc = roc_auc(s, y)
        boots = bootstrap_roc_auc(s, y, part["_qi"].to_numpy(), counts) if not math.isnan(auc) else np.array([np.nan])
        finite = boots[np.isfinite(boots)]
        lo, hi = (np.quantile(finite, a), np.quantile(finite, 1 - a)) if finite.size else (np.nan, np.nan)
        return {at: float(x[0]), "auc": auc, "lo": float(lo), "hi": float(hi), "n_trajectories": part.height,
                "n_correct": int(y.sum())}

    points = list(df.sort(at).group_by(at, maintain_order=True))
    with ThreadPoolExecutor(max_workers=max(1, min(_workers(), len(points)))) as pool:
        rows = list(pool.map(one, points))
    return pl.DataFrame(rows)


def values_at_absolute_k(entropy: pl.LazyFrame, value: str, ks: np.ndarray) -> pl.LazyFrame:
    """``value`` at absolute prefix lengths ``ks``: the last checkpoint at or before k, so a
    trajectory that ended before k carries its final value (null before its first checkpoint)."""
    pts = TrajectoryPoints.of(entropy, order="k", values=[value])
    return _at_absolute_k(pts, value, ks).lazy()


def _at_absolute_k(pts: TrajectoryPoints, value: str, ks: np.ndarray) -> pl.DataFrame:
    return (pts.last_at_or_before("k", value, np.asarray(ks, dtype=np.int64), name="at_k", used="k_used")
               .with_columns(pl.col("at_k").cast(pl.Int64), pl.col("k_used").cast(pl.Int64)))


def auc_curves(entropy: pl.LazyFrame, *, h: str, stride: int, grid: np.ndarray, n_boot: int, ci: float,
               seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
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
        out_abs.append(auc_with_ci(part, "score", "at_k", n_boot=n_boot, ci=ci, seed=seed)
                       .with_columns(model=pl.lit(model), dataset=pl.lit(dataset)))
    for (model, dataset), part in relative.group_by(*GROUP, maintain_order=True):
        out_rel.append(auc_with_ci(part, "score", "rel_pos", n_boot=n_boot, ci=ci, seed=seed)
                       .with_columns(model=pl.lit(model), dataset=pl.lit(dataset)))
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


def saturation_summary(entropy: pl.LazyFrame, *, h: str, grid: np.ndarray, n_boot: int, ci: float, seed: int,
                       plateau_fraction: float, late_from: float, rebound_threshold: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fig 3 data: mean H_k against relative position per model x dataset (CI over questions), and
    per model x dataset the plateau level and the late-rebound rate."""
    pts = TrajectoryPoints.of(entropy, order="k", values=["rel_pos", h], per_trajectory=("correct",))
    curves = pts.interpolate("rel_pos", h, grid)
    frames = []
    for (model, dataset), part in curves.group_by(*GROUP, maintain_order=True):
        frames.append(curve_with_ci(part, h, n_boot=n_boot, ci=ci, seed=seed)
                      .with_columns(model=pl.lit(model), dataset=pl.lit(dataset)))
    curve = pl.concat(frames).sort(*GROUP, "rel_pos")
    plateau = (curve.filter(pl.col("rel_pos") >= 1 - plateau_fraction - 1e-9)
                    .group_by(GROUP).agg(plateau_level=exact_mean(pl.col("mean"))))
    rebounds = (_with_rebounds(pts, h=h, late_from=late_from, threshold=rebound_threshold)
                .group_by(GROUP).agg(late_rebound_rate=pl.col("late_rebound").mean(), n_trajectories=pl.len()))
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
    keys = pl.LazyFrame({"model": [m for m, _ in pairs], "dataset": [d for _, d in pairs]},
                        schema={"model": pl.String, "dataset": pl.String})
    return df.join(keys, on=GROUP, how="semi")


# --------------------------------------------------------------------------------------------
# Table 2: shuffle-prefix ablation
# --------------------------------------------------------------------------------------------


def shuffle_comparison(original: pl.LazyFrame, shuffled: pl.LazyFrame, *, h: str = "H") -> pl.DataFrame:
    """Original vs shuffled-prefix alignment per model x dataset, with the mean paired change of
    H_k and S_k under shuffling (same question, trajectory and checkpoint)."""
    def summary(ent, tag):
        return (trajectory_alignment(ent, h=h).group_by(GROUP)
                .agg(_mean_defined("rho").alias(f"mean_rho_{tag}"), pl.col("rho").is_not_nan().sum().alias(f"n_defined_{tag}"),
                     pl.len().alias("n_total")))
    keys = [*TRAJ, "k"]
    paired = (original.select(*keys, pl.col(h).alias("H_o"), pl.col("S").alias("S_o"))
              .join(shuffled.select(*keys, pl.col(h).alias("H_s"), pl.col("S").alias("S_s")), on=keys, how="inner")
              .group_by(GROUP).agg(mean_H_original=exact_mean(pl.col("H_o")), mean_H_shuffled=exact_mean(pl.col("H_s")),
                                   mean_delta_H=exact_mean(pl.col("H_s") - pl.col("H_o")),
                                   mean_S_original=exact_mean(pl.col("S_o")), mean_S_shuffled=exact_mean(pl.col("S_s")),
                                   mean_delta_S=exact_mean(pl.col("S_s") - pl.col("S_o")), n_checkpoints=pl.len()))
    out = summary(original, "original").join(summary(shuffled, "shuffled").drop("n_total"), on=GROUP)
    out = out.with_columns(delta_rho=pl.col("mean_rho_shuffled") - pl.col("mean_rho_original"))
    return out.join(paired, on=GROUP, how="left").sort(GROUP).collect()


# --------------------------------------------------------------------------------------------
# Table 3: Monte-Carlo ablation (coarser stride, fewer samples)
# --------------------------------------------------------------------------------------------


def mc_source_stride(strides: list[int], coarse_stride: int) -> int | None:
    """The finest configured stride that the coarse stride is a multiple of (its checkpoints are
    then a subset), or None when the coarse setting needs a run of its own."""
    fits = [s for s in strides if coarse_stride % s == 0]
    return min(fits) if fits else None


def subsample_continuations(samples: pl.LazyFrame, trajectories: pl.LazyFrame, *, stride: int,
                            n_continuations: int) -> pl.LazyFrame:
    """The exact sub-sample of a finer run that a coarser (stride, K') run would have produced:
    checkpoints k in {0, s', 2s', ...} ∪ {T} and the first K' draws of each (draws are stored in
    sample order and use per-sample random streams, so these are the same draws)."""
    T = trajectories.select(pl.col("question_id"), pl.col("trajectory").cast(pl.Int64), pl.col("T").cast(pl.Int64))
    s = samples.with_columns(pl.col("trajectory").cast(pl.Int64), pl.col("k").cast(pl.Int64))
    s = s.join(T, on=["question_id", "trajectory"], how="left")
    keep = (pl.col("k") % stride == 0) | (pl.col("k") == pl.col("T"))
    return s.filter(keep & (pl.col("sample") < n_continuations)).drop("T")


# --------------------------------------------------------------------------------------------
# Fano's bound (Theorem 1)
# --------------------------------------------------------------------------------------------


def fano_lower_bound(h, answer_space: int):
    """Lower bound on the MAP error from Fano's inequality: (H - log 2) / log(|A| - 1), floored at 0."""
    if answer_space < 3:
        raise ValueError(f"Fano's bound needs |A| >= 3, got {answer_space}")
    return np.maximum(0.0, (np.asarray(h, dtype=float) - math.log(2)) / math.log(answer_space - 1))


def fano_data(entropy: pl.LazyFrame, *, h: str, answer_space: dict[str, int], n_bins: int, n_boot: int, ci: float,
              seed: int) -> pl.DataFrame:
    """Per model x dataset and H_k bin: the empirical error of the MAP answer argmax p^_k (against
    gold), with a bootstrap CI over questions, and Fano's lower bound at the bin's mean H_k."""
    df = entropy.select(*TRAJ, h, "map_correct").collect()
    frames = []
    for (model, dataset), part in df.group_by(*GROUP, maintain_order=True):
        hs = part[h].to_numpy()
        edges = np.linspace(0.0, max(float(hs.max()), 1e-9), n_bins + 1)
        idx = np.clip(np.searchsorted(edges, hs, side="right") - 1, 0, n_bins - 1)
        part = part.with_columns(bin=pl.Series(idx), error=(~pl.col("map_correct")).cast(pl.Float64))
        for b, sub in part.group_by("bin", maintain_order=True):
            per_q = sub.group_by("question_id").agg(pl.col("error").mean()).sort("question_id")["error"].to_numpy()
            mean, lo, hi = bootstrap_mean_ci(per_q, n_boot=n_boot, ci=ci, seed=seed)
            mean_h = float(sub[h].mean())
            frames.append({"model": model, "dataset": dataset, "bin": int(b[0]), "h_lo": float(edges[b[0]]),
                           "h_hi": float(edges[b[0] + 1]), "mean_H": mean_h, "error": float(sub["error"].mean()),
                           "error_q_mean": float(mean[0]), "lo": float(lo[0]), "hi": float(hi[0]),
                           "fano_bound": float(fano_lower_bound(mean_h, answer_space[dataset])),
                           "answer_space": answer_space[dataset], "n_checkpoints": sub.height})
    return pl.DataFrame(frames).sort(*GROUP, "bin")
