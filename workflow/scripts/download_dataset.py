from siaflow.stages.data import download_dataset

download_dataset(snakemake)  # noqa: F821 (injected by Snakemake)
