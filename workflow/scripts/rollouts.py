from siaflow.stages.generation import rollouts

rollouts(snakemake)  # noqa: F821 (injected by Snakemake)
