# What rules read besides their inputs: params and resources builders, input functions.


def model_input(wildcards):
    """A toy model is trained (rule train_toy_model), a model with a `build` block built (rule
    build_model) and a model given by hub id downloaded (rule download_model), only when its
    directory is missing.

    The committed checkpoints are deliberately not inputs: Snakemake reruns a job whose script
    is newer than its output, and a fresh clone gives files arbitrary modification times.
    Retrain on purpose with `--forcerun train_toy_model` and the checkpoint paths as targets.
    """
    spec = siaflow.config.local_model(SPECS[wildcards.model])
    if "checkpoint" in spec:
        # a saved step of a training run (rules train_toy_checkpoints, train_toy_rl): never
        # committed, so always an input (a retrained run is measured again, a rerun is a no-op)
        return [str(Path(spec["path"]).parent)]
    if Path(spec["path"]).exists():
        return []
    if "toy" in spec or "build" in spec or "hub" in spec:
        return [spec["path"]]
    return []


def model_resource(key, default, grow=False):
    """Per-model GPU / memory / runtime of a generation job (siaflow.config.model_resource)."""
    return siaflow.config.model_resource(config, key, default, grow=grow)


def generation_params(**extra):
    """What a generation step reads: its model's and dataset's entries, the prompt template,
    decoding and sampling, and `extra`."""
    return dict(
        model=lambda wc: siaflow.config.local_model(SPECS[wc.model]),
        dataset=lambda wc: config["datasets"][wc.dataset],
        prompt=prompt_template,
        decoding=config["decoding"],
        sampling=config["sampling"],
        **extra,
    )


def generation_resources(runtime):
    """A generation job's GPUs (with cpus_per_gpu cores each), memory and runtime: its model's
    `resources`, else these defaults (runtime in minutes)."""
    return dict(
        mem_mb=model_resource("mem_mb", 4000, grow=True),
        runtime=model_resource("runtime", runtime),
        gpu=model_resource("gpu", 0),
        cpus_per_gpu=model_resource("cpus_per_gpu", 8),
    )


def generation_threads(wildcards):
    """A generation job's threads: its GPUs' cores (cpus_per_gpu each), or 2 on a CPU."""
    return siaflow.config.generation_threads(config, wildcards.model)


def generation_env(wildcards):
    """The conda env of a generation job: vLLM pins its own torch, so it gets its own env."""
    backend = SPECS[wildcards.model].get("backend", "transformers")
    return "../../envs/vllm.yaml" if backend == "vllm" else "../../envs/torch.yaml"


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
    from siaflow.inputs.datasets import prompt_for

    answer_type = config["datasets"][wildcards.dataset]["answer_type"]
    return config["prompts"][prompt_for(SPECS[wildcards.model], answer_type)]


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


def plan_params():
    """What the cost plan reads: the grid (models, datasets), sampling, the plan's assumptions."""
    return dict(
        models=config["models"],
        datasets=config["datasets"],
        sampling=config["sampling"],
        plan=config["plan"],
        edis=config["edis"],
        mc_ablation=config["mc_ablation"],
    )
