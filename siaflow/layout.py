"""Where every result lives under the results directory (config key ``results``): the one place
the layout is written. Rules fill these patterns (fields they leave out stay ``{wildcards}``);
code that looks results up (the cost plan's calibration) globs the same patterns.
"""

from __future__ import annotations

DATA = "{results}/data/{dataset}.parquet"
ROLLOUTS = "{results}/rollouts/{model}/{dataset}/shard-{shard}.parquet"
CONTINUATIONS = "{results}/continuations/{model}/{dataset}/stride-{stride}/{variant}/shard-{shard}.parquet"
ENTROPY = "{results}/entropy/{model}/{dataset}/stride-{stride}/{variant}.parquet"
TABLE = "{results}/tables/{name}.{ext}"
FIGURE = "{results}/figures/{name}.{ext}"
EDIS_SCORES = "{results}/edis/scores.parquet"
SELECTION_SCORES = "{results}/selection/scores.parquet"
LOG = "{results}/logs/{name}.log"
PLAN = "{results}/plan.{ext}"
PILOT_PLAN = "{results}/pilot/plan.{ext}"
RUN_SUMMARY = "{results}/run_summary.{ext}"
REPORT = "{results}/report.html"
# models and datasets fetched or built once, whatever the results directory
DATASET_DOWNLOAD = "resources/datasets/{dataset}"
TOY_MODEL = "resources/toy_models/{toy_model}"
# one toy training run saved at several steps (fig_training_dynamics): {run}/step-NNNNN
TOY_CHECKPOINTS = "resources/toy_models/checkpoints/{run}"
BUILT_MODEL = "resources/models/{built_model}"
HUB_MODEL = "resources/models/hub/{hub_model}"


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(pattern: str, **fields) -> str:
    """``pattern`` with the given fields filled in and every other field left as ``{field}`` (a
    Snakemake wildcard)."""
    return pattern.format_map(_Keep({k: v for k, v in fields.items() if v is not None}))


def glob(pattern: str, **fields) -> str:
    """``pattern`` with the given fields filled in and every other field matching anything."""
    return pattern.format_map({**{k: "*" for k in _fields(pattern)}, **fields})


def _fields(pattern: str) -> list[str]:
    import string

    return [f for _, f, _, _ in string.Formatter().parse(pattern) if f]
