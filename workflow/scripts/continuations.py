from siaflow.stages.generation import continuations

continuations(snakemake)  # noqa: F821 (injected by Snakemake)
