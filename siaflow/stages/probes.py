"""Rules of ``workflow/rules/probes.smk``: probes against full continuations, and early exit
evaluated after the fact (``siaflow.analysis.probes``, ``siaflow.selection.early_exit``)."""

from __future__ import annotations

import polars as pl

from siaflow import io
from siaflow.analysis.probes import agreement_points, checkpoint_tokens, paired_checkpoints, probe_agreement_table
from siaflow.outputs import exit_plots
from siaflow.selection import early_exit
from siaflow.selection.token_stats import require_token_stats_in
from siaflow.stages.common import (
    analysis_provenance,
    figure_provenance,
    load_entropy,
    params,
    stage,
    tagged,
    write_model_table,
)

DRAW_COLUMNS = ["question_id", "trajectory", "k", "sample", "answer", "n_generated", "finish_reason", "cut"]


def _inputs(sm):
    """The two estimators' entropy tables and draws, each with model and dataset columns."""
    full, probe = load_entropy(sm.input.full), load_entropy(sm.input.probe)
    draws = {"full": tagged(sm.input.full_draws, DRAW_COLUMNS), "probe": tagged(sm.input.probe_draws, DRAW_COLUMNS)}
    return full, probe, draws


@stage
def table_probe_agreement(sm) -> None:
    """How well forced-answer probes estimate H_k, against the full continuations, and at what cost."""
    p = sm.params
    full, probe, draws = _inputs(sm)
    paired = paired_checkpoints(full, probe, h=p.h)
    table = probe_agreement_table(
        full, probe, paired, draws["full"], draws["probe"], h=p.h, early_position=p.early_position, **p.bootstrap
    )
    prov = analysis_provenance(sm, [*sm.input.full, *sm.input.probe], probe=p.probe)
    agreement_points(paired).write_csv(sm.output.points)
    title = "Forced-answer probes against full continuations: H_k agreement, alignment, early AUC, tokens"
    write_model_table(sm, table, title, prov)


@stage
def fig_probe_agreement(sm) -> None:
    points, table = pl.read_csv(sm.input.points), pl.read_csv(sm.input.table)
    points.write_csv(sm.output.data)
    exit_plots.fig_probe_agreement(points, table, sm.output.png, sm.output.pdf)
    figure_provenance(sm, io.provenance(step=sm.rule, params=params(sm), table=str(sm.input.table)))


def _probe_texts(paths) -> pl.LazyFrame:
    """The probe draws with the text of each sample (Dynasor's hedge-word check reads it)."""
    old = [str(f) for f in paths if "text" not in pl.read_parquet_schema(f)]
    if old:
        raise ValueError(
            f"{old[0]}: probe draws without their text (made before siaflow stored it; Dynasor's rule reads it): "
            f"rerun them with --forcerun probes"
        )
    return tagged(paths, [*DRAW_COLUMNS, "text"])


@stage
def table_early_exit(sm) -> None:
    """Every exit rule and threshold on the stored trajectories and draws: accuracy and tokens."""
    p = sm.params
    full, probe, draws = _inputs(sm)
    cp = early_exit.exit_checkpoints(
        paired_checkpoints(full, probe, h=p.h),
        {t: checkpoint_tokens(d) for t, d in draws.items()},
        early_exit.first_probes(_probe_texts(sm.input.probe_draws)),
    )
    require_token_stats_in(sm.input.rollouts, ["token_confidence"], needed_by="DeepConf online (early exit)")
    pool = tagged(sm.input.rollouts, ["question_id", "trajectory", "T", "answer", "gold", "token_confidence"])
    settings = {**p.early_exit, "budgets": p.budgets, "window": p.selection["window"]}
    settings["keep_fractions"] = p.selection["keep_fractions"]
    table, units = early_exit.early_exit_table(cp, pool, settings, **p.bootstrap)
    prov = analysis_provenance(sm, [*sm.input.full, *sm.input.probe], rollouts=[str(f) for f in sm.input.rollouts])
    io.write_parquet(units, sm.output.units, prov)
    title = "Early exit after the fact: accuracy and tokens (probes and continuations included) of every rule"
    write_model_table(sm, table, title, prov)


@stage
def fig_early_exit(sm) -> None:
    table = pl.read_csv(sm.input.table)
    table.write_csv(sm.output.data)
    exit_plots.fig_early_exit(table, sm.output.png, sm.output.pdf)
    figure_provenance(sm, io.provenance(step=sm.rule, params=params(sm), table=str(sm.input.table)))
