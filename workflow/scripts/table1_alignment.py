from siaflow.stages.tables import table1_alignment

table1_alignment(snakemake)  # noqa: F821 (injected by Snakemake)
