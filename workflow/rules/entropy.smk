# H_k, p^_k(gold), S_k and split-sample halves for every checkpoint of every trajectory.


rule entropy:
    input:
        rollouts=shards_of(path(layout.ROLLOUTS)),
        continuations=shards_of(path(layout.CONTINUATIONS)),
    output:
        path(layout.ENTROPY),
    log:
        log("entropy/{model}/{dataset}/stride-{stride}/{variant}"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        alpha=config["estimation"]["alpha"],
        n_trajectories=config["sampling"]["n_trajectories"],
    script:
        "../../scripts/entropy.py"
