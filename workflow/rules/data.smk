rule prepare_dataset:
    output:
        f"{R}/data/{{dataset}}.parquet",
    log:
        f"{R}/logs/prepare_dataset/{{dataset}}.log",
    params:
        spec=lambda wc: config["datasets"][wc.dataset],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/prepare_dataset.py"
