"""Probe vs full continuation (table_probe_agreement, fig_probe_agreement; docs/early-exit.md).

Per model x dataset, on the same checkpoints of the same trajectories:

* ``r_H``: Pearson correlation of H_k from the forced-answer probes with H_k from the full
  continuations, over the checkpoints before the end (k < T: at k = T both read the finished
  answer, which would inflate the agreement); ``mad_H``: their mean absolute difference there;
* ``rho_full`` / ``rho_probe``: Table 1's mean alignment coefficient from each estimator;
* ``early_auc_full`` / ``early_auc_probe``: ROC AUC of -H_k for correctness at relative position
  ``analysis.early_position`` (Fig 2's early separability) from each;
* ``tokens_full`` / ``tokens_probe``: generated tokens per estimated checkpoint (every draw's
  tokens, a stop token or stop string included, as the ledger counts them), and their ratio.

Every CI is a percentile bootstrap over questions.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from siaflow.analysis.curves import early_auc
from siaflow.analysis.metrics import trajectory_alignment
from siaflow.analysis.stats import bootstrap_cluster_mean_ci, resample_counts
from siaflow.keys import GROUP, TRAJ, draw_tokens

CHECKPOINT = [*TRAJ, "k"]


def checkpoint_tokens(draws: pl.LazyFrame) -> pl.LazyFrame:
    """Per estimated checkpoint (the empty prefix once per question, trajectory = -1): the tokens
    its draws generated, and how many draws there were."""
    return (
        draws.with_columns(pl.col("trajectory").cast(pl.Int64), pl.col("k").cast(pl.Int64))
        .group_by(CHECKPOINT)
        .agg(tokens=draw_tokens().sum().cast(pl.Int64), draws=pl.len())
    )


def paired_checkpoints(full: pl.LazyFrame, probe: pl.LazyFrame, *, h: str) -> pl.DataFrame:
    """One row per checkpoint of every trajectory: H_full, H_probe, their MAP answers, k, T and the
    trajectory's correctness (entropy tables of the two variants, same stride)."""
    cols = [*CHECKPOINT, "T", "rel_pos", "correct", "gold"]
    f = full.select(*cols, pl.col(h).alias("H_full"), pl.col("map_answer").alias("map_full"))
    p = probe.select(*CHECKPOINT, pl.col(h).alias("H_probe"), pl.col("map_answer").alias("map_probe"))
    paired = f.join(p, on=CHECKPOINT, how="inner").sort(CHECKPOINT).collect()
    missing = f.select(CHECKPOINT).collect().height - paired.height
    if missing:
        raise ValueError(f"{missing} checkpoints have full continuations but no probes (or the other way round)")
    return paired


def bootstrap_pearson(x, y, groups, *, n_boot: int, ci: float, seed: int, chunk: int = 64):
    """Pearson r of (x, y) with a percentile CI that resamples ``groups`` (a group drawn m times
    weighs its rows m times). NaN where either series is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    r = _weighted_pearson(np.ones((1, len(x))), x, y)[0]
    if math.isnan(r):
        return math.nan, math.nan, math.nan
    counts = resample_counts(n_groups, n_boot, seed)
    boots = np.concatenate(
        [_weighted_pearson(counts[b : b + chunk][:, codes].astype(float), x, y) for b in range(0, n_boot, chunk)]
    )
    boots = boots[np.isfinite(boots)]
    a = (1 - ci) / 2
    return float(r), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def _weighted_pearson(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r under each row of weights ``w`` (resamples x rows)."""
    sw = w.sum(axis=1)
    mx, my = (w @ x) / sw, (w @ y) / sw
    cxx = (w @ (x * x)) / sw - mx * mx
    cyy = (w @ (y * y)) / sw - my * my
    cxy = (w @ (x * y)) / sw - mx * my
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cxy / np.sqrt(cxx * cyy)
    return np.where((cxx > 1e-15) & (cyy > 1e-15), r, np.nan)


def _ci_columns(name: str, value: float, lo: float, hi: float) -> dict:
    return {name: value, f"{name}_lo": lo, f"{name}_hi": hi}


def agreement_row(
    full: pl.LazyFrame,
    probe: pl.LazyFrame,
    paired: pl.DataFrame,
    tokens: dict[str, pl.LazyFrame],
    *,
    h: str,
    early_position: float,
    boot,
) -> dict:
    """table_probe_agreement's numbers for one model x dataset (module docstring). ``paired``: its
    ``paired_checkpoints``; ``tokens``: the ``checkpoint_tokens`` of each estimator's draws, under
    "full" and "probe"."""
    before_end = paired.filter(pl.col("k") < pl.col("T"))
    q = before_end["question_id"].to_numpy()
    row = {"n_questions": paired["question_id"].n_unique(), "n_checkpoints": before_end.height}
    row |= _ci_columns("r_H", *bootstrap_pearson(before_end["H_full"], before_end["H_probe"], q, **boot))
    diff = (before_end["H_probe"] - before_end["H_full"]).abs().to_numpy()
    row |= _ci_columns("mad_H", *bootstrap_cluster_mean_ci(diff, q, **boot))
    for tag, ent in (("full", full), ("probe", probe)):
        traj = trajectory_alignment(ent, h=h).collect()
        rho = bootstrap_cluster_mean_ci(traj["rho"].to_numpy(), traj["question_id"].to_numpy(), **boot)
        row |= _ci_columns(f"rho_{tag}", *rho)
        auc = early_auc(ent, h=h, at=early_position, **boot)
        row |= _ci_columns(f"early_auc_{tag}", auc["auc"], auc["lo"], auc["hi"])
    for tag, t in tokens.items():
        per = t.select(pl.col("tokens").sum(), pl.len().alias("n"), pl.col("draws").mean()).collect().row(0)
        row[f"K_{tag}"] = int(round(per[2]))
        row[f"tokens_{tag}"] = per[0] / per[1] if per[1] else math.nan
    row["token_ratio"] = row["tokens_probe"] / row["tokens_full"] if row["tokens_full"] else math.nan
    return row


def probe_agreement_table(
    full: pl.LazyFrame,
    probe: pl.LazyFrame,
    paired: pl.DataFrame,
    full_draws: pl.LazyFrame,
    probe_draws: pl.LazyFrame,
    *,
    h: str,
    early_position: float,
    n_boot: int,
    ci: float,
    seed: int,
) -> pl.DataFrame:
    """table_probe_agreement: one row per model x dataset (entropy tables and draws with model and
    dataset columns; ``paired``: the tables' ``paired_checkpoints``)."""
    boot = dict(n_boot=n_boot, ci=ci, seed=seed)
    rows = []
    for model, dataset in full.select(GROUP).unique().sort(GROUP).collect().iter_rows():
        pair = (pl.col("model") == model) & (pl.col("dataset") == dataset)
        tokens = {
            "full": checkpoint_tokens(full_draws.filter(pair)),
            "probe": checkpoint_tokens(probe_draws.filter(pair)),
        }
        row = agreement_row(
            full.filter(pair),
            probe.filter(pair),
            paired.filter(pair),
            tokens,
            h=h,
            early_position=early_position,
            boot=boot,
        )
        rows.append({"model": model, "dataset": dataset, **row})
    return pl.DataFrame(rows)


def agreement_points(paired: pl.DataFrame) -> pl.DataFrame:
    """fig_probe_agreement's data: how many checkpoints before the end (k < T) have each pair
    (H_full, H_probe), per model x dataset (plug-in entropies of K draws take few values), from
    ``paired_checkpoints``."""
    return (
        paired.filter(pl.col("k") < pl.col("T"))
        .with_columns(pl.col("H_full").round(6), pl.col("H_probe").round(6))
        .group_by(*GROUP, "H_full", "H_probe")
        .agg(n=pl.len())
        .sort(*GROUP, "H_full", "H_probe")
    )
