from siaflow.stages.selection import fig_selection

fig_selection(snakemake)  # noqa: F821 (injected by Snakemake)
