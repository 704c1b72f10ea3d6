from siaflow.stages.toy import train_toy_model

train_toy_model(snakemake)  # noqa: F821 (injected by Snakemake)
