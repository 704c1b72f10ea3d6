# H_k, p^_k(gold), S_k and split-sample halves for every checkpoint of every trajectory.


rule entropy:
    input:
        rollouts=lambda wc: expand(
            f"{R}/rollouts/{wc.model}/{wc.dataset}/shard-{{shard}}.parquet",
            shard=shards(wc.dataset),
        ),
        continuations=lambda wc: expand(
            f"{R}/continuations/{wc.model}/{wc.dataset}/stride-{wc.stride}/{wc.variant}/shard-{{shard}}.parquet",
            shard=shards(wc.dataset),
        ),
    output:
        f"{R}/entropy/{{model}}/{{dataset}}/stride-{{stride}}/{{variant}}.parquet",
    log:
        f"{R}/logs/entropy/{{model}}/{{dataset}}/stride-{{stride}}/{{variant}}.log",
    params:
        estimation=config["estimation"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/entropy.py"
