from siaflow.steps import run

run("fig1", snakemake)  # noqa: F821 (injected by Snakemake)
