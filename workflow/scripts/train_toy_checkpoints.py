from siaflow.stages.toy import train_toy_checkpoints

train_toy_checkpoints(snakemake)  # noqa: F821 (injected by Snakemake)
