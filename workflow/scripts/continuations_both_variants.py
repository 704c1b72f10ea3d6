from siaflow.stages.generation import continuations_both_variants

continuations_both_variants(snakemake)  # noqa: F821 (injected by Snakemake)
