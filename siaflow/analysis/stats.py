"""General statistics, apart from the paper's aggregations (``siaflow.analysis.metrics``): order-independent
means, the percentile bootstrap over rows, and ROC AUC with its bootstrap over groups.
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


def exact_mean(x: pl.Expr) -> pl.Expr:
    """A mean that is bit-identical whatever order the rows arrive in (a lazy join or group_by does
    not fix it): the values are added one by one in sorted order (a cumulative sum, which the query
    optimiser cannot reorder as it may a plain sum after a sort)."""
    return x.sort().cum_sum().last() / x.count()


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


class ClusterMean(NamedTuple):
    """A mean over the defined values and its percentile bootstrap over groups (questions): the CI
    bounds and the standard error (the bootstrap means' standard deviation)."""

    mean: float
    lo: float
    hi: float
    se: float


def _group_sums(values, codes, n_groups):
    v = np.asarray(values, dtype=float)
    ok = ~np.isnan(v)
    sums = np.bincount(codes, weights=np.where(ok, v, 0.0), minlength=n_groups)
    return sums, np.bincount(codes, weights=ok.astype(float), minlength=n_groups)


def _summarise(estimate: float, boots: np.ndarray, ci: float) -> ClusterMean:
    boots = boots[np.isfinite(boots)]
    if math.isnan(estimate) or boots.size == 0:
        return ClusterMean(estimate, math.nan, math.nan, math.nan)
    a = (1 - ci) / 2
    se = float(boots.std(ddof=1)) if boots.size > 1 else math.nan
    return ClusterMean(estimate, float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a)), se)


def bootstrap_cluster_mean(values, groups, *, n_boot: int, ci: float, seed: int) -> ClusterMean:
    """Mean of the defined (non-NaN) ``values`` with a percentile bootstrap that resamples
    ``groups`` (questions): a question drawn m times weighs its values m times, so values that share
    a question (its N trajectories, its k = 0 draws) move together. NaN where no value is defined."""
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    sums, counts = _group_sums(values, codes, n_groups)
    if counts.sum() == 0:
        return ClusterMean(math.nan, math.nan, math.nan, math.nan)
    draws = resample_counts(n_groups, n_boot, seed).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = (draws @ sums) / (draws @ counts)
    return _summarise(float(sums.sum() / counts.sum()), boots, ci)


def bootstrap_cluster_mean_ci(values, groups, *, n_boot: int, ci: float, seed: int) -> tuple[float, float, float]:
    """``bootstrap_cluster_mean``'s (mean, lo, hi)."""
    return tuple(bootstrap_cluster_mean(values, groups, n_boot=n_boot, ci=ci, seed=seed)[:3])


def bootstrap_cluster_difference(a, b, groups, *, n_boot: int, ci: float, seed: int) -> ClusterMean:
    """mean(defined ``b``) - mean(defined ``a``), where ``a`` and ``b`` are two measurements of the
    same rows (trajectories) in ``groups`` (questions), with a *paired* bootstrap: each resample of
    questions serves both means, so what the two share cancels in the interval. NaN where either
    side has no defined value."""
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    sa, ca = _group_sums(a, codes, n_groups)
    sb, cb = _group_sums(b, codes, n_groups)
    if ca.sum() == 0 or cb.sum() == 0:
        return ClusterMean(math.nan, math.nan, math.nan, math.nan)
    draws = resample_counts(n_groups, n_boot, seed).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = (draws @ sb) / (draws @ cb) - (draws @ sa) / (draws @ ca)
    return _summarise(float(sb.sum() / cb.sum() - sa.sum() / ca.sum()), boots, ci)


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
    counts = counts.astype(np.int32 if 2 * top * top * max(len(s), 1) < 2**31 else np.int64)
    neg_s, neg_g = s[~y], gi[~y]
    order = np.argsort(neg_s, kind="stable")
    neg_s, neg_g = neg_s[order], neg_g[order]
    pos_s, pos_g = s[y], gi[y]
    lt = np.searchsorted(neg_s, pos_s, side="left")  # negatives strictly below each positive
    le = np.searchsorted(neg_s, pos_s, side="right")  # ... at or below it (ties count one half)
    ties = bool((lt != le).any())
    pos_per_group = np.bincount(pos_g, minlength=counts.shape[1]).astype(np.float64)
    for b0 in range(0, counts.shape[0], chunk):
        c = counts[b0 : b0 + chunk]
        cum = np.zeros((c.shape[0], len(neg_g) + 1), dtype=c.dtype)
        np.cumsum(c[:, neg_g], axis=1, out=cum[:, 1:])
        below = cum[:, lt] + cum[:, le] if ties else cum[:, lt]  # doubled when ties count half
        num = (c[:, pos_g] * below).sum(axis=1, dtype=np.int64) * (0.5 if ties else 1.0)
        wp, wn = c @ pos_per_group, cum[:, -1].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b0 : b0 + chunk] = np.where((wp > 0) & (wn > 0), num / (wp * wn), np.nan)
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
    """CPUs this process may use: the affinity mask (SLURM and taskset restrict it), and no more than
    the rule's threads (``SIAFLOW_THREADS``, set by ``siaflow.stages``)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cpus, int(os.environ.get("SIAFLOW_THREADS") or cpus))


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
        return {
            at: float(x[0]),
            "auc": auc,
            "lo": float(lo),
            "hi": float(hi),
            "n_trajectories": part.height,
            "n_correct": int(y.sum()),
        }

    points = list(df.sort(at).group_by(at, maintain_order=True))
    with ThreadPoolExecutor(max_workers=max(1, min(_workers(), len(points)))) as pool:
        rows = list(pool.map(one, points))
    return pl.DataFrame(rows)
