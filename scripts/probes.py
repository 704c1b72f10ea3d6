from siaflow.stages import job_setup

# vLLM starts its engine in a spawned process, which runs this file again as __mp_main__ (Snakemake
# points __file__ here): only the job's own process may run the step
if __name__ == "__main__":
    job_setup(snakemake, hub_offline=True)  # before torch, polars and the hub client are imported
    from siaflow.stages.generation import probes

    probes(snakemake)
