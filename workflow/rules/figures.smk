# The SIA paper's figures, each a named target (`snakemake --cores 2 fig2_auc`), each from
# scripts/<rule>.py -> siaflow.stages.figures.<rule> -> siaflow.analysis.curves, drawn by
# siaflow.outputs.plots. Figs 4 and 5 are Figs 1 and 2 on the non-aligned models (`use rule`). The data
# frame each figure draws is saved beside it as <figure>.data.csv.


rule fig1_cumulative_gain:
    input:
        entropy=entropy_tables(),
        table1=rules.table1_alignment.output.csv,
    output:
        **figure("fig1_cumulative_gain", caption="../report/fig1_cumulative_gain.rst"),
    log:
        log("fig1_cumulative_gain"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        **selection_params("aligned", gain=config["analysis"]["cumulative_gain"]),
    script:
        "../../scripts/fig1_cumulative_gain.py"


use rule fig1_cumulative_gain as fig4_cumulative_gain_nonaligned with:
    output:
        **figure(
            "fig4_cumulative_gain_nonaligned",
            caption="../report/fig4_cumulative_gain_nonaligned.rst",
        ),
    log:
        log("fig4_cumulative_gain_nonaligned"),
    localrule: True
    params:
        **selection_params("nonaligned", gain=config["analysis"]["cumulative_gain"]),


rule fig2_auc:
    input:
        entropy=entropy_tables(),
        table1=rules.table1_alignment.output.csv,
    output:
        **figure("fig2_auc", caption="../report/fig2_auc.rst"),
    log:
        log("fig2_auc"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        **selection_params("aligned", stride=MAIN_STRIDE),
    script:
        "../../scripts/fig2_auc.py"


use rule fig2_auc as fig5_auc_nonaligned with:
    output:
        **figure("fig5_auc_nonaligned", caption="../report/fig5_auc_nonaligned.rst"),
    log:
        log("fig5_auc_nonaligned"),
    localrule: True
    params:
        **selection_params("nonaligned", stride=MAIN_STRIDE),


rule fig3_saturation:
    input:
        entropy=entropy_tables(),
    output:
        **figure("fig3_saturation", caption="../report/fig3_saturation.rst"),
    log:
        log("fig3_saturation"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        **figure_params(
            grid_points=config["analysis"]["grid_points"],
            saturation=siaflow.config.saturation(config),
        ),
    script:
        "../../scripts/fig3_saturation.py"


rule fig_fano:
    input:
        entropy=entropy_tables(),
    output:
        **figure("fig_fano", caption="../report/fig_fano.rst"),
    log:
        log("fig_fano"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        **figure_params(
            datasets={
                d: config_keys(spec, *siaflow.config.FANO_DATASET)
                for d, spec in config["datasets"].items()
            },
            fano_bins=config["analysis"]["fano_bins"],
        ),
    script:
        "../../scripts/fig_fano.py"
