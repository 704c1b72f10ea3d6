# The toy reasoning world's tiny GPT-2 models. The checkpoints are committed so the demo starts
# at once; rebuild them (bit-for-bit on the same CPU/software) with
#   snakemake --cores 2 --forcerun train_toy_model


rule train_toy_model:
    output:
        directory(layout.TOY_MODEL),
    log:
        "logs/train_toy_model/{toy_model}.log",
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        toy=lambda wc: TOY_MODELS[wc.toy_model]["toy"],
        training=config.get("toy_training", {}),
    script:
        "../scripts/train_toy_model.py"
