from siaflow.stages.edis import edis_scores

edis_scores(snakemake)  # noqa: F821 (injected by Snakemake)
