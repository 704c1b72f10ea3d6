# SIA through training (fig_training_dynamics; its own target, not part of `all`): every saved step
# of the toy runs (rules train_toy_checkpoints, train_toy_rl in toy.smk) measured like any model
# (a checkpoint is a model: `<model>.step-<n>`, siaflow.config.checkpoint_models).


rule fig_training_dynamics:
    input:
        entropy=[
            path(
                layout.ENTROPY,
                model=m,
                dataset=DYNAMICS.get("dataset"),
                stride=MAIN_STRIDE,
                variant="original",
            )
            for m in CHECKPOINT_MODELS
        ],
    output:
        **figure("fig_training_dynamics", caption="../report/fig_training_dynamics.rst"),
        **table("table_training_dynamics", caption="../report/fig_training_dynamics.rst"),
    log:
        log("fig_training_dynamics"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        h=H,
        bootstrap=BOOTSTRAP,
        checkpoints={
            m: {**s["checkpoint"], "regime": s["regime"]} for m, s in CHECKPOINT_MODELS.items()
        },
        early_position=DYNAMICS.get("early_position", 0.25),
    script:
        "../../scripts/fig_training_dynamics.py"
