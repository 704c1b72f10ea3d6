"""Rules of ``workflow/rules/edis.smk``: EDIS scores of every sampled response, Best-of-N
selection, and the EDIS paper's two figures."""

from __future__ import annotations

import polars as pl

from siaflow import io
from siaflow.outputs import plots
from siaflow.selection import bestofn, edis
from siaflow.selection.token_stats import require_token_stats
from siaflow.stages.common import figure_provenance, params, stage, write_model_table

# what the scores record of each rollout shard they read
_ROLLOUT_PROVENANCE = (
    "model",
    "revision",
    "dataset",
    "shard",
    "decoding",
    "seed",
    "n_rollouts",
    "entropy_kind",
    "prompt_template",
)


def _edis_params(sm) -> edis.EdisParams:
    return edis.EdisParams.of(sm.params.edis)


@stage
def edis_scores(sm) -> None:
    """Per-sample scores (EDIS and its parts, mean entropy, self-certainty) of every sampled
    response, as one parquet a user can join to their own data on (model, dataset, question_id,
    trajectory)."""
    roll = pl.concat([pl.read_parquet(p) for p in sm.input.rollouts], how="vertical_relaxed")
    scores = edis.trajectory_scores(roll, _edis_params(sm), source=", ".join(map(str, sm.input.rollouts)))
    provs = [io.read_provenance(p) for p in sm.input.rollouts]
    kinds = {p.get("entropy_kind", "exact") for p in provs}
    scores = scores.with_columns(approximate=pl.lit(kinds != {"exact"}))
    prov = io.provenance(
        step="edis_scores",
        edis=sm.params.edis,
        entropy_kinds=sorted(kinds),
        inputs={str(p): {k: v.get(k) for k in _ROLLOUT_PROVENANCE} for p, v in zip(sm.input.rollouts, provs)},
    )
    io.write_parquet(scores, sm.output[0], prov)
    print(f"scored {scores.height} responses; approximate: {kinds != {'exact'}}")


@stage
def table_edis_bestofn(sm) -> None:
    e, boot = sm.params.edis, sm.params.bootstrap
    scores = pl.read_parquet(sm.input.scores)
    long = edis.best_of_n(
        scores, n_values=e["n_values"], n_draws=e["n_draws"], seed=boot["seed"], n_boot=boot["n_boot"], ci=boot["ci"]
    )
    long.write_csv(sm.output.long)
    wide = bestofn.wide_table(long, edis.METHODS)
    prov = io.provenance(step="table_edis_bestofn", params=params(sm), scores=io.read_provenance(sm.input.scores))
    title = "Best-of-N accuracy by selection rule (mean over random N-subsets of each question's pool)"
    write_model_table(sm, wide, title, prov)


@stage
def fig_edis_trajectories(sm) -> None:
    ep = _edis_params(sm)
    cols = ("model", "dataset", "question_id", "trajectory", "correct", "token_ids", ep.entropy_column)
    roll = pl.concat(
        [pl.read_parquet(p).select(c for c in cols if c in pl.read_parquet_schema(p)) for p in sm.input.rollouts],
        how="vertical_relaxed",
    )
    require_token_stats(roll, [ep.entropy_column], needed_by="the EDIS figure", source=", ".join(sm.input.rollouts))
    data = edis.example_trajectories(roll, ep, sm.params.edis["example_trajectories"])
    data.write_csv(sm.output.data)
    plots.fig_edis_trajectories(data, sm.output.png, sm.output.pdf, params=ep)
    figure_provenance(sm, io.provenance(step=sm.rule, params=params(sm)))


@stage
def fig_edis_separation(sm) -> None:
    scores = pl.read_parquet(sm.input.scores).select(
        "model", "dataset", "question_id", "trajectory", "correct", "edis", "mean_entropy", "self_certainty"
    )
    auc = edis.separation_aucs(scores)
    scores.write_csv(sm.output.data)
    auc.write_csv(sm.output.auc)
    plots.fig_edis_separation(scores, auc, sm.output.png, sm.output.pdf)
    figure_provenance(sm, io.provenance(step=sm.rule, params=params(sm)))
