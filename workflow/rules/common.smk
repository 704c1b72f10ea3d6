# Config validation and the helpers every rule file uses.
import re
import sys
from pathlib import Path

import siaflow.config
from siaflow.metrics import mc_source_stride
from snakemake.utils import validate

validate(config, workflow.source_path("../schemas/config.schema.yaml"))
siaflow.config.prepare(config, workflow.source_path("../schemas/config.schema.yaml"))

R = config["results"]
MODELS = list(config["models"])
DATASETS = list(config["datasets"])
STRIDES = [int(s) for s in config["sampling"]["strides"]]
MAIN_STRIDE = STRIDES[0]
VARIANTS = ["original", "shuffled"]
TOY_MODELS = siaflow.config.toy_models(config)
BUILT_MODELS = siaflow.config.built_models(config)
MC = config["mc_ablation"]
_mc_fine = mc_source_stride(STRIDES, MC["stride"])
MC_SOURCE_STRIDE = _mc_fine or MC["stride"]
MC_SOURCE = (
    f"sub-sample of the stride-{_mc_fine} run"
    if _mc_fine
    else f"run of its own at stride {MC['stride']} (K' = first draws)"
)


def n_shards(dataset):
    spec = config["datasets"][dataset]
    return -(-spec["n_questions"] // config["sampling"]["shard_size"])


def shards(dataset):
    return list(range(n_shards(dataset)))


def model_input(wildcards):
    """A toy model is trained (rule train_toy_model), and a model with a `build` block built (rule
    build_model), only when its directory is missing.

    The committed checkpoints are deliberately not inputs: Snakemake reruns a job whose script
    is newer than its output, and a fresh clone gives files arbitrary modification times.
    Retrain on purpose with `--forcerun train_toy_model` and the checkpoint paths as targets.
    """
    spec = config["models"][wildcards.model]
    if ("toy" in spec or "build" in spec) and not Path(spec["path"]).exists():
        return [spec["path"]]
    return []


def model_resource(key, default, grow=False, scale=1):
    """Per-model GPU / memory / runtime of a generation job (siaflow.config.model_resource)."""
    return siaflow.config.model_resource(config, key, default, grow=grow, scale=scale)


def generation_env(wildcards):
    """The conda env of a generation job: vLLM pins its own torch, so it gets its own env."""
    backend = config["models"][wildcards.model].get("backend", "transformers")
    return "../../envs/vllm.yaml" if backend == "vllm" else "../../envs/torch.yaml"


def dataset_raw(wildcards):
    """The downloaded files of a hub dataset, the directory of a local one; nothing for generated ones."""
    spec = config["datasets"][wildcards.dataset]
    if spec["source"] == "hub":
        return [f"resources/datasets/{wildcards.dataset}"]
    if spec["source"] == "local":
        return [spec["path"]]
    return []


def entropy_tables(stride=MAIN_STRIDE, variant="original"):
    return expand(
        f"{R}/entropy/{{model}}/{{dataset}}/stride-{stride}/{variant}.parquet",
        model=MODELS,
        dataset=DATASETS,
    )


def all_shards(kind, stride=None, variant="original"):
    """Every shard file of `kind` (rollouts / continuations) over the whole model x dataset grid."""
    out = []
    for model in MODELS:
        for dataset in DATASETS:
            for shard in shards(dataset):
                if kind == "rollouts":
                    out.append(f"{R}/rollouts/{model}/{dataset}/shard-{shard}.parquet")
                else:
                    out.append(
                        f"{R}/continuations/{model}/{dataset}/stride-{stride}/{variant}/shard-{shard}.parquet"
                    )
    return out


def table(name, caption):
    """Outputs of each table: CSV (in the report), Markdown and LaTeX."""
    return {
        "csv": report(f"{R}/tables/{name}.csv", caption=caption, category="Tables"),
        "md": f"{R}/tables/{name}.md",
        "tex": f"{R}/tables/{name}.tex",
    }


def figure(name, caption):
    """Outputs of each figure: PNG (in the report), PDF, and the data frame it draws."""
    return {
        "png": report(f"{R}/figures/{name}.png", caption=caption, category="Figures"),
        "pdf": f"{R}/figures/{name}.pdf",
        "data": f"{R}/figures/{name}.data.csv",
    }


TABLES = ["table1_alignment", "table2_shuffle", "table3_mc_ablation", "table_edis_bestofn"]
FIGURES = [
    "fig1_cumulative_gain",
    "fig2_auc",
    "fig3_saturation",
    "fig4_cumulative_gain_nonaligned",
    "fig5_auc_nonaligned",
    "fig_fano",
    "fig_edis_trajectories",
    "fig_edis_separation",
]
ANALYSIS_TARGETS = [f"{R}/tables/{t}.csv" for t in TABLES] + [
    f"{R}/figures/{f}.png" for f in FIGURES
]
ALL_TARGETS = ANALYSIS_TARGETS + [f"{R}/report.html"]
