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
from siaflow.selection.token_stats import require_token_stats

DEEPCONF_SCORES = ("conf_mean", "conf_lowest_group", "conf_bottom_groups", "conf_tail")
# what each score needs of the engine (docs/selection.md): the full next-token distribution (the
# transformers backend, or vLLM's / a served model's rollouts scored by the exact scoring pass,
# sampling.exact_token_stats), the raw top-k log-probabilities, or answers sampled from prefixes
NEEDS = {
    **dict.fromkeys(
        ("edis", "mean_entropy"),
        "full vocabulary at the temperature, top-p or not (edis.token_entropy; on vLLM without the scoring pass: "
        "a top-k lower bound of the top-p one)",
    ),
    "self_certainty": "full vocabulary of the raw logits, temperature 1 (on vLLM: the scoring pass)",
    **{
        s: "raw (temperature-1) top-k log-probabilities and the sampled token's (on vLLM: the scoring pass)"
        for s in DEEPCONF_SCORES
    },
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
    """A trace's DeepConf confidences (higher = more confident; ``deepconf/utils.py``:
    ``calculate_mean_confidence``, ``calculate_bottom_window_confidence`` with the bottom
    ``int(n_groups * bottom_fraction)`` groups, at least one, and ``calculate_tail_confidence``);
    NaN for an empty trace."""
    c = np.asarray(conf, dtype=float)
    if len(c) == 0:
        return dict.fromkeys(DEEPCONF_SCORES, math.nan)
    g = np.sort(group_confidences(c, window))
    n_bottom = max(1, int(len(g) * bottom_fraction))  # rounded down, as deepconf/utils.py
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
    source: str | None = None,
) -> pl.DataFrame:
    """Every score of every response in the pool (the first ``n_trajectories`` per question).
    Stops, naming the statistic (and ``source``), where the rollouts lack one a score needs."""
    pool = rollouts.filter(pl.col("trajectory") < n_trajectories)
    scores = edis.trajectory_scores(pool, edis_params, source=source)
    require_token_stats(pool, ["token_confidence"], needed_by="DeepConf", source=source)
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


CONFIDENCES = {"mean": "conf_mean", "bottom": "conf_bottom_groups", "tail": "conf_tail", "lowest": "conf_lowest_group"}


def methods(keep_fractions) -> dict[str, Selector]:
    """Every selector of table_selection (docs/selection.md), each named after the code it follows:
    the EDIS paper's, Self-Certainty's (``self_certainty``: the best answered response,
    ``self_certainty_borda``: its Borda vote, p = 0.5), DeepConf's offline votes
    (``deepconf_vote_<confidence>``: confidence-weighted; ``deepconf_vote_<confidence>_top<eta>``:
    filtered to the top eta, then weighted) and Certaindex's. siaflow's own variants:
    ``self_certainty_edis`` (the vote weighted by the score, as the EDIS paper describes it),
    ``pick_conf_<confidence>`` (the one most confident response) and the Certaindex rows."""
    out = {name: edis.METHODS[name] for name in ("random", "majority", "mean_entropy", "self_certainty", "edis")}
    out["self_certainty_borda"] = Selector("self_certainty", "max", True, borda=0.5)
    out["self_certainty_edis"] = edis.METHODS["weighted_self_certainty"]
    out["weighted_edis"] = edis.METHODS["weighted_edis"]
    out.update({f"deepconf_vote_{c}": Selector(col, "max", True) for c, col in CONFIDENCES.items()})
    for c in ("tail", "bottom", "lowest"):
        for f in keep_fractions:
            out[f"deepconf_vote_{c}_top{round(100 * f)}"] = Selector(CONFIDENCES[c], "max", True, keep=f)
    out.update({f"pick_conf_{c}": Selector(col, "max", False) for c, col in CONFIDENCES.items()})
    out.update(
        {"certaindex": Selector("certaindex", "max", False), "certaindex_weighted": Selector("certaindex", "max", True)}
    )
    return out
