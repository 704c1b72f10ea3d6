from siaflow.stages.figures import fig3_saturation

fig3_saturation(snakemake)  # noqa: F821 (injected by Snakemake)
