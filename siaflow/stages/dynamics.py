"""Rule of ``workflow/rules/dynamics.smk``: SIA through training (``siaflow.analysis.dynamics``)."""

from __future__ import annotations

import polars as pl

from siaflow.analysis import dynamics
from siaflow.outputs import plots
from siaflow.outputs.tables import write_table
from siaflow.stages.common import analysis_provenance, figure_provenance, stage


@stage
def fig_training_dynamics(sm) -> None:
    p = sm.params
    if not p.checkpoints:
        raise ValueError(
            "fig_training_dynamics needs a `training_dynamics` block in the config (the demo's "
            "config/config.yaml has one; see config/README.md)"
        )
    entropy = {}
    for path in sm.input.entropy:
        table = pl.read_parquet(path)
        entropy[table["model"][0]] = table
    data = dynamics.training_dynamics(entropy, p.checkpoints, h=p.h, early_position=p.early_position, **p.bootstrap)
    data.write_csv(sm.output.data)
    plots.fig_training_dynamics(
        data, sm.output.png, sm.output.pdf, title=f"SIA through training (early AUC at k/T = {p.early_position})"
    )
    prov = analysis_provenance(sm, sm.input.entropy)
    figure_provenance(sm, prov)
    wide = data.pivot(on="metric", index=["regime", "run", "step", "model"], values="value").sort("regime", "step")
    write_table(
        wide.select("regime", "step", "model", *dynamics.METRICS),
        csv=sm.output.csv,
        md=sm.output.md,
        tex=sm.output.tex,
        prov=prov,
        title="SIA through training: each saved step's measurement",
    )
    print(wide)
