"""Rules of ``workflow/rules/data.smk``: datasets fetched and normalised."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from siaflow import io
from siaflow.stages.common import stage


@stage
def download_dataset(sm) -> None:
    """Fetch a hub dataset's parquet files and keep them, with where they came from."""
    from siaflow.inputs.datasets import fetch_hub_files

    files, source = fetch_hub_files(sm.params.spec)
    out = Path(sm.output[0])
    out.mkdir(parents=True, exist_ok=True)
    for f, rel in zip(files, source["files"]):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, out / rel)
    io.write_json(source, out / "source.json")
    print(f"downloaded {source}")


@stage
def prepare_dataset(sm) -> None:
    from siaflow.inputs.datasets import load_dataset, local_files

    name, spec = sm.wildcards.dataset, sm.params.spec
    raw_files, source = None, None
    if spec["source"] == "hub":
        raw = Path(sm.input.raw[0])
        source = json.loads((raw / "source.json").read_text())
        raw_files = [raw / f for f in source["files"]]
    elif spec["source"] == "local":
        raw_files, source = local_files(spec)
    df = load_dataset(name, spec, raw_files)
    io.write_parquet(df, sm.output[0], io.provenance(step="prepare_dataset", dataset=name, spec=spec, source=source))
    print(f"prepared {df.height} questions of {name}")
