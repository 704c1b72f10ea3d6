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
    assert s == pytest.approx(-math.log((2 + 0.5) / (4 + 2 * 0.5)))


def test_miller_madow():
    # m = 3 distinct answers, K = 4: + (3 - 1) / (2 * 4) = 0.25
    h = conditional_answer_entropy({"a": 2, "b": 1, "c": 1}, miller_madow=True)
    assert h == pytest.approx(1.5 * math.log(2) + 0.25)
    assert conditional_answer_entropy({"a": 5}, miller_madow=True) == 0.0


def test_smoothed_surprisal_seen_and_unseen_gold():
    # gold vs rest: c(gold)=3 of K=4 -> (3 + .5) / (4 + 2 * .5) = 0.7
    s, p = gold_surprisal({"a": 3, "b": 1}, "a", alpha=0.5)
    assert (s, p) == (pytest.approx(-math.log(0.7)), 0.75)
    # unseen gold: 0.5 / (4 + 1) = 1/10, finite
    s, p = gold_surprisal({"a": 3, "b": 1}, "c", alpha=0.5)
    assert p == 0.0
    assert s == pytest.approx(math.log(10))
    with pytest.raises(ValueError, match="alpha"):
        gold_surprisal({"a": 1}, "a", alpha=0)
    with pytest.raises(ValueError, match="alpha"):
        gold_surprisal({"a": 1}, "a", alpha=-0.5)


def test_surprisal_does_not_depend_on_how_the_rest_is_split():
    """The old support-size smoothing made an unseen gold's S_k follow the number of distinct
    answers (and so H_k): K = 16 draws spread over 1, 2, 4 or 8 wrong answers all give one S."""
    K, alpha = 16, 0.5
    spreads = [{"w0": 16}, {"w0": 8, "w1": 8}, {f"w{i}": 4 for i in range(4)}, {f"w{i}": 2 for i in range(8)}]
    values = [gold_surprisal(c, "gold", alpha=alpha)[0] for c in spreads]
    assert values == [pytest.approx(math.log((K + 2 * alpha) / alpha))] * len(spreads)
    # with the gold seen, only its own count matters as well
    assert (
        gold_surprisal({"gold": 4, "w0": 12}, "gold")[0]
        == gold_surprisal({"gold": 4, **{f"w{i}": 1 for i in range(12)}}, "gold")[0]
    )


def test_a_trace_committing_to_a_wrong_answer_is_not_aligned():
    """The issue's trace: K = 16, the draws converge on one wrong answer, the gold never drawn.
    The support-size smoothing gave rho = +0.995; now S_k is constant and rho undefined, with its
    own reason."""
    spreads = [[4, 4, 3, 3, 2], [5, 4, 4, 3], [10, 4, 2], [15, 1], [16]]
    counts = [{f"w{i}": c for i, c in enumerate(sp)} for sp in spreads]
    h = [conditional_answer_entropy(c) for c in counts]
    s = [gold_surprisal(c, "gold")[0] for c in counts]
    assert h[0] > h[2] > h[-1] == 0.0
    assert alignment_coefficient(h, s, [0] * 5) == (pytest.approx(math.nan, nan_ok=True), "gold_unseen")
    assert alignment_coefficient(h, s)[1] == "constant_S"  # without the gold counts: S is flat
    # the old smoothing, written out: log(K / alpha + m + 1) tracks m, hence H
    old = [math.log(16 / 0.5 + len(c) + 1) for c in counts]
    assert alignment_coefficient(h, old)[0] > 0.95


def test_entropy_resolution():
    from siaflow.analysis.estimators import entropy_resolution

    assert entropy_resolution(16) == pytest.approx(conditional_answer_entropy({"a": 15, "b": 1}))
    assert entropy_resolution(16) == pytest.approx(0.2338, abs=1e-4)
    assert entropy_resolution(4, miller_madow=True) == pytest.approx(
        conditional_answer_entropy({"a": 3, "b": 1}) + 1 / 8
    )
    with pytest.raises(ValueError, match="K >= 2"):
        entropy_resolution(1)


def test_split_sample_uses_disjoint_halves():
    answers = ["1", "1", "1", "1", "2", "2", "1", "3"]
    h_a, s_b = split_sample(answers, "1", alpha=0.5)
    assert h_a == 0.0  # the first half is all "1"
    # second half: {2: 2, 1: 1, 3: 1}, gold seen once -> (1 + .5) / (4 + 2 * .5)
    assert s_b == pytest.approx(-math.log(1.5 / 5))


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


def test_gold_unseen_comes_before_constant_series():
    assert alignment_coefficient([1.0, 0.5, 0.0], [2.0, 1.0, 0.5], [0, 0, 0])[1] == "gold_unseen"
    assert alignment_coefficient([0.0, 0.0, 0.0], [3.0, 3.0, 3.0], [0, 0, 0])[1] == "gold_unseen"
    assert alignment_coefficient([0.5, 0.2], [1.0, 0.1], [0, 0])[1] == "too_few_checkpoints"
    assert alignment_coefficient([1.0, 0.5, 0.0], [2.0, 1.0, 0.5], [0, 1, 0])[1] == "ok"


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
        q, gold = f"q{qi}", rng.choice(["0", "1", "2", "3", "9"])  # "9" is never drawn
        for j in range(n_traj):
            T = rng.randint(0, 10)
            start = rng.choice([None, rng.randint(0, T)])  # where the answer begins (None: no answer)
            trajs.append(
                {"question_id": q, "trajectory": j, "T": T, "correct": rng.random() < 0.5, "gold": gold}
                | {"answer_start": start}
            )
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
    return pl.DataFrame(samples), pl.DataFrame(trajs, schema_overrides={"answer_start": pl.Int64})


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
        start = trajs.filter(
            (pl.col("question_id") == row["question_id"]) & (pl.col("trajectory") == row["trajectory"])
        )["answer_start"][0]
        assert row["before_answer"] == (row["k"] < row["T"] and (start is None or row["k"] <= start))


def test_alignment_by_trajectory_matches_scalar():
    samples, trajs = _random_world(seed=3, n_q=8)
    table = (
        entropy_table(samples.lazy(), trajs.lazy(), alpha=0.5)
        .with_columns(model=pl.lit("m"), dataset=pl.lit("d"))
        .collect()
    )
    got = alignment_by_trajectory(table.lazy()).collect()
    pre = alignment_by_trajectory(table.lazy(), name="rho_pre", where=pl.col("before_answer")).collect()
    assert got.height == pre.height == trajs.height
    reasons = set()
    for row, row_pre in zip(got.iter_rows(named=True), pre.iter_rows(named=True)):
        part = table.filter(
            (pl.col("question_id") == row["question_id"]) & (pl.col("trajectory") == row["trajectory"])
        ).sort("k")
        for r, name, p in ((row, "rho", part), (row_pre, "rho_pre", part.filter(pl.col("before_answer")))):
            rho, reason = alignment_coefficient(p["H"], p["S"], p["c_gold"])
            assert r[f"{name}_reason"] == reason and r[f"{name}_n_checkpoints"] == p.height
            reasons.add(reason)
            if reason == "ok":
                assert r[name] == pytest.approx(rho)
            else:
                assert math.isnan(r[name])
    assert {"ok", "too_few_checkpoints", "gold_unseen"} <= reasons  # the world exercises them
