from siaflow.stages import job_setup

job_setup(snakemake)  # before polars and numpy start their thread pools
from siaflow.stages.report import run_summary

run_summary(snakemake)
