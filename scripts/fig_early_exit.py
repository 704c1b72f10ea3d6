from siaflow.stages import job_setup

job_setup(snakemake)  # before polars and numpy start their thread pools
from siaflow.stages.probes import fig_early_exit

fig_early_exit(snakemake)
