# siaflow: how a language model's uncertainty about its final answer evolves while it reasons.
# Pipeline (DESIGN.md): prepare_dataset -> rollouts -> continuations -> entropy -> tables/figures.
# Where each table and figure comes from: workflow/rules/analysis.smk.

from snakemake.utils import min_version

min_version("9.0")


# The demo config, unless the user names their own with --configfile (which then replaces it
# instead of being merged into it: a paper run must not inherit the toy models).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


wildcard_constraints:
    model="|".join(map(re.escape, MODELS)),
    dataset="|".join(map(re.escape, DATASETS)),
    shard=r"\d+",
    stride=r"\d+",
    variant="|".join(VARIANTS),


include: "workflow/rules/toy.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/generation.smk"
include: "workflow/rules/entropy.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/edis.smk"


# On a cluster only generation and toy training are submitted as jobs (GPU rules). Everything
# else runs on the submit host: downloads need its network, and aggregation, tables, figures
# and the report take seconds to minutes of one core.
localrules:
    all,
    build_model,
    download_dataset,
    prepare_dataset,
    entropy,
    edis_scores,
    plan,
    report,
    table1_alignment,
    table2_shuffle,
    table3_mc_ablation,
    table_edis_bestofn,
    fig1_cumulative_gain,
    fig2_auc,
    fig3_saturation,
    fig4_cumulative_gain_nonaligned,
    fig5_auc_nonaligned,
    fig_fano,
    fig_edis_trajectories,
    fig_edis_separation,


rule all:
    default_target: True
    input:
        ALL_TARGETS,
