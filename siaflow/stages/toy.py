"""Rules of ``workflow/rules/toy.smk``: the toy reasoning world's tiny models."""

from __future__ import annotations

from siaflow.stages.common import stage


@stage
def train_toy_model(sm) -> None:
    from siaflow.toy_models import ToyTrainConfig
    from siaflow.toy_models import train_toy_model as train

    toy = sm.params.toy
    cfg = ToyTrainConfig(regime=toy["regime"], seed=toy.get("seed", 0), threads=int(sm.threads), **sm.params.training)
    print(train(cfg, sm.output[0]))
