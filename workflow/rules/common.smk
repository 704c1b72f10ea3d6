# Config validation and the helpers every rule file uses.
import re
from pathlib import Path

import siaflow.config
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


def n_shards(dataset):
    spec = config["datasets"][dataset]
    return -(-spec["n_questions"] // config["sampling"]["shard_size"])


def shards(dataset):
    return list(range(n_shards(dataset)))


def model_input(wildcards):
    """A toy model is trained (rule train_toy_model) only when its checkpoint is missing.

    The committed checkpoints are deliberately not inputs: Snakemake reruns a job whose script
    is newer than its output, and a fresh clone gives files arbitrary modification times.
    Retrain on purpose with `--forcerun train_toy_model` and the checkpoint paths as targets.
    """
    spec = config["models"][wildcards.model]
    if "toy" in spec and not Path(spec["path"]).exists():
        return [spec["path"]]
    return []


def entropy_tables(stride=MAIN_STRIDE, variant="original"):
    return expand(
        f"{R}/entropy/{{model}}/{{dataset}}/stride-{stride}/{variant}.parquet",
        model=MODELS,
        dataset=DATASETS,
    )


def figure(name, caption):
    """Outputs of each figure: PNG (in the report), PDF, and the data frame it draws."""
    return {
        "png": report(f"{R}/figures/{name}.png", caption=caption, category="Figures"),
        "pdf": f"{R}/figures/{name}.pdf",
        "data": f"{R}/figures/{name}.data.csv",
    }


ALL_TARGETS = [
    f"{R}/tables/table1_alignment.csv",
    f"{R}/tables/table1_alignment.md",
    f"{R}/figures/fig1_cumulative_gain.png",
    f"{R}/figures/fig2_auc.png",
    f"{R}/figures/fig3_saturation.png",
]
