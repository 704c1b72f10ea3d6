"""Resumable work: a long job writes its results in parts beside its output and, when killed
(preemption, time limit) and started again, skips the parts already written.

Parts live in ``<output>.parts/`` (not a declared output, so Snakemake does not delete it when a
job fails). Each part is written atomically; ``manifest.json`` records what the parts are parts of
(the work items and chunk size). A different manifest means different work, and the old parts are
discarded. Because every sample has its own random stream, a resumed job produces exactly what an
uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from siaflow import io


def parts_dir(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".parts")


def run_in_parts(
    items: Sequence,
    work: Callable[[Sequence], tuple[pl.DataFrame, dict]],
    *,
    output: str | Path,
    chunk: int,
    identity: dict,
    log=print,
) -> tuple[pl.DataFrame, dict]:
    """Apply ``work`` to consecutive chunks of ``items``, saving each chunk's table (and its token
    counts) as a part; return all parts concatenated in order and the summed counts."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    d = parts_dir(output)
    manifest = {
        "identity": identity,
        "chunk": chunk,
        "n_items": len(items),
        "items_sha256": hashlib.sha256(repr(list(items)).encode()).hexdigest(),
    }
    mpath = d / "manifest.json"
    if d.exists() and (
        not mpath.exists() or json.loads(mpath.read_text()) != json.loads(json.dumps(manifest, default=str))
    ):
        log(f"resume: discarding parts in {d} made for different work")
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    if not mpath.exists():
        io.write_json(manifest, mpath)
    n_parts = -(-len(items) // chunk)
    frames, counts = [], {}
    for p in range(n_parts):
        path = d / f"part-{p:05d}.parquet"
        saved = _read_part(path, f"{p + 1}/{n_parts}", log) if path.exists() else None
        if saved is not None:
            df, c = saved
            log(f"resume: part {p + 1}/{n_parts} already written")
        else:
            df, c = work(items[p * chunk : (p + 1) * chunk])
            io.write_parquet(df, path, {"counts": c})
            log(f"part {p + 1}/{n_parts} written")
        frames.append(df)
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
    out = pl.concat(frames) if frames else pl.DataFrame()
    return out, counts


def _read_part(path: Path, which: str, log) -> tuple[pl.DataFrame, dict] | None:
    """A saved part and its counts, or None (and a log line) when it cannot be read: a file cut
    short or corrupted (a node crash, a full disk) is redone, not an error on every retry."""
    try:
        return pl.read_parquet(path), io.read_provenance(path).get("counts", {})
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        log(f"resume: part {which} in {path} cannot be read ({type(err).__name__}: {str(err)[:200]}); redoing it")
        path.unlink(missing_ok=True)
        return None


def clear_parts(output: str | Path) -> None:
    """Remove the parts once the complete output is written."""
    shutil.rmtree(parts_dir(output), ignore_errors=True)
