from siaflow.stages.report import plan

plan(snakemake)  # noqa: F821 (injected by Snakemake)
