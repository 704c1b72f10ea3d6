from siaflow.stages.selection import table_selection

table_selection(snakemake)  # noqa: F821 (injected by Snakemake)
