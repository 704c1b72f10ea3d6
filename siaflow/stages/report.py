"""Rules of ``workflow/rules/report.smk`` that run Python: the cost plan (the report itself is
Snakemake's own ``--report``)."""

from __future__ import annotations

import sys
from pathlib import Path

from siaflow import io
from siaflow.plan import cost_plan, ledger_calibration
from siaflow.stages.common import stage
from siaflow.tables import to_markdown


@stage
def plan(sm) -> None:
    """Write the cost plan and print it to the terminal (it is what a user reads before submitting)."""
    p = sm.params
    results = Path(sm.output.csv).parent  # the plan sits at the top of the results directory
    calibration = ledger_calibration(results)
    config = {"models": p.models, "datasets": p.datasets, "sampling": p.sampling, "plan": p.plan, "edis": p.edis,
              "mc_ablation": p.mc_ablation}
    df = cost_plan(config, calibration)
    io.write_text(df.write_csv(), sm.output.csv)
    md = ("**Cost plan** (assumes {mean_trace_tokens} generated tokens per trace and {tokens_per_second} "
          "generated tokens per GPU-second)").format(**p.plan)
    if calibration:
        md += (f"; calibrated by the token ledgers of {calibration['*']['shards']} continuation shards already "
               f"in {results} (decoded / naive tokens: {calibration['*']['ratio']:.3f} over all models)")
    md += "\n\n" + to_markdown(df, digits=3 if calibration else 1)
    io.write_text(md, sm.output.md)
    print(md)
    print(md, file=sys.__stdout__)
