"""Fano's bound (the SIA paper's Theorem 1) on data: the error of the MAP answer argmax p^_k
against the lower bound (H_k - log 2) / log(|A| - 1) (docs/design.md §2, ``fig_fano``)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from siaflow.analysis.stats import bootstrap_mean_ci
from siaflow.keys import GROUP, TRAJ


def fano_lower_bound(h, answer_space: int):
    """Lower bound on the MAP error from Fano's inequality: (H - log 2) / log(|A| - 1), floored at 0."""
    if answer_space < 3:
        raise ValueError(f"Fano's bound needs |A| >= 3, got {answer_space}")
    return np.maximum(0.0, (np.asarray(h, dtype=float) - math.log(2)) / math.log(answer_space - 1))


def answer_space_size(spec: dict) -> int:
    """|A| for Fano's bound: the dataset's ``answer_space_size``, else 6 for options (A-E and
    NULL); numeric datasets must say it (there is no natural size)."""
    if spec.get("answer_space_size"):
        return int(spec["answer_space_size"])
    if spec["answer_type"] == "option":
        return 6
    raise ValueError("fig_fano needs datasets.<name>.answer_space_size for numeric datasets")


def fano_data(
    entropy: pl.LazyFrame, *, h: str, answer_space: dict[str, int], n_bins: int, n_boot: int, ci: float, seed: int
) -> pl.DataFrame:
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
            frames.append(
                {
                    "model": model,
                    "dataset": dataset,
                    "bin": int(b[0]),
                    "h_lo": float(edges[b[0]]),
                    "h_hi": float(edges[b[0] + 1]),
                    "mean_H": mean_h,
                    "error": float(sub["error"].mean()),
                    "error_q_mean": float(mean[0]),
                    "lo": float(lo[0]),
                    "hi": float(hi[0]),
                    "fano_bound": float(fano_lower_bound(mean_h, answer_space[dataset])),
                    "answer_space": answer_space[dataset],
                    "n_checkpoints": sub.height,
                }
            )
    return pl.DataFrame(frames).sort(*GROUP, "bin")
