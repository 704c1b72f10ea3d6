from siaflow.steps import run

run("edis_scores", snakemake)  # noqa: F821 (injected by Snakemake)
