from siaflow.steps import run

run("table_edis_bestofn", snakemake)  # noqa: F821 (injected by Snakemake)
