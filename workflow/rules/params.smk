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


config_keys = siaflow.config.config_keys
ROLLOUT_SAMPLING = siaflow.config.ROLLOUT_SAMPLING
CONTINUATION_SAMPLING = siaflow.config.CONTINUATION_SAMPLING


def generation_model(wildcards):
    """The model entry a generation step reads: where it is and how it is run; a vLLM model's engine
    settings too, with tensor parallelism from its GPUs when unset (siaflow's vllm_options), and a
    served model's server."""
    from siaflow.generation.backends import vllm_options

    spec = siaflow.config.local_model(SPECS[wildcards.model])
    out = config_keys(spec, *siaflow.config.GENERATION_MODEL)
    if spec.get("backend") == "vllm":
        out["vllm"] = vllm_options(spec)
    if spec.get("backend") == "openai":
        out["server"] = spec["server"]
    return out


def generation_params(sampling, **extra):
    """What a generation step reads: its model's and dataset's entries, the prompt template,
    decoding, the keys `sampling` of the sampling block, and `extra`."""
    return dict(
        model=generation_model,
        dataset=lambda wc: config_keys(
            config["datasets"][wc.dataset], *siaflow.config.GENERATION_DATASET
        ),
        prompt=prompt_template,
        decoding=config["decoding"],
        sampling=config_keys(config["sampling"], *sampling) | adaptive_params(sampling),
        **extra,
    )


def adaptive_params(sampling):
    """A continuation or probe job's `sampling.adaptive` with S's alpha, only when enabled."""
    if sampling is not CONTINUATION_SAMPLING:
        return {}
    from siaflow.adaptive_stopping import adaptive_params

    return adaptive_params(config)


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


def edis_params(*keys):
    """What an EDIS step reads of the `edis` block: the score's definition (window and the two
    thresholds: siaflow's EdisParams), and `keys`."""
    from siaflow.selection.edis import EdisParams

    return config_keys(config["edis"], *EdisParams.keys(), *keys)


def plan_params():
    """What the cost plan reads: the grid (models, dataset sizes), N, K, the strides, adaptive
    sampling, the EDIS pool, Table 3's stride, the probes' K and budget, the plan's assumptions."""
    return dict(
        models=list(config["models"]),
        datasets={d: config_keys(spec, "n_questions") for d, spec in config["datasets"].items()},
        sampling=config_keys(config["sampling"], "n_trajectories", "n_continuations", "strides"),
        adaptive=config["sampling"].get("adaptive"),
        plan=config["plan"],
        edis=config_keys(config["edis"], "pool_size"),
        mc_ablation=config_keys(config["mc_ablation"], "stride"),
        probe=config_keys(PROBE, "n_samples", "max_new_tokens"),
    )
