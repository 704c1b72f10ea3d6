# Config validation, the constants every rule file uses, and the results layout as Snakemake
# patterns (siaflow/layout.py). What rules read besides their inputs: params.smk.
import os
import re
import sys
from pathlib import Path

import siaflow.config
import siaflow.inputs.generations
import siaflow.keys
import siaflow.source
from siaflow import layout
from siaflow.config import mc_source_stride
from snakemake.utils import validate

validate(config, workflow.source_path("../schemas/config.schema.yaml"))
siaflow.config.prepare(config, workflow.source_path("../schemas/config.schema.yaml"))
# a deployed module's config names the toy models and benchmarks of the module's source (siaflow/source.py)
siaflow.source.resolve_paths(config, SOURCE)
# models with `generations` (docs/own-generations.md)
siaflow.inputs.generations.check_config(config)

R = config["results"]
MODELS = list(config["models"])  # the main grid; the training-dynamics checkpoints are models too
CHECKPOINT_MODELS = siaflow.config.checkpoint_models(config)
DYNAMICS = config.get("training_dynamics") or {}  # fig_training_dynamics and its training runs
SPECS = {**config["models"], **CHECKPOINT_MODELS}
DATASETS = list(config["datasets"])
STRIDES = [int(s) for s in config["sampling"]["strides"]]
MAIN_STRIDE = siaflow.config.main_stride(config)
VARIANTS = list(siaflow.keys.VARIANTS)  # and siaflow.keys.PROBE_VARIANT: rule probes
PROBE_VARIANT = siaflow.keys.PROBE_VARIANT
TOY_MODELS = siaflow.config.toy_models(config)
BUILT_MODELS = siaflow.config.built_models(config)
HUB_MODELS = siaflow.config.hub_models(config)
MC = config["mc_ablation"]
_mc_fine = mc_source_stride(STRIDES, MC["stride"])
MC_SOURCE_STRIDE = _mc_fine or MC["stride"]
MC_SOURCE = (
    f"sub-sample of the stride-{_mc_fine} run"
    if _mc_fine
    else f"run of its own at stride {MC['stride']} (K' = first draws)"
)
# what analysis rules read: the H_k column, each model's regime and family, the bootstrap
H = siaflow.config.entropy_column(config)
MODEL_INFO = siaflow.config.model_info(config)
BOOTSTRAP = siaflow.config.bootstrap(config)
PROBE = siaflow.config.probe_spec(config)  # the probe variant: cue, K, token budget
EXIT_BUDGETS = siaflow.config.exit_budgets(config)


def path(pattern, **fields):
    """A results path of siaflow.layout with the results directory filled in; fields not given
    stay Snakemake wildcards."""
    return layout.fill(pattern, results=R, **fields)


def log(name):
    return path(layout.LOG, name=name)


def n_shards(dataset):
    spec = config["datasets"][dataset]
    return -(-spec["n_questions"] // config["sampling"]["shard_size"])


def shards(dataset):
    return list(range(n_shards(dataset)))


def entropy_tables(stride=MAIN_STRIDE, variant="original"):
    return [
        path(layout.ENTROPY, model=m, dataset=d, stride=stride, variant=variant)
        for m in MODELS
        for d in DATASETS
    ]


def probe_inputs():
    """The main stride's entropy tables and draws of the full continuations and of the probes."""
    return dict(
        full=entropy_tables(),
        probe=entropy_tables(variant=PROBE_VARIANT),
        full_draws=all_shards(layout.CONTINUATIONS, stride=MAIN_STRIDE, variant="original"),
        probe_draws=all_shards(layout.CONTINUATIONS, stride=MAIN_STRIDE, variant=PROBE_VARIANT),
    )


def shards_of(pattern):
    """Input function: `pattern` for every shard of the job's model and dataset."""
    return lambda wc: expand(pattern, shard=shards(wc.dataset), **dict(wc.items()))


def all_shards(pattern, **fields):
    """Every shard file of `pattern` (rollouts / continuations) over the model x dataset grid."""
    return [
        path(pattern, model=m, dataset=d, shard=s, **fields)
        for m in MODELS
        for d in DATASETS
        for s in shards(d)
    ]


def table(name, caption):
    """Outputs of each table: CSV (in the report), Markdown and LaTeX."""
    return {
        "csv": report(path(layout.TABLE, name=name, ext="csv"), caption=caption, category="Tables"),
        "md": path(layout.TABLE, name=name, ext="md"),
        "tex": path(layout.TABLE, name=name, ext="tex"),
    }


def figure(name, caption):
    """Outputs of each figure: PNG (in the report), PDF, and the data frame it draws."""
    return {
        "png": report(
            path(layout.FIGURE, name=name, ext="png"), caption=caption, category="Figures"
        ),
        "pdf": path(layout.FIGURE, name=name, ext="pdf"),
        "data": path(layout.FIGURE, name=name, ext="data.csv"),
    }


TABLES = [
    "table1_alignment",
    "table2_shuffle",
    "table3_mc_ablation",
    "table_edis_bestofn",
    "table_selection",
    "table_probe_agreement",
    "table_early_exit",
]
FIGURES = [
    "fig1_cumulative_gain",
    "fig2_auc",
    "fig3_saturation",
    "fig4_cumulative_gain_nonaligned",
    "fig5_auc_nonaligned",
    "fig_fano",
    "fig_edis_trajectories",
    "fig_edis_separation",
    "fig_selection",
    "fig_probe_agreement",
    "fig_early_exit",
]
# what imported generations cannot give is left out of `all` (docs/own-generations.md)
LEFT_OUT = siaflow.inputs.generations.unavailable_targets(config, TABLES + FIGURES)
ANALYSIS_TARGETS = [path(layout.TABLE, name=t, ext="csv") for t in TABLES if t not in LEFT_OUT]
ANALYSIS_TARGETS += [path(layout.FIGURE, name=f, ext="png") for f in FIGURES if f not in LEFT_OUT]
ALL_TARGETS = ANALYSIS_TARGETS + [path(layout.REPORT)]
