from siaflow.stages import job_setup

job_setup(snakemake)  # before polars and numpy start their thread pools
from siaflow.stages.edis import fig_edis_trajectories

fig_edis_trajectories(snakemake)
