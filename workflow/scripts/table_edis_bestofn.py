from siaflow.stages.edis import table_edis_bestofn

table_edis_bestofn(snakemake)  # noqa: F821 (injected by Snakemake)
