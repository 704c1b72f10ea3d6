# What rules read besides their inputs: params and resources builders, input functions.


def model_input(wildcards):
    """A toy model is trained (rule train_toy_model), and a model with a `build` block built (rule
    build_model), only when its directory is missing.

    The committed checkpoints are deliberately not inputs: Snakemake reruns a job whose script
    is newer than its output, and a fresh clone gives files arbitrary modification times.
    Retrain on purpose with `--forcerun train_toy_model` and the checkpoint paths as targets.
    """
    spec = config["models"][wildcards.model]
    if ("toy" in spec or "build" in spec) and not Path(spec["path"]).exists():
        return [spec["path"]]
    return []


def model_resource(key, default, grow=False, scale=1):
    """Per-model GPU / memory / runtime of a generation job (siaflow.config.model_resource)."""
    return siaflow.config.model_resource(config, key, default, grow=grow, scale=scale)


def generation_params(**extra):
    """What a generation step reads: its model's and dataset's entries, the prompt template,
    decoding and sampling, and `extra`."""
    return dict(
        model=lambda wc: config["models"][wc.model],
        dataset=lambda wc: config["datasets"][wc.dataset],
        prompt=prompt_template,
        decoding=config["decoding"],
        sampling=config["sampling"],
        **extra,
    )


def generation_resources(runtime, scale=1):
    """A generation job's GPUs, memory and runtime: its model's `resources`, else these defaults
    (runtime in minutes; `scale` for a job doing several jobs' work)."""
    return dict(
        mem_mb=model_resource("mem_mb", 4000, grow=True),
        runtime=model_resource("runtime", runtime, grow=True, scale=scale),
        gpu=model_resource("gpu", 0),
    )


def generation_env(wildcards):
    """The conda env of a generation job: vLLM pins its own torch, so it gets its own env."""
    backend = config["models"][wildcards.model].get("backend", "transformers")
    return "../envs/vllm.yaml" if backend == "vllm" else "../envs/torch.yaml"


def dataset_raw(wildcards):
    """The downloaded files of a hub dataset, the directory of a local one; nothing for generated ones."""
    spec = config["datasets"][wildcards.dataset]
    if spec["source"] == "hub":
        return [layout.fill(layout.DATASET_DOWNLOAD, dataset=wildcards.dataset)]
    if spec["source"] == "local":
        return [spec["path"]]
    return []


def prompt_template(wildcards):
    """The prompt template a model uses on a dataset (models.<name>.prompt)."""
    from siaflow.datasets import prompt_for

    answer_type = config["datasets"][wildcards.dataset]["answer_type"]
    return config["prompts"][prompt_for(config["models"][wildcards.model], answer_type)]


def figure_params(**extra):
    """What a figure step reads: the H_k column, the models' regimes and families, the bootstrap,
    and `extra`."""
    return dict(h=H, models=MODEL_INFO, bootstrap=BOOTSTRAP, **extra)


def selection_params(selection, **extra):
    """Figs 1-2 (`aligned`) and 4-5 (`nonaligned`): the models on one side of the threshold."""
    return figure_params(
        selection=selection,
        aligned_threshold=config["analysis"]["aligned_threshold"],
        grid_points=config["analysis"]["grid_points"],
        **extra,
    )
