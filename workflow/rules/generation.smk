# GPU rules (on CPU for the toy world): N trajectories per question, then K continuations of
# every checkpoint prefix. One job per (model, dataset, shard[, stride, variant]).


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
