from siaflow.steps import run

run("build_model", snakemake)  # noqa: F821 (injected by Snakemake)
