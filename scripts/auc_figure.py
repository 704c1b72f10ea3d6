from siaflow.steps import run

run("auc_figure", snakemake)  # noqa: F821 (injected by Snakemake)
