from siaflow.stages.toy import train_toy_rl

train_toy_rl(snakemake)  # noqa: F821 (injected by Snakemake)
