from siaflow.stages import job_setup

job_setup(snakemake)  # before polars and numpy start their thread pools
from siaflow.stages.data import prepare_dataset

prepare_dataset(snakemake)
