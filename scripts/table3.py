from siaflow.steps import run

run("table3", snakemake)  # noqa: F821 (injected by Snakemake)
