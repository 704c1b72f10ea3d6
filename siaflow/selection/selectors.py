"""One pool, every selector (table_selection; definitions and sources in docs/selection.md).

The pool is each question's first N trajectories (``sampling.n_trajectories``): the ones with
continuations, so every score below exists for every response. Per response:

* EDIS, mean token entropy, self-certainty (``siaflow.selection.edis``);
* DeepConf (Fu et al. 2025, "Deep Think with Confidence"): token confidence
  C_t = -(1/k) sum_{j<=k} log p_t(j) over the k most likely tokens (recorded by the backends);
  group confidence = mean C_t over a sliding window of n tokens; per trace the mean, the lowest
  group, the mean of the bottom 10% of groups, and the tail (the mean C_t over the last tokens);
* Certaindex (Fu et al. 2024, "Efficiently Serving LLM Reasoning Programs with Certaindex"):
  certainty of the answers reached from a prefix, 1 - H_k / ln K, here averaged over the trace's
  checkpoints before its end (k < T).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from siaflow.keys import TRAJ
from siaflow.selection import edis
from siaflow.selection.bestofn import Selector

DEEPCONF_SCORES = ("conf_mean", "conf_lowest_group", "conf_bottom_groups", "conf_tail")
# what each score needs of the engine: the full next-token distribution (the transformers backend),
# the top-k log-probabilities (vLLM's `logprobs`, or any backend), or answers sampled from prefixes
NEEDS = {
    "edis": "full vocabulary (top-k approximation on vLLM)",
    "mean_entropy": "full vocabulary (top-k approximation on vLLM)",
    "self_certainty": "full vocabulary (not on vLLM)",
    **{s: "top-k log-probabilities" for s in DEEPCONF_SCORES},
    "certaindex": "K continuations per checkpoint (no log-probabilities)",
}


def group_confidences(conf, window: int) -> np.ndarray:
    """DeepConf group confidence: the mean token confidence of every window of ``window``
    consecutive tokens (a trace shorter than the window is one group)."""
    c = np.asarray(conf, dtype=float)
    if len(c) <= window:
        return c[None].mean(axis=1) if len(c) else np.zeros(0)
    cs = np.concatenate([[0.0], np.cumsum(c)])
    return (cs[window:] - cs[:-window]) / window


def deepconf_scores(conf, *, window: int, tail: int, bottom_fraction: float) -> dict:
    """A trace's DeepConf confidences (higher = more confident); NaN for an empty trace."""
    c = np.asarray(conf, dtype=float)
    if len(c) == 0:
        return dict.fromkeys(DEEPCONF_SCORES, math.nan)
    g = np.sort(group_confidences(c, window))
    n_bottom = max(1, math.ceil(bottom_fraction * len(g) - 1e-9))
    return {
        "conf_mean": float(c.mean()),
        "conf_lowest_group": float(g[0]),
        "conf_bottom_groups": float(g[:n_bottom].mean()),
        "conf_tail": float(c[-tail:].mean()),
    }


def certaindex(entropy: pl.LazyFrame, *, h: str = "H") -> pl.LazyFrame:
    """Per trajectory: the mean over its checkpoints before its end (k < T) of 1 - H_k / ln K."""
    return (
        entropy.filter(pl.col("k") < pl.col("T"))
        .group_by(TRAJ)
        .agg(certaindex=(1 - pl.col(h) / pl.col("K").cast(pl.Float64).log()).mean(), n_probes=pl.len())
    )


def pool_scores(
    rollouts: pl.DataFrame,
    entropy: pl.LazyFrame,
    *,
    n_trajectories: int,
    edis_params: edis.EdisParams,
    window: int,
    tail: int,
    bottom_fraction: float,
    h: str = "H",
) -> pl.DataFrame:
    """Every score of every response in the pool (the first ``n_trajectories`` per question)."""
    pool = rollouts.filter(pl.col("trajectory") < n_trajectories)
    scores = edis.trajectory_scores(pool, edis_params)
    conf = pl.DataFrame(
        [
            deepconf_scores(c or [], window=window, tail=tail, bottom_fraction=bottom_fraction)
            for c in pool["token_confidence"].to_list()
        ],
        schema=dict.fromkeys(DEEPCONF_SCORES, pl.Float64),
    )
    scores = pl.concat([scores, conf], how="horizontal")
    cert = certaindex(entropy, h=h).collect()
    out = scores.join(cert, on=TRAJ, how="left", maintain_order="left")
    missing = out.filter(pl.col("n_probes").is_null() & (pl.col("T") > 0))
    if missing.height:
        r = missing.row(0, named=True)
        raise ValueError(
            f"no entropy rows for {missing.height} responses of the pool, e.g. {r['model']}/{r['dataset']} "
            f"{r['question_id']} trajectory {r['trajectory']}: are the entropy tables of the same run?"
        )
    return out


def methods(keep_fractions) -> dict[str, Selector]:
    """Every selector of table_selection: the EDIS table's, DeepConf's and Certaindex's."""
    out = {
        name: edis.METHODS[name]
        for name in ("random", "majority", "mean_entropy", "self_certainty", "edis", "weighted_edis")
    }
    out.update(
        {
            "deepconf_mean": Selector("conf_mean", "max", False),
            "deepconf_bottom": Selector("conf_bottom_groups", "max", False),
            "deepconf_tail": Selector("conf_tail", "max", False),
            "deepconf_lowest": Selector("conf_lowest_group", "max", False),
            "deepconf_weighted": Selector("conf_lowest_group", "max", True),
        }
    )
    for f in keep_fractions:
        out[f"deepconf_filter{round(100 * f)}"] = Selector("conf_lowest_group", "max", True, keep=f)
    out.update(
        {"certaindex": Selector("certaindex", "max", False), "certaindex_weighted": Selector("certaindex", "max", True)}
    )
    return out
