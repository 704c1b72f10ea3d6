"""Rules of ``workflow/rules/selection.smk``: one pool scored by every selector
(``siaflow.selection.selectors``), its Best-of-N table and figure."""

from __future__ import annotations

import polars as pl

from siaflow import io
from siaflow.outputs import plots
from siaflow.selection import bestofn, selectors
from siaflow.selection.edis import EdisParams
from siaflow.stages.common import (
    analysis_provenance,
    figure_provenance,
    load_entropy,
    params,
    stage,
    with_model_info,
    write_model_table,
)


@stage
def table_selection(sm) -> None:
    p, sel, e = sm.params, sm.params.selection, sm.params.edis
    roll = pl.concat([pl.read_parquet(f) for f in sm.input.rollouts], how="vertical_relaxed")
    scores = selectors.pool_scores(
        roll,
        load_entropy(sm.input.entropy),
        n_trajectories=p.n_trajectories,
        edis_params=EdisParams.of(e),
        window=sel["window"],
        tail=sel["tail"],
        bottom_fraction=sel["bottom_fraction"],
        h=p.h,
        source=", ".join(map(str, sm.input.rollouts)),
    )
    prov = analysis_provenance(
        sm, sm.input.entropy, rollouts=[str(f) for f in sm.input.rollouts], needs=selectors.NEEDS
    )
    io.write_parquet(scores, sm.output.scores, prov)
    methods = selectors.methods(sel["keep_fractions"])
    n_values = [n for n in sel["n_values"] if n <= p.n_trajectories]
    skipped = sorted(set(sel["n_values"]) - set(n_values))
    if skipped:
        print(f"selection.n_values {skipped} exceed the pool of sampling.n_trajectories = {p.n_trajectories}: skipped")
    long = bestofn.best_of_n(
        scores,
        methods,
        n_values=n_values,
        n_draws=e["n_draws"],
        seed=p.bootstrap["seed"],
        n_boot=p.bootstrap["n_boot"],
        ci=p.bootstrap["ci"],
    )
    long.write_csv(sm.output.long)
    wide = bestofn.wide_table(long, methods)
    title = "Best-of-N accuracy of every selector on one pool (the trajectories with continuations)"
    write_model_table(sm, wide, title, prov)


@stage
def fig_selection(sm) -> None:
    long = with_model_info(pl.read_csv(sm.input.long), sm.params.models)
    long.write_csv(sm.output.data)
    plots.fig_selection(long, sm.output.png, sm.output.pdf)
    figure_provenance(sm, io.provenance(step=sm.rule, params=params(sm), table=str(sm.input.long)))
