# The SIA paper's tables, each a named target (`snakemake --cores 2 table2_shuffle`), each from
# scripts/<rule>.py -> siaflow.stages.tables.<rule> -> siaflow.analysis.metrics:
#   table1_alignment    metrics.trajectory_alignment, metrics.table1_alignment
#   table2_shuffle      metrics.shuffle_comparison
#   table3_mc_ablation  metrics.mc_ablation_table (sub-samples the stored draws: no new generation)


rule table1_alignment:
    input:
        entropy=entropy_tables(),
    output:
        **table("table1_alignment", caption="../report/table1_alignment.rst"),
        trajectories=path(layout.TABLE, name="alignment_by_trajectory", ext="parquet"),
    log:
        log("table1_alignment"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        h=H,
        models=MODEL_INFO,
        bootstrap=BOOTSTRAP,
    script:
        "../../scripts/table1_alignment.py"


rule table2_shuffle:
    input:
        original=entropy_tables(variant="original"),
        shuffled=entropy_tables(variant="shuffled"),
    output:
        **table("table2_shuffle", caption="../report/table2_shuffle.rst"),
    log:
        log("table2_shuffle"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        h=H,
        models=MODEL_INFO,
        bootstrap=BOOTSTRAP,
    script:
        "../../scripts/table2_shuffle.py"


rule table3_mc_ablation:
    input:
        entropy=entropy_tables(),
        rollouts=all_shards(layout.ROLLOUTS),
        continuations=all_shards(layout.CONTINUATIONS, stride=MC_SOURCE_STRIDE, variant="original"),
    output:
        **table("table3_mc_ablation", caption="../report/table3_mc_ablation.rst"),
    log:
        log("table3_mc_ablation"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        h=H,
        models=MODEL_INFO,
        bootstrap=BOOTSTRAP,
        alpha=config["estimation"]["alpha"],
        n_trajectories=config["sampling"]["n_trajectories"],
        main={
            "stride": MAIN_STRIDE,
            "n_continuations": config["sampling"]["n_continuations"],
        },
        ablated=MC,
        source=MC_SOURCE,
    script:
        "../../scripts/table3_mc_ablation.py"
