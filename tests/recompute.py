"""Independent recomputation of the workflow's numbers from its raw draws, shared by the end-to-end
tests of the toy world (test_end_to_end.py) and of a real model (test_real_model.py)."""

from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from siaflow.analysis.estimators import alignment_coefficient, conditional_answer_entropy, gold_surprisal
from siaflow.keys import checkpoint_positions


def draws_by_checkpoint(cont: pl.DataFrame) -> dict:
    """(question, trajectory, k) -> the extracted answers of its K draws, in sample order."""
    draws = defaultdict(list)
    for q, j, k, a in cont.sort("sample").select("question_id", "trajectory", "k", "answer").iter_rows():
        draws[(q, j, k)].append(a)
    return draws


def check_entropy_table(
    results: Path, cfg: dict, model: str, dataset: str, stride: int, variant: str = "original"
) -> None:
    """The entropy table of (model, dataset, stride, variant) equals H_k and S_k recomputed from the
    raw continuation draws, with one row per checkpoint of every trajectory and k = 0 drawn once
    per question."""
    K, alpha, n = cfg["sampling"]["n_continuations"], cfg["estimation"]["alpha"], cfg["sampling"]["n_trajectories"]
    roll = pl.read_parquet(results / f"rollouts/{model}/{dataset}/*.parquet").filter(pl.col("trajectory") < n)
    cont = pl.read_parquet(results / f"continuations/{model}/{dataset}/stride-{stride}/{variant}/*.parquet")
    ent = pl.read_parquet(results / f"entropy/{model}/{dataset}/stride-{stride}/{variant}.parquet")
    assert set(cont["trajectory"]) <= {-1, *range(n)}
    assert ent.height == sum(len(checkpoint_positions(t, stride)) for t in roll["T"])
    draws = draws_by_checkpoint(cont)
    assert all(len(v) == K for v in draws.values())
    assert sum(1 for (_, j, _) in draws if j == -1) == roll["question_id"].n_unique()  # k = 0 once per question
    for row in ent.iter_rows(named=True):
        d = draws[(row["question_id"], -1 if row["k"] == 0 else row["trajectory"], row["k"])]
        assert row["H"] == pytest.approx(conditional_answer_entropy(d), abs=1e-12)
        assert row["S"] == pytest.approx(gold_surprisal(d, row["gold"], alpha=alpha)[0])
    # correctness of a rollout is its own extracted answer against gold
    assert (roll["correct"] == (roll["answer"] == roll["gold"])).all()


def check_table1(results: Path, cfg: dict, datasets: list[str], stride: int) -> None:
    """Table 1's row of every model x dataset recomputed from its entropy table."""
    table = pl.read_csv(results / "tables/table1_alignment.csv")
    for model in cfg["models"]:
        for dataset in datasets:
            ent = pl.read_parquet(results / f"entropy/{model}/{dataset}/stride-{stride}/original.parquet").sort("k")
            rhos, splits, correct = [], [], []
            for _, part in ent.group_by("question_id", "trajectory"):
                rhos.append(alignment_coefficient(part["H"].to_list(), part["S"].to_list())[0])
                splits.append(alignment_coefficient(part["H_a"].to_list(), part["S_b"].to_list())[0])
                correct.append(part["correct"][0])
            rhos, splits, correct = np.array(rhos), np.array(splits), np.array(correct)
            ok = ~np.isnan(rhos)
            row = table.filter((pl.col("model") == model) & (pl.col("dataset") == dataset)).row(0, named=True)
            assert row["n_total"] == len(rhos)
            assert row["n_defined"] == ok.sum()
            assert row["accuracy"] == pytest.approx(correct.mean())
            if ok.sum():
                assert row["mean_rho"] == pytest.approx(rhos[ok].mean())
            if (ok & correct).sum():
                assert row["mean_rho_correct"] == pytest.approx(rhos[ok & correct].mean())
            if (ok & ~correct).sum():
                assert row["mean_rho_incorrect"] == pytest.approx(rhos[ok & ~correct].mean())
            split_ok = ~np.isnan(splits)
            assert row["n_split_defined"] == split_ok.sum()
            if split_ok.sum():
                assert row["mean_rho_split"] == pytest.approx(splits[split_ok].mean())
            assert row["regime"] == cfg["models"][model]["regime"]
