from siaflow.stages.models import download_model

download_model(snakemake)  # noqa: F821 (injected by Snakemake)
