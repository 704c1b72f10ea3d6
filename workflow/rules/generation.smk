# GPU rules (on CPU for the toy world): N trajectories per question, then K continuations of
# every checkpoint prefix. One job per (model, dataset, shard[, stride, variant]); the main
# stride's two variants run in one job (`continuations_both_variants`): one engine start.


rule rollouts:
    input:
        data=f"{R}/data/{{dataset}}.parquet",
        model=model_input,
    output:
        f"{R}/rollouts/{{model}}/{{dataset}}/shard-{{shard}}.parquet",
    log:
        f"{R}/logs/rollouts/{{model}}/{{dataset}}/shard-{{shard}}.log",
    params:
        model=lambda wc: config["models"][wc.model],
        decoding=config["decoding"],
        sampling=config["sampling"],
    threads: 2
    resources:
        mem_mb=model_resource("mem_mb", 4000, grow=True),
        runtime=model_resource("runtime", 60, grow=True),
        gpu=model_resource("gpu", 0),
    conda:
        generation_env
    script:
        "../../scripts/rollouts.py"


rule continuations:
    input:
        rollouts=f"{R}/rollouts/{{model}}/{{dataset}}/shard-{{shard}}.parquet",
        model=model_input,
        # the shuffled variant reuses the original's empty-prefix (k = 0) draws
        original=lambda wc: (
            [f"{R}/continuations/{wc.model}/{wc.dataset}/stride-{wc.stride}/original/shard-{wc.shard}.parquet"]
            if wc.variant == "shuffled"
            else []
        ),
    output:
        f"{R}/continuations/{{model}}/{{dataset}}/stride-{{stride}}/{{variant}}/shard-{{shard}}.parquet",
    log:
        f"{R}/logs/continuations/{{model}}/{{dataset}}/stride-{{stride}}/{{variant}}/shard-{{shard}}.log",
    params:
        model=lambda wc: config["models"][wc.model],
        decoding=config["decoding"],
        sampling=config["sampling"],
    threads: 2
    resources:
        mem_mb=model_resource("mem_mb", 4000, grow=True),
        runtime=model_resource("runtime", 120, grow=True),
        gpu=model_resource("gpu", 0),
    conda:
        generation_env
    script:
        "../../scripts/continuations.py"


# The main stride needs both variants (Table 2): one job, one engine start, and the shuffled
# variant takes the original's empty-prefix draws from memory. Other strides (the Monte-Carlo
# ablation's own run) need only the original, from `continuations` above. A named target that
# needs only the original then builds the shuffled variant too; `sampling.variants_in_one_job:
# false` keeps one job per variant.
if config["sampling"]["variants_in_one_job"]:

    ruleorder: continuations_both_variants > continuations


    rule continuations_both_variants:
        input:
            rollouts=f"{R}/rollouts/{{model}}/{{dataset}}/shard-{{shard}}.parquet",
            model=model_input,
        output:
            original=f"{R}/continuations/{{model}}/{{dataset}}/stride-{MAIN_STRIDE}/original/shard-{{shard}}.parquet",
            shuffled=f"{R}/continuations/{{model}}/{{dataset}}/stride-{MAIN_STRIDE}/shuffled/shard-{{shard}}.parquet",
        log:
            f"{R}/logs/continuations/{{model}}/{{dataset}}/stride-{MAIN_STRIDE}/both-variants/shard-{{shard}}.log",
        params:
            model=lambda wc: config["models"][wc.model],
            decoding=config["decoding"],
            sampling=config["sampling"],
            stride=MAIN_STRIDE,
        threads: 2
        resources:
            mem_mb=model_resource("mem_mb", 4000, grow=True),
            runtime=model_resource("runtime", 120, grow=True, scale=2),  # two variants' work
            gpu=model_resource("gpu", 0),
        conda:
            generation_env
        script:
            "../../scripts/continuations.py"
