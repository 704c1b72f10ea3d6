from siaflow.stages.tables import table3_mc_ablation

table3_mc_ablation(snakemake)  # noqa: F821 (injected by Snakemake)
