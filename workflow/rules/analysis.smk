# Tables and figures, each a named target (`snakemake --cores 2 fig2_auc`). Where each comes from:
#   table1_alignment  metrics.table1_alignment          fig1/fig4  metrics.cumulative_gain_curves
#   table2_shuffle    metrics.shuffle_comparison        fig2/fig5  metrics.auc_curves
#   table3_mc_ablation metrics.subsample_continuations  fig3       metrics.saturation_summary
#   fig_fano          metrics.fano_data                 plots.*    the drawing, one shared style
# The data frame each figure draws is saved beside it as <figure>.data.csv.


rule table1_alignment:
    input:
        entropy=entropy_tables(),
    output:
        **table("table1_alignment", caption="../report/table1_alignment.rst"),
        trajectories=f"{R}/tables/alignment_by_trajectory.parquet",
    log:
        f"{R}/logs/table1_alignment.log",
    params:
        estimation=config["estimation"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/table1.py"


rule table2_shuffle:
    input:
        original=entropy_tables(variant="original"),
        shuffled=entropy_tables(variant="shuffled"),
    output:
        **table("table2_shuffle", caption="../report/table2_shuffle.rst"),
    log:
        f"{R}/logs/table2_shuffle.log",
    params:
        estimation=config["estimation"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/table2.py"


rule table3_mc_ablation:
    input:
        entropy=entropy_tables(),
        rollouts=all_shards("rollouts"),
        continuations=all_shards("continuations", stride=MC_SOURCE_STRIDE),
    output:
        **table("table3_mc_ablation", caption="../report/table3_mc_ablation.rst"),
    log:
        f"{R}/logs/table3_mc_ablation.log",
    params:
        mc=config["mc_ablation"],
        source=MC_SOURCE,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/table3.py"


rule fig1_cumulative_gain:
    input:
        entropy=entropy_tables(),
        table1=f"{R}/tables/table1_alignment.csv",
    output:
        **figure("fig1_cumulative_gain", caption="../report/fig1_cumulative_gain.rst"),
    log:
        f"{R}/logs/fig1_cumulative_gain.log",
    params:
        selection="aligned",
        analysis=config["analysis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/cumulative_gain_figure.py"


rule fig4_cumulative_gain_nonaligned:
    input:
        entropy=entropy_tables(),
        table1=f"{R}/tables/table1_alignment.csv",
    output:
        **figure(
            "fig4_cumulative_gain_nonaligned",
            caption="../report/fig4_cumulative_gain_nonaligned.rst",
        ),
    log:
        f"{R}/logs/fig4_cumulative_gain_nonaligned.log",
    params:
        selection="nonaligned",
        analysis=config["analysis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/cumulative_gain_figure.py"


rule fig2_auc:
    input:
        entropy=entropy_tables(),
        table1=f"{R}/tables/table1_alignment.csv",
    output:
        **figure("fig2_auc", caption="../report/fig2_auc.rst"),
    log:
        f"{R}/logs/fig2_auc.log",
    params:
        selection="aligned",
        analysis=config["analysis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/auc_figure.py"


rule fig5_auc_nonaligned:
    input:
        entropy=entropy_tables(),
        table1=f"{R}/tables/table1_alignment.csv",
    output:
        **figure("fig5_auc_nonaligned", caption="../report/fig5_auc_nonaligned.rst"),
    log:
        f"{R}/logs/fig5_auc_nonaligned.log",
    params:
        selection="nonaligned",
        analysis=config["analysis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/auc_figure.py"


rule fig3_saturation:
    input:
        entropy=entropy_tables(),
    output:
        **figure("fig3_saturation", caption="../report/fig3_saturation.rst"),
    log:
        f"{R}/logs/fig3_saturation.log",
    params:
        analysis=config["analysis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/fig3.py"


rule fig_fano:
    input:
        entropy=entropy_tables(),
    output:
        **figure("fig_fano", caption="../report/fig_fano.rst"),
    log:
        f"{R}/logs/fig_fano.log",
    params:
        analysis=config["analysis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/fig_fano.py"


# The cost plan needs nothing but the config: run it before submitting anything.
rule plan:
    output:
        csv=f"{R}/plan.csv",
        md=f"{R}/plan.md",
    log:
        f"{R}/logs/plan.log",
    params:
        plan=config["plan"],
        sampling=config["sampling"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/plan.py"


# The report runs Snakemake itself (the interpreter running this workflow), on the submit host.
rule report:
    input:
        ANALYSIS_TARGETS,
    output:
        f"{R}/report.html",
    log:
        f"{R}/logs/report.log",
    params:
        python=sys.executable,
        configfiles=" ".join(f"--configfile {f}" for f in workflow.overwrite_configfiles),
        targets=" ".join(ANALYSIS_TARGETS),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "{params.python} -m snakemake --nolock {params.targets} --report {output} {params.configfiles} > {log} 2>&1"
