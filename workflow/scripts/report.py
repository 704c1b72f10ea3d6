from siaflow.stages.report import report

report(snakemake)  # noqa: F821 (injected by Snakemake)
