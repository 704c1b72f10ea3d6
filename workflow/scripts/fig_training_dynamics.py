from siaflow.stages.dynamics import fig_training_dynamics

fig_training_dynamics(snakemake)  # noqa: F821 (injected by Snakemake)
