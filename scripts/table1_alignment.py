from siaflow.stages import job_setup

job_setup(snakemake)  # before polars and numpy start their thread pools
from siaflow.stages.tables import table1_alignment

table1_alignment(snakemake)
