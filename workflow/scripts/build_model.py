from siaflow.stages.models import build_model

build_model(snakemake)  # noqa: F821 (injected by Snakemake)
