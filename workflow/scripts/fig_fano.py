from siaflow.stages.figures import fig_fano

fig_fano(snakemake)  # noqa: F821 (injected by Snakemake)
