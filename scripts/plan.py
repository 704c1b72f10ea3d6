from siaflow.steps import run

run("plan", snakemake)  # noqa: F821 (injected by Snakemake)
