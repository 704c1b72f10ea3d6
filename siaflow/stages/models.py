"""Rules of ``workflow/rules/models.smk``: real models built once on the submit host."""

from __future__ import annotations

from siaflow.stages.common import stage


@stage
def build_model(sm) -> None:
    import torch

    from siaflow.models import build_model as build

    torch.set_num_threads(max(1, int(sm.threads)))
    print(build(sm.params.spec, sm.output[0]))
