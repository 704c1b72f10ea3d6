# One pool, every selector (docs/selection.md): each question's first sampling.n_trajectories
# responses (those with continuations) scored by EDIS, mean entropy, self-certainty, DeepConf's
# confidences and Certaindex, and Best-of-N accuracy of every rule with bootstrap CIs.
# Each rule: scripts/<rule>.py -> siaflow.stages.selection.<rule> -> siaflow.selection.selectors.


rule table_selection:
    input:
        rollouts=all_shards(layout.ROLLOUTS),
        entropy=entropy_tables(),
    output:
        **table("table_selection", caption="../report/table_selection.rst"),
        long=path(layout.TABLE, name="table_selection.long", ext="csv"),
        scores=path(layout.SELECTION_SCORES),
    log:
        log("table_selection"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        selection=config["selection"],
        edis=edis_params("n_draws"),
        n_trajectories=config["sampling"]["n_trajectories"],
        h=H,
        models=MODEL_INFO,
        bootstrap=BOOTSTRAP,
    script:
        "../../scripts/table_selection.py"


rule fig_selection:
    input:
        long=rules.table_selection.output.long,
    output:
        **figure("fig_selection", caption="../report/fig_selection.rst"),
    log:
        log("fig_selection"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        models=MODEL_INFO,
    script:
        "../../scripts/fig_selection.py"
