from siaflow.stages import job_setup

job_setup(snakemake)  # before polars and numpy start their thread pools
from siaflow.stages.dynamics import fig_training_dynamics

fig_training_dynamics(snakemake)
