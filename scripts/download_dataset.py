from siaflow.steps import run

run("download_dataset", snakemake)  # noqa: F821 (injected by Snakemake)
