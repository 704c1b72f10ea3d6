# Datasets: a hub dataset is downloaded once into resources/datasets/<name>/ (the hub client's
# cache honours HF_HOME; HF_HUB_OFFLINE=1 uses the cache only); preparation normalises it.


rule download_dataset:
    output:
        directory("resources/datasets/{dataset}"),
    log:
        "logs/download_dataset/{dataset}.log",
    params:
        spec=lambda wc: config["datasets"][wc.dataset],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/download_dataset.py"


rule prepare_dataset:
    input:
        raw=dataset_raw,
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
