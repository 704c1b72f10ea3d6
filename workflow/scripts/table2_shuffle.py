from siaflow.stages.tables import table2_shuffle

table2_shuffle(snakemake)  # noqa: F821 (injected by Snakemake)
