"""What the tests on the real vLLM engine share: the engine's environment, the SmolLM2 model
directory, questions and prompts, and an independent reference for the statistics (a plain
teacher-forced forward pass written out with torch, not siaflow's sampling code)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import yaml

from siaflow.generation.backends.engine_settings import VLLMSettings

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2 = yaml.safe_load((ROOT / "config/smollm2.yaml").read_text())
# vLLM's CPU engine on a 2-core machine: both cores for the engine, a small KV cache
ENGINE_ENV = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
# float32 as the reference computes (vLLM's CPU build picks bfloat16 for "auto": logprobs then
# differ from a float32 pass by up to 0.25 nats; in float32 by 4e-5)
ENGINE = VLLMSettings(dtype="float32", enforce_eager=True, block_size=32, kv_cache_gib=1)


def require_vllm():
    """Skip without vLLM, except under SIAFLOW_REQUIRE_VLLM=1 (CI sets it): there it fails."""
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        if os.environ.get("SIAFLOW_REQUIRE_VLLM") == "1":
            pytest.fail(f"SIAFLOW_REQUIRE_VLLM=1 but vllm is not importable ({err}); run `make vllm-env` first")
        pytest.skip(f"vllm is not installed here ({err}); `make vllm-env` builds .venv-vllm")


def smollm2_dir() -> str:
    """SmolLM2-135M-Instruct as rule build_model makes it (built from its wheel when missing)."""
    from siaflow.inputs.models import build_model

    spec = SMOLLM2["models"]["smollm2-chat"]
    path = ROOT / spec["path"]
    if not (path / "config.json").exists():
        build_model(spec, path)
    return str(path)


def smollm2_engine():
    """The in-process vLLM engine the tests and the bench use: SmolLM2 with ENGINE's settings, in
    ENGINE_ENV's environment (where the caller has not set those variables itself)."""
    from siaflow.generation.backends import EngineSettings, open_backend

    for k, v in ENGINE_ENV.items():
        os.environ.setdefault(k, v)
    return open_backend(EngineSettings("vllm", smollm2_dir(), ENGINE))


def questions(dataset: str, n: int):
    from siaflow.inputs.datasets import load_dataset, local_files

    spec = {**SMOLLM2["datasets"][dataset], "path": str(ROOT / SMOLLM2["datasets"][dataset]["path"])}
    files, _ = local_files(spec)
    return load_dataset(dataset, spec, files).head(n), spec


def prompt(name: str):
    return SMOLLM2["prompts"][name]


def smollm2_rollouts(backend, decoding, *, dataset="gsm8k", template="chat_math", n_q=4, n=3, seed=0):
    """``n`` rollouts of each of the first ``n_q`` questions of ``dataset`` under one of
    config/smollm2.yaml's prompts, ended as the workflow ends them; and the response rules."""
    from dataclasses import replace

    from siaflow.answers import response_rules
    from siaflow.generation.rollouts import run_rollouts
    from siaflow.generation.settings import DrawSettings
    from siaflow.inputs.datasets import build_prompts

    qs, spec = questions(dataset, n_q)
    tmpl = prompt(template)
    texts, ids = build_prompts(backend, tmpl, qs)
    rules = response_rules(spec, tmpl, stop_at_answer=True, example_prompt=texts[0])
    without_start = replace(rules, answer_start=None)  # as these rollouts were first made
    df = run_rollouts(backend, qs, texts, draw=DrawSettings(decoding, seed, n), rules=without_start, prompt_ids=ids)
    return df, rules


def reference_stats(model, prompt_ids: list[int], tokens: list[int], temperature: float, top_p: float, k: int = 20):
    """Per generated token: of the distribution it was drawn from (logits / temperature, kept to
    the smallest set of most probable tokens with mass >= top_p and renormalised) the token's
    log-probability and the entropy; of the raw logits (temperature 1) the self-certainty
    (Self-Certainty's ``confidence_logits``) and DeepConf's confidence (the top ``k`` raw
    log-probabilities and the token's own when outside them, as vLLM returns them by default);
    the entropy of the whole temperature-scaled distribution. One unpadded forward pass; the
    nucleus by sorting, as vLLM's top-p does."""
    import torch

    with torch.inference_mode():
        ids = torch.tensor([list(prompt_ids) + list(tokens)])
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : len(prompt_ids) + len(tokens) - 1].double()
    logp = torch.log_softmax(logits / temperature, dim=-1)
    raw = torch.log_softmax(logits, dim=-1)
    out = []
    for t, tok in enumerate(tokens):
        p, order = logp[t].exp().sort(descending=True)
        n_keep = int(((p.cumsum(0) - p) < top_p).sum()) if top_p < 1 else len(p)
        kept = p[:n_keep] / p[:n_keep].sum()
        rank = int((order == tok).nonzero()[0, 0])
        lp = math.log(kept[rank]) if rank < n_keep else -math.inf
        entropy = float(-(kept * kept.clamp_min(1e-300).log()).sum())
        certainty = -math.log(len(p)) - float(raw[t].mean())
        full = float(-(p * p.clamp_min(1e-300).log()).sum())
        entries = set(raw[t].topk(k).indices.tolist()) | {tok}
        confidence = -float(raw[t][sorted(entries)].mean())
        out.append((lp, entropy, certainty, full, confidence))
    return out


def quantile(values, q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1)))] if v else 0.0


class Server:
    """vLLM's OpenAI-compatible server on localhost with SmolLM2, as a user starts it (`python -m
    vllm.entrypoints.openai.api_server`: the `vllm` console script fails with the vllm-cpu
    distribution). Started and stopped by the test that owns it, by its process id."""

    def __init__(self, log_dir: Path, *, logprobs_mode: str = "processed_logprobs", api_key: str | None = None):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir, self.logprobs_mode, self.api_key = Path(log_dir), logprobs_mode, api_key
        self.proc, self.starts = None, 0

    def start(self, timeout: float = 600) -> Server:
        import subprocess
        import sys
        import time
        import urllib.request

        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", smollm2_dir()]
        cmd += ["--served-model-name", "smollm2", "--logprobs-mode", self.logprobs_mode, "--max-logprobs", "50"]
        cmd += ["--enforce-eager", "--block-size", "32", "--dtype", "float32", "--enable-prompt-tokens-details"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)] + (["--api-key", self.api_key] if self.api_key else [])
        self.starts += 1
        log = self.log_dir / f"server-{self.port}-{self.starts}.log"
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **ENGINE_ENV}, start_new_session=True
            )
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the vLLM server exited ({self.proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(urllib.request.Request(self.url + "/v1/models", headers=headers), timeout=5)
                return self
            except OSError:
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"the vLLM server did not answer within {timeout} s:\n{log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the server and its engine process, as a node failure would."""
        import signal

        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
