"""Rules of ``workflow/rules/entropy.smk``: the entropy table of one model x dataset x stride x variant."""

from __future__ import annotations

import polars as pl

from siaflow import io
from siaflow.analysis.estimators import entropy_table, sia_trajectories, trajectory_columns
from siaflow.stages.common import stage


def _sum_ledgers(provenances) -> dict:
    total: dict = {}
    for prov in provenances:
        for k, v in prov.get("ledger", {}).items():
            total[k] = total.get(k, 0) + v
    return total


def drawn_k(provenances: dict[str, dict]) -> int | None:
    """The K the continuation shards (path -> provenance) were asked for (their ``n_continuations``):
    S's smoothing is at it, whatever K an adaptive checkpoint stopped at. Shards that disagree stop
    the run, named."""
    ks = {path: prov.get("n_continuations") for path, prov in provenances.items()}
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
    shards = {str(p): io.read_provenance(p) for p in sm.input.continuations}  # read once
    table = (
        entropy_table(samples, roll, alpha=alpha, k_ref=drawn_k(shards))
        .with_columns(
            model=pl.lit(wc.model),
            dataset=pl.lit(wc.dataset),
            stride=pl.lit(int(wc.stride)),
            variant=pl.lit(wc.variant),
        )
        .collect()
    )
    prov = {
        **next(iter(shards.values())),
        **io.provenance(step="entropy", alpha=alpha, shards=list(shards), ledger_total=_sum_ledgers(shards.values())),
    }
    io.write_parquet(table, sm.output[0], prov)
    print(f"entropy table: {table.height} checkpoints")
