"""EDIS and Best-of-N against hand-made trajectories and pools with known answers."""

import math

import numpy as np
import polars as pl
import pytest

from siaflow.answers import NULL
from siaflow.selection.edis import (
    EdisParams,
    best_of_n,
    burst_spikes,
    edis_score,
    rebound_spikes,
    select_accuracy,
    spike_positions,
    trajectory_scores,
    vote_weights,
)

P = EdisParams(window=2, tau_burst=1.0, tau_rebound=1.0)


def test_burst_spikes_hand_counted():
    h = [0.0, 0.5, 1.2, 2.0, 0.1, 0.0]
    # t -> t+2 rises: 0->1.2 (1.2 > 1: yes), 0.5->2.0 (1.5: yes), 1.2->0.1 no, 2.0->0.0 no
    assert burst_spikes(h, 2, 1.0) == 2
    assert burst_spikes(h, 2, 1.3) == 1


def test_burst_spikes_shorter_than_window():
    assert burst_spikes([0.0, 3.0], 2, 1.0) == 0  # T <= w: no window fits
    assert burst_spikes([], 8, 1.0) == 0


def test_rebound_spikes_against_running_minimum():
    h = [1.0, 0.2, 1.5, 0.1, 1.2, 1.0]
    # running minima before t = 2..6: 1.0, 0.2, 0.2, 0.1, 0.1 -> rises -0.8, 1.3, -0.1, 1.1, 0.9
    assert rebound_spikes(h, 1.0) == 2
    assert rebound_spikes([0.3], 1.0) == 0


def test_flat_trajectory_scores_zero():
    s = edis_score([0.7] * 20, P)
    assert s["n_burst"] == s["n_rebound"] == 0 and s["edis"] == 0.0
    assert s["var_entropy"] == pytest.approx(0.0, abs=1e-20)
    assert s["mean_entropy"] == pytest.approx(0.7)


def test_edis_formula():
    h = [0.0, 0.5, 1.2, 2.0, 0.1, 0.0]
    s = edis_score(h, P)
    # bursts 2 (above); rebounds: minima 0,0,0,0,0 -> rises 0.5, 1.2, 2.0, 0.1, 0.0 -> 2 over 1.0
    assert (s["n_burst"], s["n_rebound"]) == (2, 2)
    var = np.var(h)  # population variance
    assert s["edis"] == pytest.approx(2.0 * (1 + var))
    assert math.isnan(edis_score([], P)["edis"])


def test_spike_positions_match_counts():
    h = [0.0, 0.5, 1.2, 2.0, 0.1, 0.0]
    burst, rebound = spike_positions(h, P)
    assert burst.tolist() == [2, 3] and rebound.tolist() == [2, 3]


def _pool():
    # gold "7": responses 0..3
    return dict(correct=np.array([True, False, False, True]), codes=np.array([0, 1, 1, 0]), gold_code=0)


def test_selection_by_score_and_ties():
    p = _pool()
    idx = np.array([[0, 1, 2, 3]])
    ent = np.array([0.5, 0.1, 0.9, 0.3])  # lowest = response 1 (wrong)
    assert select_accuracy(p["correct"], p["codes"], 0, ent, "mean_entropy", idx)[0] == 0.0
    sc = np.array([2.0, 1.0, 1.0, 2.0])  # highest: 0 and 3 tie, both right
    assert select_accuracy(p["correct"], p["codes"], 0, sc, "self_certainty", idx)[0] == 1.0
    tie = np.array([0.2, 0.2, 0.9, 0.9])  # lowest EDIS tied between a right and a wrong one: 1/2
    assert select_accuracy(p["correct"], p["codes"], 0, tie, "edis", idx)[0] == 0.5
    assert select_accuracy(p["correct"], p["codes"], 0, None, "random", idx)[0] == 0.5


def test_majority_vote_ties_and_null():
    correct = np.array([True, False, False, True, False])
    codes = np.array([0, 1, 1, 0, -1])  # the last answer is NULL: no vote
    idx = np.array([[0, 1, 2, 3, 4], [0, 1, 2, 4, 4], [4, 4, 4, 4, 4]])
    acc = select_accuracy(correct, codes, 0, None, "majority", idx)
    # row 0: 2 votes each for the right and a wrong answer -> 1/2; row 1: wrong answer wins 2:1;
    # row 2: all NULL -> no answer -> 0
    assert acc.tolist() == [0.5, 0.0, 0.0]


def test_weighted_votes():
    correct = np.array([True, False, False])
    codes = np.array([0, 1, 1])
    idx = np.array([[0, 1, 2]])
    ent = np.array([0.0, 0.5, 0.5])  # weights 10, 1/0.6, 1/0.6: the confident right answer wins 10 : 3.33
    assert select_accuracy(correct, codes, 0, ent, "weighted_mean_entropy", idx)[0] == 1.0
    sc = np.array([1.0, 0.6, 0.6])  # weights s: 1.0 vs 1.2 -> the wrong answer wins
    assert select_accuracy(correct, codes, 0, sc, "weighted_self_certainty", idx)[0] == 0.0
    assert vote_weights(np.array([np.nan, 0.9]), "min").tolist() == pytest.approx([0.0, 1.0])


def test_best_of_n_on_a_known_pool():
    # question a: 4 responses, only the lowest-EDIS one is right; question b: all right
    rows = []
    for j, (ans, edis) in enumerate([("1", 0.1), ("2", 3.0), ("2", 2.0), ("3", 1.0)]):
        rows.append(
            {
                "model": "m",
                "dataset": "d",
                "question_id": "a",
                "trajectory": j,
                "answer": ans,
                "gold": "1",
                "correct": ans == "1",
                "edis": edis,
                "mean_entropy": 1.0,
                "self_certainty": 1.0,
            }
        )
    for j in range(4):
        rows.append(
            {
                "model": "m",
                "dataset": "d",
                "question_id": "b",
                "trajectory": j,
                "answer": "5",
                "gold": "5",
                "correct": True,
                "edis": 1.0,
                "mean_entropy": 1.0,
                "self_certainty": 1.0,
            }
        )
    out = best_of_n(pl.DataFrame(rows), n_values=[4, 8], n_draws=5, seed=0, n_boot=50, ci=0.95)
    n4 = {r["method"]: r for r in out.filter(pl.col("N") == 4).iter_rows(named=True)}
    assert n4["edis"]["accuracy"] == 1.0  # picks the right response in a, anything in b
    assert n4["random"]["accuracy"] == pytest.approx((0.25 + 1) / 2)
    assert n4["majority"]["accuracy"] == pytest.approx((0 + 1) / 2)  # "2" wins a
    assert n4["mean_entropy"]["accuracy"] == pytest.approx((0.25 + 1) / 2)  # all tied in a: expected 1/4
    n8 = out.filter(pl.col("N") == 8)
    assert (n8["n_questions"] == 0).all() and (n8["n_questions_skipped"] == 2).all()


def test_trajectory_scores_from_rollouts():
    roll = pl.DataFrame(
        {
            "model": ["m"],
            "dataset": ["d"],
            "question_id": ["q"],
            "trajectory": [0],
            "answer": [NULL],
            "gold": ["3"],
            "correct": [False],
            "token_entropy": [[0.0, 2.0, 0.0]],
            "token_self_certainty": [[1.0, 2.0, 3.0]],
        }
    )
    s = trajectory_scores(roll, P).row(0, named=True)
    assert s["self_certainty"] == 2.0 and s["T"] == 3 and s["n_rebound"] == 1
