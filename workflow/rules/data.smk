# Datasets: a hub dataset is downloaded once into resources/datasets/<name>/ (the hub client's
# cache honours HF_HOME; HF_HUB_OFFLINE=1 uses the cache only); preparation normalises it.


rule download_dataset:
    output:
        directory(layout.DATASET_DOWNLOAD),
    log:
        "logs/download_dataset/{dataset}.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        spec=lambda wc: config_keys(
            config["datasets"][wc.dataset], *siaflow.config.DOWNLOAD_DATASET
        ),
    script:
        "../../scripts/download_dataset.py"


rule prepare_dataset:
    input:
        raw=dataset_raw,
    output:
        path(layout.DATA),
    log:
        log("prepare_dataset/{dataset}"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        spec=lambda wc: config_keys(config["datasets"][wc.dataset], *siaflow.config.PREPARE_DATASET),
    script:
        "../../scripts/prepare_dataset.py"
