"""Rules of ``workflow/rules/entropy.smk``: the entropy table of one model x dataset x stride x variant."""

from __future__ import annotations

import polars as pl

from siaflow import io
from siaflow.analysis.estimators import entropy_table, sia_trajectories, trajectory_columns
from siaflow.stages.common import stage


def _sum_ledgers(paths) -> dict:
    total: dict = {}
    for p in paths:
        for k, v in io.read_provenance(p).get("ledger", {}).items():
            total[k] = total.get(k, 0) + v
    return total


def drawn_k(paths) -> int | None:
    """The K the continuation shards were asked for (their ``n_continuations``): S's smoothing is at
    it, whatever K an adaptive checkpoint stopped at. Shards that disagree stop the run, named."""
    ks = {str(p): io.read_provenance(p).get("n_continuations") for p in paths}
    if len(set(ks.values())) > 1:
        raise ValueError(f"continuation shards drawn with different K (n_continuations): {ks}")
    k = next(iter(ks.values()), None)
    return None if k is None else int(k)


@stage
def entropy(sm) -> None:
    """H_k, p^_k(gold), S_k and the split-sample halves at every checkpoint of every trajectory."""
    wc, alpha = sm.wildcards, sm.params.alpha
    roll = trajectory_columns(
        sia_trajectories(pl.scan_parquet(list(sm.input.rollouts)), sm.params.n_trajectories),
        f"rollouts {', '.join(map(str, sm.input.rollouts))}",
    )
    samples = pl.scan_parquet(list(sm.input.continuations)).select("question_id", "trajectory", "k", "sample", "answer")
    table = (
        entropy_table(samples, roll, alpha=alpha, k_ref=drawn_k(sm.input.continuations))
        .with_columns(
            model=pl.lit(wc.model),
            dataset=pl.lit(wc.dataset),
            stride=pl.lit(int(wc.stride)),
            variant=pl.lit(wc.variant),
        )
        .collect()
    )
    prov = {
        **io.read_provenance(sm.input.continuations[0]),
        **io.provenance(
            step="entropy",
            alpha=alpha,
            shards=[str(p) for p in sm.input.continuations],
            ledger_total=_sum_ledgers(sm.input.continuations),
        ),
    }
    io.write_parquet(table, sm.output[0], prov)
    print(f"entropy table: {table.height} checkpoints")
