from siaflow.stages import job_setup

job_setup(snakemake)  # before polars and numpy start their thread pools
from siaflow.stages.probes import table_probe_agreement

table_probe_agreement(snakemake)
