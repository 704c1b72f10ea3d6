"""Rules of ``workflow/rules/models.smk``: real models downloaded or built once, on the submit host."""

from __future__ import annotations

from siaflow.stages.common import stage


@stage
def build_model(sm) -> None:
    import torch

    from siaflow.inputs.models import build_model as build

    torch.set_num_threads(max(1, int(sm.threads)))
    print(build(sm.params.spec, sm.output[0]))


@stage
def download_model(sm) -> None:
    from siaflow.inputs.models import download_model as download

    record = download(sm.params.repo, sm.params.revision, sm.output[0])
    print(f"{record['repo']} at commit {record['commit']}: {len(record['files'])} files")
