"""Rules of ``workflow/rules/figures.smk``: the SIA paper's Figures 1-5 and Fano's bound. Each
figure is drawn from a data frame saved beside it (``<figure>.data.csv``)."""

from __future__ import annotations

import polars as pl

from siaflow.analysis import curves, fano, metrics
from siaflow.outputs import plots
from siaflow.stages.common import analysis_provenance, figure_provenance, load_entropy, stage, with_model_info


def _selection_figure(sm, what: str, columns: list[str], draw) -> None:
    """Draw a figure of the (model, dataset) pairs it shows: aligned ones (mean rho at or above
    ``params.aligned_threshold`` in Table 1) for Figs 1-2, the others for Figs 4-5. ``draw(entropy,
    title)`` computes, saves and draws the data; with no pair selected, the figure says so."""
    selection, thr = sm.params.selection, sm.params.aligned_threshold
    aligned, nonaligned = metrics.split_by_alignment(pl.read_csv(sm.input.table1), thr)
    pairs = aligned if selection == "aligned" else nonaligned
    label = f"mean rho {'>=' if selection == 'aligned' else '<'} {thr}"
    title = f"{what} ({label})"
    if pairs:
        draw(metrics.restrict(load_entropy(sm.input.entropy), pairs), title)
    else:
        pl.DataFrame(schema={c: pl.String for c in columns}).write_csv(sm.output.data)
        plots.empty_figure(
            sm.output.png,
            sm.output.pdf,
            title,
            f"No model x dataset has {label} in Table 1\n(analysis.aligned_threshold)",
        )
    figure_provenance(
        sm, analysis_provenance(sm, sm.input.entropy, selection=label, **({} if pairs else {"empty": True}))
    )


@stage
def fig1_cumulative_gain(sm) -> None:
    """Fig 1 (aligned models); with ``selection: nonaligned``, Fig 4."""
    p = sm.params

    def draw(entropy, title):
        data = curves.cumulative_gain_curves(entropy, h=p.h, grid=curves.relative_grid(p.grid_points), **p.bootstrap)
        data = with_model_info(data, p.models)
        data.write_csv(sm.output.data)
        plots.fig_cumulative_gain(data, sm.output.png, sm.output.pdf, gain=p.gain, title=title)

    _selection_figure(
        sm,
        "Normalised cumulative information gain",
        ["gain", "model", "dataset", "correct", "rel_pos", "mean", "lo", "hi"],
        draw,
    )


@stage
def fig2_auc(sm) -> None:
    """Fig 2 (aligned models); with ``selection: nonaligned``, Fig 5."""
    p = sm.params

    def draw(entropy, title):
        absolute, relative = curves.auc_curves(
            entropy, h=p.h, stride=p.stride, grid=curves.relative_grid(p.grid_points), **p.bootstrap
        )
        data = pl.concat(
            [
                absolute.with_columns(axis=pl.lit("absolute"), x=pl.col("at_k").cast(pl.Float64)).drop("at_k"),
                relative.with_columns(axis=pl.lit("relative"), x=pl.col("rel_pos")).drop("rel_pos"),
            ]
        )
        with_model_info(data, p.models).write_csv(sm.output.data)
        plots.fig_auc(absolute, relative, sm.output.png, sm.output.pdf, title=title)

    _selection_figure(
        sm,
        "Early separability: AUC of -H_k for correctness",
        ["model", "dataset", "axis", "x", "auc", "lo", "hi"],
        draw,
    )


@stage
def fig3_saturation(sm) -> None:
    p, sat = sm.params, sm.params.saturation
    curve, summary = curves.saturation_summary(
        load_entropy(sm.input.entropy),
        h=p.h,
        grid=curves.relative_grid(p.grid_points),
        plateau_fraction=sat["plateau_fraction"],
        late_from=sat["late_from"],
        rebound_threshold=sat["rebound_threshold"],
        **p.bootstrap,
    )
    data = curve.join(summary, on=["model", "dataset"], how="left")
    with_model_info(data, p.models).write_csv(sm.output.data)
    regimes = {m: info["regime"] for m, info in p.models.items()}
    plots.fig_saturation(curve, summary, regimes, sm.output.png, sm.output.pdf)
    figure_provenance(sm, analysis_provenance(sm, sm.input.entropy))


@stage
def fig_fano(sm) -> None:
    p = sm.params
    space = {d: fano.answer_space_size(spec) for d, spec in p.datasets.items()}
    data = fano.fano_data(load_entropy(sm.input.entropy), h=p.h, answer_space=space, n_bins=p.fano_bins, **p.bootstrap)
    with_model_info(data, p.models).write_csv(sm.output.data)
    plots.fig_fano(data, sm.output.png, sm.output.pdf)
    figure_provenance(sm, analysis_provenance(sm, sm.input.entropy))
