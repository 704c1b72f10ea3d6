from siaflow.stages import job_setup

job_setup(snakemake)  # before polars and numpy start their thread pools
from siaflow.stages.toy import train_toy_rl

train_toy_rl(snakemake)
