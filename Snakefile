# siaflow: how a language model's uncertainty about its final answer evolves while it reasons.
# Pipeline (docs/design.md): prepare_dataset -> rollouts -> continuations -> entropy -> tables,
# figures, EDIS -> report. Every rule `x` (workflow/rules/<file>.smk) runs scripts/x.py, which
# calls the function `x` of siaflow/stages/<file>.py.

# The workflow is workflow/Snakefile, where snakedeploy and the workflow catalog look for it
# (docs/releases.md); this file runs it from the checkout's root.


include: "workflow/Snakefile"


# Snakemake keeps the includer's default target over an included file's `default_target: True`
workflow.default_target = "all"
