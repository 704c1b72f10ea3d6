"""Thin I/O at the edges: atomic parquet/text writes with provenance, and provenance reading.

Every results table records how it was made (model, revision, prompt, decoding, seeds, K, stride,
package versions): inside parquet files as the key-value metadata entry ``siaflow``, next to CSV /
Markdown tables as ``<name>.provenance.json``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

import polars as pl

PROVENANCE_KEY = "siaflow"
_PACKAGES = ("siaflow", "torch", "transformers", "tokenizers", "polars", "numpy", "snakemake", "vllm")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if res.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return res.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(**fields) -> dict:
    """Provenance record: the caller's fields plus siaflow's version (the code that ran, pyproject's
    ``version``: docs/releases.md), software versions, git commit, host and time."""
    from siaflow import __version__

    return {
        **fields,
        "siaflow_version": __version__,
        "software": package_versions(),
        "siaflow_commit": git_commit(),
        "host": platform.node(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def _atomic_target(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_parquet(df: pl.DataFrame, path: str | Path, prov: dict | None = None) -> None:
    """Write ``df`` atomically (temp file + rename): a killed job never leaves a half-written file."""
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        df.write_parquet(tmp, metadata={PROVENANCE_KEY: json.dumps(prov or {}, default=str)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(text: str, path: str | Path) -> None:
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(obj, path: str | Path) -> None:
    write_text(json.dumps(obj, indent=2, default=str) + "\n", path)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Streamed SHA-256 of one file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_provenance(path: str | Path) -> dict:
    meta = pl.read_parquet_metadata(path)
    raw = meta.get(PROVENANCE_KEY)
    return json.loads(raw) if raw else {}
