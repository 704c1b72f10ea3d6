from siaflow.stages.figures import fig2_auc

fig2_auc(snakemake)  # noqa: F821 (injected by Snakemake)
