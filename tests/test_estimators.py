"""SIA estimators against hand-computed values, degenerate cases, and scalar-vs-polars agreement."""

import math
import random

import numpy as np
import polars as pl
import pytest

from siaflow.analysis.estimators import (
    alignment_by_trajectory,
    alignment_coefficient,
    conditional_answer_entropy,
    entropy_table,
    gold_surprisal,
    split_sample,
)
from siaflow.answers import NULL
from siaflow.keys import checkpoint_positions


def test_entropy_hand_computed():
    assert conditional_answer_entropy(["7", "7", "7", "7"]) == 0.0
    assert conditional_answer_entropy(["7", "8"]) == pytest.approx(math.log(2))
    # p = (1/2, 1/4, 1/4): H = 1.5 log 2
    assert conditional_answer_entropy({"a": 2, "b": 1, "c": 1}) == pytest.approx(1.5 * math.log(2))


def test_null_is_an_answer_category():
    # two NULLs and two "5": a 50/50 distribution, not a point mass on "5"
    assert conditional_answer_entropy([NULL, NULL, "5", "5"]) == pytest.approx(math.log(2))
    s, p = gold_surprisal([NULL, NULL, "5", "5"], "5", alpha=0.5)
    assert p == 0.5
    assert s == pytest.approx(-math.log((2 + 0.5) / (4 + 0.5 * 2)))


def test_miller_madow():
    # m = 3 distinct answers, K = 4: + (3 - 1) / (2 * 4) = 0.25
    h = conditional_answer_entropy({"a": 2, "b": 1, "c": 1}, miller_madow=True)
    assert h == pytest.approx(1.5 * math.log(2) + 0.25)
    assert conditional_answer_entropy({"a": 5}, miller_madow=True) == 0.0


def test_smoothed_surprisal_seen_and_unseen_gold():
    # seen: c(gold)=3 of K=4, support {a, b} -> (3 + .5) / (4 + .5 * 2) = 0.7
    s, p = gold_surprisal({"a": 3, "b": 1}, "a", alpha=0.5)
    assert (s, p) == (pytest.approx(-math.log(0.7)), 0.75)
    # unseen gold: support {a, b} ∪ {gold} has 3 values -> 0.5 / (4 + 1.5) = 1/11, finite
    s, p = gold_surprisal({"a": 3, "b": 1}, "c", alpha=0.5)
    assert p == 0.0
    assert s == pytest.approx(math.log(11))
    with pytest.raises(ValueError, match="alpha"):
        gold_surprisal({"a": 1}, "a", alpha=0)


def test_split_sample_uses_disjoint_halves():
    answers = ["1", "1", "1", "1", "2", "2", "1", "3"]
    h_a, s_b = split_sample(answers, "1", alpha=0.5)
    assert h_a == 0.0  # the first half is all "1"
    # second half: {2: 2, 1: 1, 3: 1}, gold seen once -> (1 + .5) / (4 + .5 * 3)
    assert s_b == pytest.approx(-math.log(1.5 / 5.5))


def test_alignment_hand_computed():
    h, s = [1.0, 2.0, 3.0], [2.0, 4.0, 7.0]
    # mean-centred: h = (-1, 0, 1), s = (-2.333.., -0.333.., 2.666..)
    hc, sc = np.array([-1.0, 0.0, 1.0]), np.array([2, 4, 7]) - 13 / 3
    expect = (hc @ sc) / math.sqrt((hc @ hc) * (sc @ sc))
    rho, reason = alignment_coefficient(h, s)
    assert reason == "ok" and rho == pytest.approx(expect) and rho == pytest.approx(0.9933992677987828)
    assert alignment_coefficient([3, 2, 1], [1, 2, 3]) == (pytest.approx(-1.0), "ok")


@pytest.mark.parametrize(
    "h,s,reason",
    [
        ([0.5, 0.2], [1.0, 0.1], "too_few_checkpoints"),
        ([0.0, 0.0, 0.0, 0.0], [1.0, 0.5, 0.2, 0.0], "constant_H"),
        ([1.0, 0.5, 0.0], [0.3, 0.3, 0.3], "constant_S"),
    ],
)
def test_alignment_undefined_is_nan_with_reason(h, s, reason):
    rho, why = alignment_coefficient(h, s)
    assert math.isnan(rho) and why == reason


def test_checkpoint_positions():
    assert checkpoint_positions(10, 4) == [0, 4, 8, 10]
    assert checkpoint_positions(8, 4) == [0, 4, 8]
    assert checkpoint_positions(0, 4) == [0]
    with pytest.raises(ValueError):
        checkpoint_positions(5, 0)


def _random_world(seed=0, n_q=5, n_traj=3, K=8, stride=3):
    rng = random.Random(seed)
    samples, trajs = [], []
    for qi in range(n_q):
        q, gold = f"q{qi}", str(rng.randint(0, 3))
        for j in range(n_traj):
            T = rng.randint(0, 10)
            trajs.append({"question_id": q, "trajectory": j, "T": T, "correct": rng.random() < 0.5, "gold": gold})
            for k in checkpoint_positions(T, stride):
                if k == 0:
                    continue
                for smp in range(K):
                    samples.append(
                        {
                            "question_id": q,
                            "trajectory": j,
                            "k": k,
                            "sample": smp,
                            "answer": rng.choice(["0", "1", "2", "3", NULL]),
                        }
                    )
        for smp in range(K):  # the shared empty prefix, once per question
            samples.append(
                {"question_id": q, "trajectory": -1, "k": 0, "sample": smp, "answer": rng.choice(["0", "1", NULL])}
            )
    return pl.DataFrame(samples), pl.DataFrame(trajs)


def test_entropy_table_matches_scalar_definitions():
    samples, trajs = _random_world()
    table = entropy_table(samples.lazy(), trajs.lazy(), alpha=0.5).collect()
    # every trajectory has exactly its checkpoints, k = 0 included (shared)
    for t in trajs.iter_rows(named=True):
        ks = table.filter((pl.col("question_id") == t["question_id"]) & (pl.col("trajectory") == t["trajectory"]))["k"]
        assert ks.to_list() == checkpoint_positions(t["T"], 3)
    for row in table.iter_rows(named=True):
        src_traj = -1 if row["k"] == 0 else row["trajectory"]
        draws = (
            samples.filter(
                (pl.col("question_id") == row["question_id"])
                & (pl.col("trajectory") == src_traj)
                & (pl.col("k") == row["k"])
            )
            .sort("sample")["answer"]
            .to_list()
        )
        gold = trajs.filter(pl.col("question_id") == row["question_id"])["gold"][0]
        assert row["K"] == len(draws) == 8
        assert row["H"] == pytest.approx(conditional_answer_entropy(draws), abs=1e-12)
        assert row["H_mm"] == pytest.approx(conditional_answer_entropy(draws, miller_madow=True), abs=1e-12)
        s, p = gold_surprisal(draws, gold, alpha=0.5)
        assert row["S"] == pytest.approx(s) and row["p_gold"] == pytest.approx(p)
        h_a, s_b = split_sample(draws, gold, alpha=0.5)
        assert row["H_a"] == pytest.approx(h_a, abs=1e-12) and row["S_b"] == pytest.approx(s_b)
        assert row["rel_pos"] == (row["k"] / row["T"] if row["T"] else 1.0)


def test_alignment_by_trajectory_matches_scalar():
    samples, trajs = _random_world(seed=3, n_q=8)
    table = (
        entropy_table(samples.lazy(), trajs.lazy(), alpha=0.5)
        .with_columns(model=pl.lit("m"), dataset=pl.lit("d"))
        .collect()
    )
    got = alignment_by_trajectory(table.lazy()).collect()
    assert got.height == trajs.height
    for row in got.iter_rows(named=True):
        part = table.filter(
            (pl.col("question_id") == row["question_id"]) & (pl.col("trajectory") == row["trajectory"])
        ).sort("k")
        rho, reason = alignment_coefficient(part["H"], part["S"])
        assert row["rho_reason"] == reason
        if reason == "ok":
            assert row["rho"] == pytest.approx(rho)
        else:
            assert math.isnan(row["rho"])
