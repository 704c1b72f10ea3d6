"""Rules of ``workflow/rules/report.smk``: the cost plan, and the Snakemake HTML report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from siaflow import io
from siaflow.generation.plan import calibration_from, cost_plan, ledger_calibration
from siaflow.outputs.tables import to_markdown
from siaflow.stages.common import stage


def _write_plan(sm, calibration: dict, source: str) -> None:
    """The plan of the configured grid (params), calibrated where ``calibration`` says, as CSV and
    Markdown, and printed to the terminal (it is what a user reads before submitting)."""
    p = sm.params
    config = {
        "models": p.models,
        "datasets": p.datasets,
        "sampling": {**p.sampling, "adaptive": p.adaptive},
        "plan": p.plan,
        "edis": p.edis,
        "mc_ablation": p.mc_ablation,
        "probe": p.probe,
    }
    df = cost_plan(config, calibration)
    io.write_text(df.write_csv(), sm.output.csv)
    md = (
        "**Cost plan** (assumes {mean_trace_tokens} generated tokens per trace and {tokens_per_second} "
        "generated tokens per GPU-second)"
    ).format(**p.plan)
    if calibration.get("*"):
        md += (
            f"; calibrated by {source}: the token ledgers of {calibration['*']['shards']} continuation shards "
            f"(decoded / naive tokens: {calibration['*']['ratio']:.3f} over all models)"
        )
        if "trace_tokens" in calibration:
            md += ", the measured response lengths (`trace_tokens`)"
        if any("tokens_per_second" in v for k, v in calibration.items() if k not in ("*", "trace_tokens")):
            md += " and the measured generation throughput (`tokens_per_second`)"
    if "adaptive_fraction" in df.columns:
        md += (
            "; adaptive sampling: continuations at a mean K of `mean_K` per checkpoint (plan.adaptive_mean_k; "
            "K where unset), replaced by the adaptive shards' measured fraction where there are some"
        )
    md += "\n\n" + to_markdown(df, digits=3 if calibration else 1)
    io.write_text(md, sm.output.md)
    print(md)
    print(md, file=sys.__stdout__)


@stage
def plan(sm) -> None:
    """The cost plan before anything runs, calibrated by whatever shards the results already hold."""
    results = Path(sm.output.csv).parent  # the plan sits at the top of the results directory
    _write_plan(sm, ledger_calibration(results), f"the shards already in {results}")


@stage
def pilot(sm) -> None:
    """The cost plan calibrated by the pilot: one shard of every model on every dataset."""
    _write_plan(
        sm,
        calibration_from(sm.input.continuations, sm.input.rollouts),
        f"the pilot ({len(sm.input.rollouts)} shards, one per model and dataset)",
    )


@stage
def run_summary(sm) -> None:
    """What the run drew and how it was made (siaflow/outputs/run_summary.py), as JSON and Markdown."""
    import polars as pl

    from siaflow.outputs.run_summary import SUMMARY_COLUMNS, counts_row, made_with

    p = sm.params
    rows, rollout_prov = [], {}
    for model in p.models:
        for dataset in p.datasets:
            shards = [f for f in sm.input.rollouts if f"/{model}/{dataset}/" in f]
            rollouts = pl.concat([pl.read_parquet(f, columns=SUMMARY_COLUMNS) for f in shards])
            rollout_prov[f"{model}/{dataset}"] = io.read_provenance(shards[0])
            entropy = next(f for f in sm.input.entropy if f"/{model}/{dataset}/" in f)
            ledger = io.read_provenance(entropy).get("ledger_total") or {}
            rows.append({"model": model, "dataset": dataset, **counts_row(rollouts, p.n_trajectories, ledger)})
    data_prov = {d: io.read_provenance(f) for d, f in zip(p.datasets, sm.input.data, strict=True)}
    table = pl.DataFrame(rows)
    summary = io.provenance(
        step="run_summary", counts=rows, **made_with(data_prov, rollout_prov, p.sampling), seeds=p.seeds
    )
    io.write_json(summary, sm.output.json)
    io.write_text(to_markdown(table, digits=3), sm.output.md)
    print(to_markdown(table, digits=3))


@stage
def report(sm) -> None:
    """``snakemake --report`` on this workflow, with the run's Snakefile, working directory and
    effective config (written beside the log and passed as the one config file)."""
    p = sm.params
    config_file = Path(sm.log[0]).with_suffix(".config.yaml")
    io.write_text(yaml.safe_dump(dict(p.effective_config), sort_keys=False), config_file)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(p.snakefile),
        "--directory",
        str(p.directory),
        "--configfile",
        str(config_file.resolve()),
        "--nolock",
        "--report",
        str(Path(sm.output[0]).resolve()),
        *p.targets,
    ]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stdout, stderr=sys.stderr)
