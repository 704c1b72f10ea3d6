from siaflow.steps import run

run("train_toy_model", snakemake)  # noqa: F821 (injected by Snakemake)
