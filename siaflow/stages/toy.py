"""Rules of ``workflow/rules/toy.smk``: the toy reasoning world's tiny models."""

from __future__ import annotations

from siaflow.stages.common import stage


@stage
def train_toy_model(sm) -> None:
    from siaflow.inputs.toy_models import ToyTrainConfig
    from siaflow.inputs.toy_models import train_toy_model as train

    toy = sm.params.toy
    cfg = ToyTrainConfig(regime=toy["regime"], seed=toy.get("seed", 0), threads=int(sm.threads), **sm.params.training)
    print(train(cfg, sm.output[0]))


@stage
def train_toy_checkpoints(sm) -> None:
    from siaflow.inputs.toy_models import ToyTrainConfig
    from siaflow.inputs.toy_models import train_toy_checkpoints as train

    toy = sm.params.toy
    cfg = ToyTrainConfig(regime=toy["regime"], seed=toy.get("seed", 0), threads=int(sm.threads), **sm.params.training)
    print(train(cfg, sm.output[0], sm.params.steps))


@stage
def train_toy_rl(sm) -> None:
    from siaflow.inputs.toy_models import ToyRLConfig, checkpoint_dir, rejection_sampling_finetune

    rl = dict(sm.params.rl)
    steps = rl.pop("steps")
    rl.pop("from", None)
    cfg = ToyRLConfig(steps=max(steps), threads=int(sm.threads), **rl)
    summary = rejection_sampling_finetune(checkpoint_dir(sm.input.run, sm.params.init_step), cfg, sm.output[0], steps)
    print(
        {k: v for k, v in summary.items() if k != "reward"},
        "mean reward per 50 steps:",
        [
            round(sum(summary["reward"][i : i + 50]) / len(summary["reward"][i : i + 50]), 3)
            for i in range(0, len(summary["reward"]), 50)
        ],
    )
