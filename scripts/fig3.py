from siaflow.steps import run

run("fig3", snakemake)  # noqa: F821 (injected by Snakemake)
