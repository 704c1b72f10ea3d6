import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(tmp: Path) -> tuple[dict, Path]:
    """The demo config shrunk to seconds of generation: 5 questions, N = 3, K = 6, stride 8."""
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["results"] = str(tmp / "results")
    cfg["datasets"]["toy-arith"]["n_questions"] = 5
    cfg["sampling"].update(n_trajectories=3, n_continuations=6, strides=[8], shard_size=3)
    cfg["mc_ablation"] = {"stride": 16, "n_continuations": 3}
    cfg["edis"].update(pool_size=6, n_values=[2, 6], n_draws=20, example_trajectories=2)
    cfg["analysis"]["bootstrap"] = 30
    cfg["selection"]["n_values"] = [2, 3]
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return cfg, path


@pytest.fixture(scope="session")
def local_run(tmp_path_factory):
    """The whole workflow on the tiny config with the local executor (used by the end-to-end and
    the SLURM tests, which compares its own run against this one)."""
    tmp = tmp_path_factory.mktemp("e2e")
    cfg, path = tiny_config(tmp)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(path), "--directory", str(ROOT)]
    # one named target first: it must build only what it needs
    only = subprocess.run(cmd + ["-n", "fig2_auc"], capture_output=True, text=True, timeout=120)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    again = subprocess.run(cmd + ["-n"], capture_output=True, text=True, timeout=120)
    return {
        "results": tmp / "results",
        "cfg": cfg,
        "rerun": again.stdout + again.stderr,
        "only_fig2": only.stdout + only.stderr,
    }


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised GPT-2 with the toy character tokenizer, saved in HF format."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from siaflow.inputs.toy_models import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=96,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():  # make EOS likely enough that some rows stop early
        model.lm_head.weight[tok.eos_token_id] *= 0
        model.transformer.wte.weight[tok.eos_token_id] += 0.0
    out = tmp_path_factory.mktemp("tiny_gpt2")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def profiles_env(tmp_path_factory) -> dict:
    """The environment of a user who ran the README's `make profiles` (siaflow.profiles), with
    their own profile folder in a temporary directory: `snakemake --profile slurm` and `--profile
    local` then work as written from the checkout's root."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("xdg"))}
    res = subprocess.run([sys.executable, "-m", "siaflow.profiles"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return env


@pytest.fixture(scope="session")
def smollm2_server(tmp_path_factory):
    """One vLLM server with SmolLM2 for the served-model tests (tests/test_served.py and the
    workflow through it), started once and stopped by its process id at the end."""
    from vllm_support import Server, require_vllm

    require_vllm()
    server = Server(tmp_path_factory.mktemp("server"), api_key="siaflow-test-key").start()
    yield server
    server.stop()


# `--profile slurm` without slurmdbd: poll with squeue, submit without an account
SLURM_FLAGS = [
    "--slurm-status-command",
    "squeue",
    "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks",
    "5",
    "--slurm-keep-successful-logs",
]


def slurm_snakemake(configfile, log_dir) -> list[str]:
    """`snakemake --profile slurm` as the README writes it (run it with `profiles_env`), on the
    localhost cluster: this checkout, the config, SLURM's logs in ``log_dir``."""
    cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm", "--configfile", str(configfile)]
    return cmd + ["--directory", str(ROOT), *SLURM_FLAGS, "--slurm-logdir", str(log_dir)]


def require_slurm() -> None:
    """Skip unless a SLURM node takes jobs, except under SIAFLOW_REQUIRE_SLURM=1 (CI), where a
    missing cluster fails (`.ci/slurm-localhost.sh` brings one up on localhost)."""
    why = None
    if shutil.which("sinfo") is None:
        why = "sinfo not found (install slurm-wlm)"
    else:
        res = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            why = f"sinfo failed: {res.stderr.strip()}"
        elif not re.search(r"^(idle|mix|alloc)", res.stdout, flags=re.M):
            why = f"no SLURM node is up: {res.stdout.strip()!r}"
    if why:
        if os.environ.get("SIAFLOW_REQUIRE_SLURM") == "1":
            pytest.fail(f"SIAFLOW_REQUIRE_SLURM=1 but {why}; run .ci/slurm-localhost.sh first")
        pytest.skip(why)
