from siaflow.steps import run

run("prepare_dataset", snakemake)  # noqa: F821 (injected by Snakemake)
