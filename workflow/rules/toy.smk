# The toy reasoning world's tiny GPT-2 models. The checkpoints are committed so the demo starts
# at once; rebuild them (bit-for-bit on the same CPU/software) with
#   snakemake --cores 2 --forcerun train_toy_model


rule train_toy_model:
    output:
        directory(layout.TOY_MODEL),
    log:
        "logs/train_toy_model/{toy_model}.log",
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        toy=lambda wc: TOY_MODELS[wc.toy_model]["toy"],
        training=config.get("toy_training", {}),
    script:
        "../../scripts/train_toy_model.py"


# fig_training_dynamics (dynamics.smk): a toy run trained again and saved at
# `training_dynamics.steps`, and the sft+rl run that fine-tunes the informative run's last step on
# its own correct traces (rejection sampling), saved at `training_dynamics.rl.steps`. Both are
# reproducible from their seeds; the last step of a run is the model train_toy_model makes.


rule train_toy_checkpoints:
    output:
        directory(layout.TOY_CHECKPOINTS),
    log:
        "logs/train_toy_checkpoints/{run}.log",
    wildcard_constraints:
        run="|".join(map(re.escape, TOY_MODELS)),
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        toy=lambda wc: TOY_MODELS[wc.run]["toy"],
        training=config.get("toy_training", {}),
        steps=DYNAMICS.get("steps", []),
    script:
        "../../scripts/train_toy_checkpoints.py"


rule train_toy_rl:
    input:
        run=layout.TOY_CHECKPOINTS,
    output:
        directory(layout.fill(layout.TOY_CHECKPOINTS, run="{run}+rl")),
    log:
        "logs/train_toy_rl/{run}.log",
    wildcard_constraints:
        run="|".join(map(re.escape, TOY_MODELS)),
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        init_step=config.get("toy_training", {}).get("steps"),
        rl=DYNAMICS.get("rl", {}),
    script:
        "../../scripts/train_toy_rl.py"
