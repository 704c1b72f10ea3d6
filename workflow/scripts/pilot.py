from siaflow.stages.report import pilot

pilot(snakemake)  # noqa: F821 (injected by Snakemake)
