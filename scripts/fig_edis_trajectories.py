from siaflow.steps import run

run("fig_edis_trajectories", snakemake)  # noqa: F821 (injected by Snakemake)
