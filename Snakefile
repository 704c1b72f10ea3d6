# siaflow: how a language model's uncertainty about its final answer evolves while it reasons.
# Pipeline (docs/design.md): prepare_dataset -> rollouts -> continuations -> entropy -> tables,
# figures, EDIS -> report. Every rule `x` (workflow/rules/<file>.smk) runs scripts/x.py, which
# calls the function `x` of siaflow/stages/<file>.py.

import os
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# siaflow, the package beside this Snakefile, is imported from this checkout: by this Snakefile, and
# through PYTHONPATH by every rule's script in whatever environment it runs (the conda envs in
# envs/ hold only third-party packages; jobs on a cluster inherit the variable).
REPO = str(Path(workflow.basedir))
sys.path.insert(0, REPO)
os.environ.update(PYTHONPATH=os.pathsep.join([REPO, *filter(None, [os.environ.get("PYTHONPATH")])]))


# The demo config, unless the user names their own with --configfile (which then replaces it
# instead of being merged into it: a paper run must not inherit the toy models).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/params.smk"


wildcard_constraints:
    model="|".join(map(re.escape, SPECS)),
    dataset="|".join(map(re.escape, DATASETS)),
    shard=r"\d+",
    stride=r"\d+",
    variant="|".join([*VARIANTS, PROBE_VARIANT]),
    toy_model=r"[^/]+",
    built_model=r"[^/]+",
    hub_model=r"[^/]+",


# On a cluster only generation and toy training are submitted as jobs (GPU rules). Every other
# rule is a `localrule` and runs on the submit host: downloads need its network, and aggregation,
# tables, figures and the report take seconds to minutes of one core.
include: "workflow/rules/toy.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/generation.smk"
include: "workflow/rules/entropy.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/edis.smk"
include: "workflow/rules/selection.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/dynamics.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,
    localrule: True
