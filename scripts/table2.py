from siaflow.steps import run

run("table2", snakemake)  # noqa: F821 (injected by Snakemake)
