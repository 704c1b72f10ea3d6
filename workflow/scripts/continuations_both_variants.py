from siaflow.stages.generation import continuations_both_variants

# vLLM starts its engine in a spawned process, which runs this file again as __mp_main__ (Snakemake
# points __file__ here): only the job's own process may run the step
if __name__ == "__main__":
    continuations_both_variants(snakemake)  # noqa: F821 (injected by Snakemake)
