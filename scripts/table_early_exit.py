from siaflow.stages import job_setup

job_setup(snakemake)  # before polars and numpy start their thread pools
from siaflow.stages.probes import table_early_exit

table_early_exit(snakemake)
