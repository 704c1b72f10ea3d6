from siaflow.stages.figures import fig1_cumulative_gain

fig1_cumulative_gain(snakemake)  # noqa: F821 (injected by Snakemake)
