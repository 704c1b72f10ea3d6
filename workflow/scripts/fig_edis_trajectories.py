from siaflow.stages.edis import fig_edis_trajectories

fig_edis_trajectories(snakemake)  # noqa: F821 (injected by Snakemake)
