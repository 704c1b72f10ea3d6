"""SIA through training (fig_training_dynamics): the SIA measurement of every saved checkpoint of a
toy model's training run, summarised per checkpoint with bootstrap CIs over questions.

Per checkpoint (a model whose entropy table the usual rules made):

* ``accuracy``: fraction of trajectories whose answer is right;
* ``mean_rho`` (Table 1's alignment coefficient), with ``mean_rho_correct``, ``mean_rho_incorrect``
  and the split-sample ``mean_rho_split``: means over the trajectories where rho is defined;
* ``early_auc``: ROC AUC of -H_k for correctness at relative position ``early_position`` (Fig 2);
  NaN unless each class (correct, incorrect) has at least ``MIN_CLASS`` trajectories, and its
  ``n`` is the smaller class;
* ``H_0``: the answer entropy before any reasoning token, the mean over questions.

Every CI resamples questions (``siaflow.analysis.stats``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from siaflow.analysis.curves import early_auc
from siaflow.analysis.metrics import trajectory_alignment
from siaflow.analysis.stats import bootstrap_cluster_mean_ci, bootstrap_mean_ci

RHO_METRICS = {
    "mean_rho": ("rho", None),
    "mean_rho_correct": ("rho", True),
    "mean_rho_incorrect": ("rho", False),
    "mean_rho_split": ("rho_split", None),
}
METRICS = ["accuracy", *RHO_METRICS, "early_auc", "H_0"]
MIN_CLASS = 5  # an AUC from fewer correct (or incorrect) trajectories is not reported


def checkpoint_summary(
    entropy: pl.DataFrame, *, h: str, early_position: float, n_boot: int, ci: float, seed: int
) -> list[dict]:
    """The metrics of one checkpoint (one model x dataset entropy table), one row per metric:
    value, CI bounds and how many trajectories (questions for H_0) the value covers."""
    boot = dict(n_boot=n_boot, ci=ci, seed=seed)
    traj = trajectory_alignment(entropy.lazy(), h=h).collect()
    rows = [
        _row(
            "accuracy",
            *bootstrap_cluster_mean_ci(
                traj["correct"].cast(pl.Float64).to_numpy(), traj["question_id"].to_numpy(), **boot
            ),
            traj.height,
        )
    ]
    for name, (col, correct) in RHO_METRICS.items():
        part = traj if correct is None else traj.filter(pl.col("correct") == correct)
        values = part[col].to_numpy().astype(float)
        rows.append(
            _row(
                name,
                *bootstrap_cluster_mean_ci(values, part["question_id"].to_numpy(), **boot),
                int(np.count_nonzero(~np.isnan(values))),
            )
        )
    auc = early_auc(entropy.lazy(), h=h, at=early_position, **boot)
    smaller = min(auc["n_correct"], auc["n_trajectories"] - auc["n_correct"])
    if smaller < MIN_CLASS:
        auc.update(auc=np.nan, lo=np.nan, hi=np.nan)
    rows.append(_row("early_auc", auc["auc"], auc["lo"], auc["hi"], smaller))
    h0 = entropy.filter(pl.col("k") == 0).group_by("question_id").agg(pl.col(h).mean()).sort("question_id")
    mean, lo, hi = bootstrap_mean_ci(h0[h].to_numpy(), **boot)
    rows.append(_row("H_0", float(mean[0]), float(lo[0]), float(hi[0]), h0.height))
    return rows


def _row(metric: str, value: float, lo: float, hi: float, n: int) -> dict:
    return {"metric": metric, "value": float(value), "lo": float(lo), "hi": float(hi), "n": int(n)}


def training_dynamics(
    entropy: dict[str, pl.DataFrame],
    checkpoints: dict[str, dict],
    *,
    h: str,
    early_position: float,
    n_boot: int,
    ci: float,
    seed: int,
) -> pl.DataFrame:
    """Long table of every checkpoint's metrics: model, regime, run, training step, metric, value,
    lo, hi, n. ``entropy`` maps a checkpoint model to its entropy table, ``checkpoints`` to its
    ``regime`` and ``training_step`` (an sft+rl step counts on from the sft run's last step)."""
    rows = []
    for model, table in entropy.items():
        info = checkpoints[model]
        for r in checkpoint_summary(table, h=h, early_position=early_position, n_boot=n_boot, ci=ci, seed=seed):
            rows.append(
                {"model": model, "regime": info["regime"], "run": info["run"], "step": int(info["training_step"]), **r}
            )
    return pl.DataFrame(rows).sort("regime", "step", "metric")
