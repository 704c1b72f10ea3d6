"""SIA through training: checkpoints that reproduce from their seed, the sft+rl run, the config that
makes every saved step a model, and fig_training_dynamics built by name on a tiny run."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from siaflow.config import ConfigError, check_dynamics, checkpoint_models

TINY_TRAINING = {"n_layer": 1, "n_embd": 16, "n_head": 2, "steps": 6, "batch_size": 8, "lr": 0.003}


def _weights(path: Path) -> bytes:
    return (path / "model.safetensors").read_bytes()


def test_checkpoints_reproduce_from_their_seed_and_end_at_the_trained_model(tmp_path):
    from siaflow.inputs.toy_models import ToyTrainConfig, train_toy_checkpoints, train_toy_model

    cfg = ToyTrainConfig(regime="informative", warmup=2, threads=1, **TINY_TRAINING)
    quiet = dict(log=lambda *a: None)
    train_toy_checkpoints(cfg, tmp_path / "a", [0, 3, 6], **quiet)
    train_toy_checkpoints(cfg, tmp_path / "b", [0, 3, 6], **quiet)
    train_toy_model(cfg, tmp_path / "plain", **quiet)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["step-00000", "step-00003", "step-00006"]
    for name in names:
        assert _weights(tmp_path / "a" / name) == _weights(tmp_path / "b" / name), name
    # saving on the way changes nothing: the last step is the model a plain run saves
    assert _weights(tmp_path / "a/step-00006") == _weights(tmp_path / "plain")
    assert _weights(tmp_path / "a/step-00000") != _weights(tmp_path / "a/step-00003")
    other = ToyTrainConfig(regime="informative", warmup=2, threads=1, seed=1, **TINY_TRAINING)
    train_toy_checkpoints(other, tmp_path / "c", [6], **quiet)
    assert _weights(tmp_path / "c/step-00006") != _weights(tmp_path / "a/step-00006")
    with pytest.raises(ValueError, match=r"\[7\]"):
        train_toy_checkpoints(cfg, tmp_path / "d", [7], **quiet)


def test_rejection_sampling_trains_on_correct_traces_only_and_reproduces():
    """From the committed informative model: the reward is the fraction of right answers, a step
    with no right answer leaves the weights alone, and two runs give the same weights."""
    import tempfile

    from siaflow.inputs.toy_models import ToyRLConfig, rejection_sampling_finetune

    init = Path(__file__).resolve().parents[1] / "resources/toy_models/informative"
    cfg = ToyRLConfig(steps=3, batch_size=16, threads=1)
    with tempfile.TemporaryDirectory() as d:
        a = rejection_sampling_finetune(init, cfg, Path(d) / "a", [0, 3], log=lambda *x: None)
        b = rejection_sampling_finetune(init, cfg, Path(d) / "b", [3], log=lambda *x: None)
        assert a["reward"] == b["reward"] and len(a["reward"]) == 3
        assert all(0.5 < r <= 1 for r in a["reward"])  # the informative model is mostly right
        assert _weights(Path(d) / "a/step-00003") == _weights(Path(d) / "b/step-00003")
        assert _weights(Path(d) / "a/step-00000") == _weights(init)
        assert _weights(Path(d) / "a/step-00003") != _weights(init)
        # a model that is never right (temperature so high the answer is noise) is never updated
        hot = ToyRLConfig(steps=2, batch_size=4, threads=1, temperature=50.0, max_new_tokens=8)
        c = rejection_sampling_finetune(init, hot, Path(d) / "c", [2], log=lambda *x: None)
        assert c["reward"] == [0.0, 0.0] and _weights(Path(d) / "c/step-00002") == _weights(init)


def _config(**dyn):
    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "config/config.yaml").read_text())
    cfg["training_dynamics"].update(dyn)
    return cfg


def test_every_saved_step_is_a_model_outside_the_grid():
    cfg = _config()
    ckpt = checkpoint_models(cfg)
    assert "toy-sft.step-0" in ckpt and "toy-base.step-2000" in ckpt and "toy-sft+rl.step-600" in ckpt
    assert len(ckpt) == 2 * 6 + 3
    assert ckpt["toy-sft.step-250"]["path"] == "resources/toy_models/checkpoints/informative/step-00250"
    assert ckpt["toy-sft+rl.step-300"]["path"] == "resources/toy_models/checkpoints/informative+rl/step-00300"
    # an sft+rl step counts on from the sft run's last step
    assert ckpt["toy-sft+rl.step-100"]["checkpoint"]["training_step"] == 2100
    assert ckpt["toy-sft+rl.step-100"]["regime"] == "sft+rl" and ckpt["toy-base.step-0"]["regime"] == "base"
    assert not set(ckpt) & set(cfg["models"])


@pytest.mark.parametrize(
    "change,message",
    [
        ({"dataset": "gsm8k"}, "training_dynamics.dataset"),
        ({"runs": ["toy-nope"]}, "training_dynamics.runs"),
        ({"steps": [0, 5000]}, r"\[5000\] exceed toy_training.steps"),
        ({"rl": {"from": "toy-base2", "steps": [10]}}, "training_dynamics.rl.from"),
    ],
)
def test_bad_training_dynamics_names_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        check_dynamics(_config(**change))


@pytest.mark.slow
def test_fig_training_dynamics_builds_by_name_and_matches_its_entropy_tables(tmp_path):
    """A tiny replay (6-step runs, a 2-step sft+rl run, 3 questions): the named target builds and
    every number of its table is recomputed from the checkpoints' entropy tables."""
    from conftest import ROOT, tiny_config

    cfg, _ = tiny_config(tmp_path)
    cfg["datasets"]["toy-arith"]["n_questions"] = 3
    cfg["decoding"]["max_new_tokens"] = 24
    cfg["toy_training"] = TINY_TRAINING
    cfg["training_dynamics"] = {
        "runs": ["toy-base", "toy-sft"],
        "steps": [0, 6],
        "dataset": "toy-arith",
        "rl": {"from": "toy-sft", "steps": [2], "batch_size": 8},
    }
    path = tmp_path / "dyn.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # run from a directory of its own, so the checkpoints are trained there and not into the checkout
    work = tmp_path / "work"
    (work / "resources/toy_models").mkdir(parents=True)
    for name in ("informative", "noninformative"):
        (work / "resources/toy_models" / name).symlink_to(ROOT / "resources/toy_models" / name)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        "fig_training_dynamics",
        "--configfile",
        str(path),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(work),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "rule all" not in out and "table1_alignment" not in out
    assert "shuffled" not in out  # a checkpoint needs the original variant only
    again = subprocess.run(cmd + ["-n"], capture_output=True, text=True, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-3000:]
    assert (work / "resources/toy_models/checkpoints/informative+rl/step-00002/model.safetensors").exists()
    results = Path(cfg["results"])
    data = pl.read_csv(results / "figures/fig_training_dynamics.data.csv")
    assert sorted(set(data["model"])) == [
        "toy-base.step-0",
        "toy-base.step-6",
        "toy-sft+rl.step-2",
        "toy-sft.step-0",
        "toy-sft.step-6",
    ]
    assert data.filter(pl.col("model") == "toy-sft+rl.step-2")["step"].unique().to_list() == [8]
    for model in set(data["model"]):
        ent = pl.read_parquet(results / f"entropy/{model}/toy-arith/stride-8/original.parquet")
        got = {r["metric"]: r for r in data.filter(pl.col("model") == model).iter_rows(named=True)}
        traj = ent.group_by("question_id", "trajectory").agg(pl.col("correct").first())
        assert got["accuracy"]["value"] == pytest.approx(traj["correct"].mean())
        assert got["accuracy"]["lo"] <= got["accuracy"]["value"] <= got["accuracy"]["hi"]
        h0 = ent.filter(pl.col("k") == 0).group_by("question_id").agg(pl.col("H").mean())["H"]
        assert got["H_0"]["value"] == pytest.approx(h0.mean()) and got["H_0"]["n"] == 3
        assert np.isnan(got["mean_rho"]["value"]) == (got["mean_rho"]["n"] == 0)
    table = pl.read_csv(results / "tables/table_training_dynamics.csv")
    assert table.height == 5 and {"accuracy", "mean_rho_split", "early_auc", "H_0"} <= set(table.columns)


def _entropy(n_correct: int, n_wrong: int) -> pl.DataFrame:
    """One trajectory per question, checkpoints k = 0, 5, 10 (T = 10): right traces lose their
    entropy by k = 5, wrong ones keep it; the gold surprisal follows H (rho = 1) on right ones."""
    rows = []
    for q in range(n_correct + n_wrong):
        right = q < n_correct
        for k, h in zip((0, 5, 10), (1.0, 0.2, 0.0) if right else (1.0, 0.9, 0.0)):
            s = h if right else 2 - h
            rows.append(
                {
                    "model": "m",
                    "dataset": "d",
                    "question_id": f"q{q}",
                    "trajectory": 0,
                    "k": k,
                    "T": 10,
                    "rel_pos": k / 10,
                    "H": h,
                    "S": s,
                    "c_gold": 1,  # the gold drawn at every checkpoint: rho is defined
                    "H_a": h,
                    "S_b": s,
                    "c_gold_b": 1,
                    "before_answer": k < 10,
                    "correct": right,
                }
            )
    return pl.DataFrame(rows)


def test_checkpoint_summary_by_hand():
    from siaflow.analysis.dynamics import checkpoint_summary

    got = {
        r["metric"]: r
        for r in checkpoint_summary(_entropy(6, 5), h="H", early_position=0.5, n_boot=100, ci=0.95, seed=0)
    }
    assert got["accuracy"]["value"] == pytest.approx(6 / 11) and got["accuracy"]["n"] == 11
    assert got["mean_rho_correct"]["value"] == pytest.approx(1.0)
    assert got["mean_rho_incorrect"]["value"] == pytest.approx(-1.0)
    assert got["mean_rho"]["value"] == pytest.approx((6 - 5) / 11)
    # at k/T = 0.5, -H is -0.2 for every right trace and -0.9 for every wrong one: AUC 1
    assert got["early_auc"]["value"] == pytest.approx(1.0) and got["early_auc"]["n"] == 5
    assert got["H_0"]["value"] == pytest.approx(1.0) and got["H_0"]["n"] == 11
    # fewer than 5 trajectories in a class: no AUC
    few = {
        r["metric"]: r
        for r in checkpoint_summary(_entropy(4, 7), h="H", early_position=0.5, n_boot=50, ci=0.95, seed=0)
    }
    assert np.isnan(few["early_auc"]["value"]) and few["early_auc"]["n"] == 4
