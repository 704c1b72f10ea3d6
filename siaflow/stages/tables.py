"""Rules of ``workflow/rules/tables.smk``: the SIA paper's Tables 1-3."""

from __future__ import annotations

import polars as pl

from siaflow import io
from siaflow.analysis import metrics
from siaflow.stages.common import analysis_provenance, load_entropy, stage, tagged, write_model_table


def _write(sm, df: pl.DataFrame, title: str, entropy_paths, **extra) -> None:
    write_model_table(sm, df, title, analysis_provenance(sm, entropy_paths, **extra))


@stage
def table1_alignment(sm) -> None:
    traj = metrics.trajectory_alignment(load_entropy(sm.input.entropy), h=sm.params.h).collect()
    io.write_parquet(traj, sm.output.trajectories, analysis_provenance(sm, sm.input.entropy))
    _write(
        sm,
        metrics.table1_alignment(traj.lazy(), **sm.params.bootstrap),
        "Table 1: SIA alignment coefficient (Pearson of H_k and S_k per trajectory)",
        sm.input.entropy,
    )


@stage
def table2_shuffle(sm) -> None:
    t2 = metrics.shuffle_comparison(
        load_entropy(sm.input.original), load_entropy(sm.input.shuffled), h=sm.params.h, **sm.params.bootstrap
    )
    _write(
        sm,
        t2,
        "Table 2: shuffle-prefix ablation (alignment with the generated prefix tokens permuted)",
        [*sm.input.original, *sm.input.shuffled],
    )


@stage
def table3_mc_ablation(sm) -> None:
    """Alignment under a coarser stride and fewer samples, from the stored per-sample answers of
    the source run (a finer stride, or a run at the coarse stride): no new generation."""
    p = sm.params
    rollouts = pl.concat([pl.scan_parquet(f) for f in sm.input.rollouts], how="vertical_relaxed")
    samples = tagged(sm.input.continuations, ["question_id", "trajectory", "k", "sample", "answer"])
    t3 = metrics.mc_ablation_table(
        load_entropy(sm.input.entropy),
        rollouts,
        samples,
        h=p.h,
        alpha=p.alpha,
        n_trajectories=p.n_trajectories,
        main=p.main,
        ablated=p.ablated,
        boot=p.bootstrap,
    )
    _write(
        sm,
        t3.with_columns(source=pl.lit(p.source)),
        "Table 3: Monte-Carlo ablation (coarser stride, fewer continuations)",
        sm.input.entropy,
    )
