from siaflow.steps import run

run("rollouts", snakemake)  # noqa: F821 (injected by Snakemake)
