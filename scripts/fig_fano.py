from siaflow.steps import run

run("fig_fano", snakemake)  # noqa: F821 (injected by Snakemake)
