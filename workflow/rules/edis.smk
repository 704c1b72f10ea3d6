# EDIS (second paper): token-entropy instability of every sampled response, Best-of-N selection.
# Scores come from the rollouts alone (no continuations); rollouts draw edis.pool_size responses.
# Each rule: scripts/<rule>.py -> siaflow.stages.edis.<rule> -> siaflow.selection.edis.


rule edis_scores:
    input:
        rollouts=all_shards(layout.ROLLOUTS),
    output:
        path(layout.EDIS_SCORES),
    log:
        log("edis_scores"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        edis=edis_params(),
    script:
        "../../scripts/edis_scores.py"


rule table_edis_bestofn:
    input:
        scores=rules.edis_scores.output[0],
    output:
        **table("table_edis_bestofn", caption="../report/table_edis_bestofn.rst"),
        long=path(layout.TABLE, name="table_edis_bestofn.long", ext="csv"),
    log:
        log("table_edis_bestofn"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        edis=config_keys(config["edis"], "n_values", "n_draws"),
        models=MODEL_INFO,
        bootstrap=BOOTSTRAP,
    script:
        "../../scripts/table_edis_bestofn.py"


rule fig_edis_trajectories:
    input:
        rollouts=all_shards(layout.ROLLOUTS),
    output:
        **figure("fig_edis_trajectories", caption="../report/fig_edis_trajectories.rst"),
    log:
        log("fig_edis_trajectories"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        edis=edis_params("example_trajectories"),
    script:
        "../../scripts/fig_edis_trajectories.py"


rule fig_edis_separation:
    input:
        scores=rules.edis_scores.output[0],
    output:
        **figure("fig_edis_separation", caption="../report/fig_edis_separation.rst"),
        auc=path(layout.FIGURE, name="fig_edis_separation.auc", ext="csv"),
    log:
        log("fig_edis_separation"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../../scripts/fig_edis_separation.py"
