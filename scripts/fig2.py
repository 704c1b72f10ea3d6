from siaflow.steps import run

run("fig2", snakemake)  # noqa: F821 (injected by Snakemake)
