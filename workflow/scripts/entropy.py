from siaflow.stages.entropy import entropy

entropy(snakemake)  # noqa: F821 (injected by Snakemake)
