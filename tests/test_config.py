"""Bad configuration stops the run at once, with a message that names the key."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def dry_run(config: dict, tmp_path) -> subprocess.CompletedProcess:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(cfg), "--directory", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    res.output = res.stdout + res.stderr  # Snakemake prints workflow errors on stdout
    return res


@pytest.fixture
def demo():
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_demo_config_dry_run_is_clean(demo, tmp_path):
    res = dry_run(demo, tmp_path)
    assert res.returncode == 0, res.output
    assert "table1_alignment" in res.stdout


def test_misspelled_key_is_named(demo, tmp_path):
    demo["sampling"]["n_continuation"] = demo["sampling"].pop("n_continuations")
    res = dry_run(demo, tmp_path)
    assert res.returncode != 0
    assert "n_continuation" in res.output and "was unexpected" in res.output


def test_misspelled_top_level_key_is_named(demo, tmp_path):
    demo["decodnig"] = demo["decoding"]
    res = dry_run(demo, tmp_path)
    assert res.returncode != 0 and "decodnig" in res.output


def test_greedy_decoding_is_rejected(demo, tmp_path):
    demo["decoding"]["temperature"] = 0
    res = dry_run(demo, tmp_path)
    assert res.returncode != 0 and "temperature" in res.output


def test_unknown_prompt_reference_is_named(demo, tmp_path):
    demo["models"]["toy-sft"]["prompt"] = "fewshot"
    res = dry_run(demo, tmp_path)
    assert res.returncode != 0
    assert "models.toy-sft.prompt" in res.output and "fewshot" in res.output


def test_configfile_replaces_the_demo_config(demo, tmp_path):
    """--configfile must not merge the demo's models into the user's."""
    del demo["models"]["toy-base"]
    del demo["training_dynamics"]  # it names toy-base
    res = dry_run(demo, tmp_path)
    assert res.returncode == 0, res.output
    assert "toy-base" not in res.output and "toy-sft" in res.output


def test_generation_memory_grows_with_the_retry_attempt_and_runtime_does_not():
    """A retried job resumes from its parts: it needs more memory perhaps, never more time than the
    model's configured runtime (a multiple would break the GPU partition's time limit)."""
    from types import SimpleNamespace

    from siaflow.config import generation_threads, model_resource

    cfg = {"models": {"big": {"resources": {"gpu": 2, "mem_mb": 32000, "runtime": 240, "cpus_per_gpu": 6}}, "toy": {}}}
    big, toy = SimpleNamespace(model="big"), SimpleNamespace(model="toy")
    mem = model_resource(cfg, "mem_mb", 4000, grow=True)
    assert [mem(big, a) for a in (1, 2, 3)] == [32000, 64000, 96000]
    assert [mem(toy, a) for a in (1, 2)] == [4000, 8000]
    runtime = model_resource(cfg, "runtime", 120)
    assert [runtime(big, a) for a in (1, 2, 3)] == [240, 240, 240] and runtime(toy, 3) == 120
    gpu = model_resource(cfg, "gpu", 0)
    assert [gpu(big, a) for a in (1, 2)] == [2, 2] and gpu(toy, 1) == 0
    # threads: the cores SLURM allocates with the GPUs, 2 on a CPU job
    assert generation_threads(cfg, "big") == 12 and generation_threads(cfg, "toy") == 2


def test_slurm_profile_dry_run_on_the_paper_grid(profiles_env):
    """The profile's resources reach the jobs: per-model GPU/memory/runtime and cpus_per_gpu.
    (Which rules stay local is checked on a real cluster in tests/test_slurm.py.)"""
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", "slurm", "--configfile", "config/paper.yaml"],
        cwd=ROOT,
        env=profiles_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    blocks = out.split("\n\n")
    rollout = next(b for b in blocks if "rule rollouts:" in b and "model=deepseek-llm-7b-chat" in b)
    assert "mem_mb=64000" in rollout and "runtime=480" in rollout and "gpu=1" in rollout and "cpus_per_gpu=8" in rollout
    small = next(b for b in blocks if "rule continuations_both_variants:" in b and "model=qwen2.5-math-1.5b" in b)
    assert "mem_mb=24000" in small and "runtime=180" in small and "gpu=1" in small
    # every GPU job asks for exactly its model's configured runtime (attempt 1 here; the callable
    # above shows attempts 2-3 ask for the same)
    import re

    import yaml

    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())["models"]
    gpu_jobs = [b for b in blocks if re.search(r"rule (rollouts|continuations\w*):", b)]
    assert len(gpu_jobs) > 1000
    for b in gpu_jobs:
        model = re.search(r"model=([^,\s]+)", b).group(1)
        assert f"runtime={paper[model]['resources']['runtime']}," in b, b


def test_a_misspelled_vllm_engine_setting_is_named(demo, tmp_path):
    demo["models"]["toy-sft"].update(backend="vllm", vllm={"max_modl_len": 2048})
    res = dry_run(demo, tmp_path)
    assert res.returncode != 0 and "max_modl_len" in res.output and "was unexpected" in res.output
    demo["models"]["toy-sft"]["vllm"] = {"block_size": 32, "gpu_memory_utilization": 1.5}
    res = dry_run(demo, tmp_path)
    assert res.returncode != 0 and "1.5" in res.output and "gpu_memory_utilization" in res.output


def test_a_served_model_needs_its_server_and_only_known_server_keys(demo, tmp_path):
    demo["models"]["toy-sft"].update(backend="openai")
    res = dry_run(demo, tmp_path)
    assert res.returncode != 0 and "models.toy-sft.server" in res.output and "backend: openai" in res.output
    demo["models"]["toy-sft"]["server"] = {"base_url": "gpu-node:8000"}
    res = dry_run(demo, tmp_path)
    assert res.returncode != 0 and "gpu-node:8000" in res.output and "does not match" in res.output
    demo["models"]["toy-sft"]["server"] = {"base_url": "http://gpu-node:8000", "modle": "x"}
    res = dry_run(demo, tmp_path)
    assert res.returncode != 0 and "modle" in res.output and "was unexpected" in res.output
    demo["models"]["toy-sft"]["server"] = {"base_url": "http://gpu-node:8000", "model": "toy"}
    assert dry_run(demo, tmp_path).returncode == 0  # the server is checked by the job, not the dry run


def test_a_served_model_takes_its_server_settings():
    from siaflow.generation.backends import server_options

    spec = {"server": {"base_url": "http://h:1", "model": "m", "api_key_env": None, "max_concurrency": 4}}
    assert server_options(spec) == {"base_url": "http://h:1", "served_model": "m", "max_concurrency": 4}


def test_the_engine_takes_its_settings_and_its_gpus_from_the_model():
    from siaflow.generation.backends import vllm_options

    spec = {"path": "m", "resources": {"gpu": 4}, "vllm": {"max_model_len": 4096, "kv_cache_gib": None}}
    assert vllm_options(spec) == {"max_model_len": 4096, "tensor_parallel_size": 4}
    assert vllm_options({"path": "m"}) == {"tensor_parallel_size": 1}
    assert vllm_options({"path": "m", "resources": {"gpu": 0}}) == {"tensor_parallel_size": 1}
    assert vllm_options({"path": "m", "resources": {"gpu": 8}, "vllm": {"tensor_parallel_size": 2}}) == {
        "tensor_parallel_size": 2
    }


def test_a_models_engine_settings_are_read_in_one_place():
    """``engine_for``: each backend's settings object from ``models.<name>`` and ``sampling``; a
    setting the engine does not take is named with the config block it came from."""
    from siaflow.generation.backends import (
        EngineSettings,
        ServerSettings,
        TransformersSettings,
        VLLMSettings,
        engine_for,
        make_backend,
    )

    sampling = {"batch_rows": 64, "share_rows": False}
    hf = engine_for({"path": "m", "dtype": "float32", "vllm": {"logprobs": 5}}, sampling, label="toy")
    want = TransformersSettings("float32", batch_rows=64, share_rows=False)
    assert hf == EngineSettings("transformers", "m", want, label="toy")
    spec = {"path": "m", "backend": "vllm", "revision": "r", "resources": {"gpu": 2}, "vllm": {"kv_cache_gib": 1}}
    engine = engine_for(spec, sampling).engine
    assert engine == VLLMSettings(tensor_parallel_size=2, kv_cache_gib=1)
    served = {"path": "m", "backend": "openai", "server": {"base_url": "http://h:1", "model": "s", "retries": 1}}
    assert engine_for(served, sampling).engine == ServerSettings("http://h:1", served_model="s", retries=1)
    with pytest.raises(ValueError, match=r"models.big.vllm: swap_space is not a setting of backend 'vllm'"):
        engine_for({**spec, "vllm": {"swap_space": 4}}, sampling, label="big")
    with pytest.raises(ValueError, match=r"make_backend\('vllm'\): batch_rows is not a setting"):
        make_backend("vllm", "m", batch_rows=8)
    with pytest.raises(TypeError, match="backend 'vllm' takes VLLMSettings"):
        EngineSettings("vllm", "m", TransformersSettings())


@pytest.mark.parametrize(
    "block,key,value,named",
    [
        ("sampling", "n_continuations", 1, "n_continuations"),
        ("estimation", "alpha", 0, "alpha"),
        ("estimation", "alpha", -0.5, "alpha"),
    ],
)
def test_an_estimator_that_cannot_estimate_is_refused(demo, tmp_path, block, key, value, named):
    """K < 2 draws have no entropy to speak of, and alpha <= 0 leaves an unseen gold's surprisal
    infinite: both stop before anything runs, naming the key."""
    demo[block][key] = value
    res = dry_run(demo, tmp_path)
    assert res.returncode != 0 and named in res.output


def test_the_rebound_threshold_is_at_least_the_estimators_resolution(demo):
    """null means the smallest non-zero H_k that K draws can give; a smaller explicit value (one
    stray draw would be a rebound) is refused, naming the key."""
    import copy

    from siaflow.analysis.estimators import conditional_answer_entropy
    from siaflow.config import ConfigError, rebound_threshold

    cfg = copy.deepcopy(demo)
    cfg["analysis"]["saturation"]["rebound_threshold"] = None
    K = cfg["sampling"]["n_continuations"]
    assert rebound_threshold(cfg) == pytest.approx(conditional_answer_entropy({"a": K - 1, "b": 1}), abs=1e-6)
    cfg["analysis"]["saturation"]["rebound_threshold"] = 0.1
    with pytest.raises(ConfigError, match="analysis.saturation.rebound_threshold"):
        rebound_threshold(cfg)
    cfg["analysis"]["saturation"]["rebound_threshold"] = 0.5
    assert rebound_threshold(cfg) == 0.5


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "config").glob("*.yaml")))
def test_every_shipped_config_is_valid(name):
    """Each config/*.yaml parses, passes the schema and siaflow's own checks, and names local
    datasets and prompts that exist (a config a README command runs must not fail at start)."""
    from snakemake.utils import validate

    from siaflow.config import prepare

    schema = ROOT / "workflow/schemas/config.schema.yaml"
    cfg = yaml.safe_load((ROOT / "config" / name).read_text())
    validate(cfg, str(schema))
    prepare(cfg, schema)
    for dataset, spec in cfg["datasets"].items():
        if spec["source"] == "local":
            assert list((ROOT / spec["path"]).glob(spec["files"])), f"{name}: {dataset} has no {spec['files']}"
