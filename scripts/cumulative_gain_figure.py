from siaflow.steps import run

run("cumulative_gain_figure", snakemake)  # noqa: F821 (injected by Snakemake)
