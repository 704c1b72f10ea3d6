# Beyond the papers (docs/early-exit.md): forced-answer probes against full continuations, and early
# exit rules evaluated after the fact on the stored trajectories and draws. Each rule:
# scripts/<rule>.py -> siaflow.stages.probes.<rule> -> siaflow.analysis.probes / siaflow.selection.early_exit.


rule table_probe_agreement:
    input:
        **probe_inputs(),
    output:
        **table("table_probe_agreement", caption="../report/table_probe_agreement.rst"),
        points=path(layout.TABLE, name="probe_agreement.points", ext="csv"),
    log:
        log("table_probe_agreement"),
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
        early_position=config["analysis"]["early_position"],
        probe=PROBE,
    script:
        "../../scripts/table_probe_agreement.py"


rule fig_probe_agreement:
    input:
        points=rules.table_probe_agreement.output.points,
        table=rules.table_probe_agreement.output.csv,
    output:
        **figure("fig_probe_agreement", caption="../report/fig_probe_agreement.rst"),
    log:
        log("fig_probe_agreement"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../../scripts/fig_probe_agreement.py"


rule table_early_exit:
    input:
        **probe_inputs(),
        rollouts=all_shards(layout.ROLLOUTS),
    output:
        **table("table_early_exit", caption="../report/table_early_exit.rst"),
        units=path(layout.TABLE, name="early_exit.units", ext="parquet"),
    log:
        log("table_early_exit"),
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
        early_exit={
            **config["early_exit"],
            "deepconf_warmup": siaflow.config.deepconf_warmup(config),
            "dynasor_interval": siaflow.config.dynasor_interval(config),
        },
        budgets=EXIT_BUDGETS,
        selection=config_keys(config["selection"], "window", "keep_fractions"),
    script:
        "../../scripts/table_early_exit.py"


rule fig_early_exit:
    input:
        table=rules.table_early_exit.output.csv,
    output:
        **figure("fig_early_exit", caption="../report/fig_early_exit.rst"),
    log:
        log("fig_early_exit"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../../scripts/fig_early_exit.py"
