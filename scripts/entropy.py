from siaflow.steps import run

run("entropy", snakemake)  # noqa: F821 (injected by Snakemake)
