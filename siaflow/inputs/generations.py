"""Generations made elsewhere (docs/own-generations.md): the config side.

A model entry with a ``generations`` block names, per dataset, files of rollouts (and optionally of
continuations of their checkpoint prefixes) that another engine made; its ``path`` is the model
that tokenises and scores them. siaflow samples nothing for such a model: rule ``rollouts`` (and
``continuations``, where files are given) make siaflow's tables from the files
(``siaflow.generation.imported``). This module is what the Snakefile reads (no polars, no torch):
the checks of the block, the files each rule job reads, and the targets the imported generations
cannot give. Reading and validating the files: ``siaflow.inputs.generation_files``.
"""

from __future__ import annotations

from pathlib import Path

from siaflow.config import ConfigError, main_stride, mc_source_stride

SUFFIXES = (".parquet", ".jsonl")
# targets that read the rollouts alone, and targets that need draws siaflow would have to sample
# (shuffled prefixes, forced-answer probes): every other target needs the continuations
ROLLOUTS_ONLY = ("table_edis_bestofn", "fig_edis_trajectories", "fig_edis_separation")
SAMPLED_ONLY = {"table2_shuffle": "continuations of shuffled prefixes"}
SAMPLED_ONLY |= dict.fromkeys(
    ("table_probe_agreement", "fig_probe_agreement", "table_early_exit", "fig_early_exit"), "forced-answer probes"
)


def imported_models(config: dict) -> dict[str, dict]:
    """The model entries with a ``generations`` block."""
    return {name: m for name, m in config["models"].items() if m.get("generations")}


def sampled_models(specs: dict) -> list[str]:
    """The models siaflow samples itself (every model without a ``generations`` block)."""
    return [name for name, m in specs.items() if not m.get("generations")]


def sampled_pattern(specs: dict) -> str:
    """A wildcard constraint matching the models siaflow samples (none: a pattern that matches nothing)."""
    import re

    return "|".join(map(re.escape, sampled_models(specs))) or "(?!)"


def files_of(entry: dict, kind: str) -> list[str]:
    """The files of one dataset's entry (``rollouts`` or ``continuations``): a path or a list."""
    value = entry.get(kind) or []
    return [value] if isinstance(value, str) else list(value)


def check_config(config: dict) -> None:
    """Each ``models.<name>.generations`` block: scored through transformers, an entry for every
    dataset of the grid and none for another, files that exist as .parquet or .jsonl."""
    for name, m in imported_models(config).items():
        key = f"models.{name}.generations"
        if m.get("backend", "transformers") != "transformers":
            raise ConfigError(
                f"models.{name}.backend: a model with `generations` is tokenised and scored through "
                f"transformers (its `path`); got backend {m['backend']!r}"
            )
        unknown = sorted(set(m["generations"]) - set(config["datasets"]))
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}: not a key of `datasets` ({', '.join(config['datasets'])})")
        missing = [d for d in config["datasets"] if d not in m["generations"]]
        if missing:
            raise ConfigError(
                f"{key}: no files for dataset(s) {missing}; every model runs on every dataset of the grid, "
                "so give each one's rollouts"
            )
        for dataset, entry in m["generations"].items():
            for kind in ("rollouts", "continuations"):
                for i, f in enumerate(files_of(entry, kind)):
                    where = f"{key}.{dataset}.{kind}" + (f"[{i}]" if isinstance(entry[kind], list) else "")
                    if Path(f).suffix not in SUFFIXES:
                        raise ConfigError(f"{where}: {f!r} is neither a .parquet nor a .jsonl file")
                    if not Path(f).is_file():
                        raise ConfigError(f"{where}: no such file {f!r}")


def rollout_files(config: dict, model: str, dataset: str) -> list[str]:
    """Rule rollouts' own input: an imported model's rollout files for ``dataset``; [] otherwise."""
    m = config["models"].get(model, {})
    return files_of(m["generations"][dataset], "rollouts") if m.get("generations") else []


def continuation_files(config: dict, model: str, dataset: str, stride: int, variant: str) -> list[str]:
    """Rule continuations' (and probes') own input: an imported model's continuation files; []
    for a model siaflow samples. Imported continuations are the original prefixes' at the main
    stride: any other request stops the run here, before anything is computed, saying why."""
    m = config["models"].get(model, {})
    if not m.get("generations"):
        return []
    files, main = files_of(m["generations"][dataset], "continuations"), main_stride(config)
    if files and variant == "original" and stride == main:
        return files
    if not files:
        needs = "continuations of checkpoint prefixes, which its generations do not give: add `continuations` files"
    else:
        needs = (
            f"{variant} draws at stride {stride}, but imported continuations are the original prefixes' at "
            f"the main stride ({main}, sampling.strides[0]) and siaflow samples nothing for a model with `generations`"
        )
    raise ConfigError(
        f"models.{model}.generations.{dataset}: this target needs {needs} (docs/own-generations.md). The "
        f"rollouts alone give {', '.join(ROLLOUTS_ONLY)}; `snakemake` with no target builds what the files allow"
    )


def unavailable_targets(config: dict, targets: list[str]) -> dict[str, str]:
    """The analysis targets (of ``targets``) that the grid's imported generations cannot give,
    each with the reason: left out of ``all`` and of the report."""
    imported = imported_models(config)
    if not imported:
        return {}
    bare = sorted(
        n for n, m in imported.items() if not all(files_of(e, "continuations") for e in m["generations"].values())
    )
    stride = mc_source_stride([int(s) for s in config["sampling"]["strides"]], config["mc_ablation"]["stride"])
    out = {}
    for t in targets:
        if t in ROLLOUTS_ONLY:
            continue
        if t in SAMPLED_ONLY:
            out[t] = f"needs {SAMPLED_ONLY[t]}, which imported generations do not give"
        elif bare:
            out[t] = f"needs continuations, which the generations of {', '.join(bare)} do not give"
        elif t == "table3_mc_ablation" and stride != main_stride(config):
            out[t] = "needs continuations at its own stride (mc_ablation.stride is no multiple of the main stride)"
    return out
