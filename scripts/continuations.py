from siaflow.steps import run

run("continuations", snakemake)  # noqa: F821 (injected by Snakemake)
