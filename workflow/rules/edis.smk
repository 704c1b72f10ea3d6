# EDIS (second paper): token-entropy instability of every sampled response, Best-of-N selection.
# Scores come from the rollouts alone (no continuations); rollouts draw edis.pool_size responses.


rule edis_scores:
    input:
        rollouts=all_shards("rollouts"),
    output:
        f"{R}/edis/scores.parquet",
    log:
        f"{R}/logs/edis_scores.log",
    params:
        edis=config["edis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/edis_scores.py"


rule table_edis_bestofn:
    input:
        scores=f"{R}/edis/scores.parquet",
    output:
        **table("table_edis_bestofn", caption="../report/table_edis_bestofn.rst"),
        long=f"{R}/tables/table_edis_bestofn.long.csv",
    log:
        f"{R}/logs/table_edis_bestofn.log",
    params:
        edis=config["edis"],
        analysis=config["analysis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/table_edis_bestofn.py"


rule fig_edis_trajectories:
    input:
        rollouts=all_shards("rollouts"),
    output:
        **figure("fig_edis_trajectories", caption="../report/fig_edis_trajectories.rst"),
    log:
        f"{R}/logs/fig_edis_trajectories.log",
    params:
        edis=config["edis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/fig_edis_trajectories.py"


rule fig_edis_separation:
    input:
        scores=f"{R}/edis/scores.parquet",
    output:
        **figure("fig_edis_separation", caption="../report/fig_edis_separation.rst"),
        auc=f"{R}/figures/fig_edis_separation.auc.csv",
    log:
        f"{R}/logs/fig_edis_separation.log",
    params:
        edis=config["edis"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/fig_edis_separation.py"
