from siaflow.steps import run

run("table1", snakemake)  # noqa: F821 (injected by Snakemake)
