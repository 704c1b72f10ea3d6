from siaflow.stages.edis import fig_edis_separation

fig_edis_separation(snakemake)  # noqa: F821 (injected by Snakemake)
