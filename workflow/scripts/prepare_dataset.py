from siaflow.stages.data import prepare_dataset

prepare_dataset(snakemake)  # noqa: F821 (injected by Snakemake)
