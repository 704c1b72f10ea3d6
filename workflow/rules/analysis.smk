# Tables and figures. Each output names the paper's table / figure it reproduces; the data frame
# each figure draws is saved beside it as <figure>.data.csv.


rule table1_alignment:
    input:
        entropy=entropy_tables(),
    output:
        csv=report(
            f"{R}/tables/table1_alignment.csv",
            caption="../report/table1_alignment.rst",
            category="Tables",
        ),
        md=f"{R}/tables/table1_alignment.md",
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


rule fig1_cumulative_gain:
    input:
        entropy=entropy_tables(),
    output:
        **figure("fig1_cumulative_gain", caption="../report/fig1_cumulative_gain.rst"),
    log:
        f"{R}/logs/fig1_cumulative_gain.log",
    params:
        analysis=config["analysis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/fig1.py"


rule fig2_auc:
    input:
        entropy=entropy_tables(),
    output:
        **figure("fig2_auc", caption="../report/fig2_auc.rst"),
    log:
        f"{R}/logs/fig2_auc.log",
    params:
        analysis=config["analysis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/fig2.py"


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
