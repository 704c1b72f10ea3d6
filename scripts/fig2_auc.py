from siaflow.stages import job_setup

job_setup(snakemake)  # before polars and numpy start their thread pools
from siaflow.stages.figures import fig2_auc

fig2_auc(snakemake)
