from siaflow.steps import run

run("fig_edis_separation", snakemake)  # noqa: F821 (injected by Snakemake)
