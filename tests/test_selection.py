"""Every selector on one pool (siaflow.selection.selectors, siaflow.selection.bestofn), against values worked by hand."""

import math

import numpy as np
import polars as pl
import pytest

from siaflow.selection.bestofn import Selector, best_of_n, kept_by_score, select_accuracy
from siaflow.selection.edis import EdisParams
from siaflow.selection.selectors import certaindex, deepconf_scores, group_confidences, methods, pool_scores


def test_group_confidences_slide_one_token_at_a_time():
    assert group_confidences([1, 2, 3, 4, 5], 2).tolist() == [1.5, 2.5, 3.5, 4.5]
    assert group_confidences([2, 4], 8).tolist() == [3.0]  # shorter than a window: one group
    assert group_confidences([], 4).size == 0


def test_deepconf_scores_by_hand():
    s = deepconf_scores([1, 2, 3, 4, 5], window=2, tail=2, bottom_fraction=0.5)
    # groups 1.5 2.5 3.5 4.5: lowest 1.5, bottom half (1.5 + 2.5) / 2, tail (4 + 5) / 2, mean 3
    assert s == {"conf_mean": 3.0, "conf_lowest_group": 1.5, "conf_bottom_groups": 2.0, "conf_tail": 4.5}
    # the bottom fraction keeps at least one group
    assert deepconf_scores([1, 2, 3, 4, 5], window=2, tail=2, bottom_fraction=0.1)["conf_bottom_groups"] == 1.5
    assert all(math.isnan(v) for v in deepconf_scores([], window=2, tail=2, bottom_fraction=0.1).values())


def test_certaindex_averages_the_probes_before_the_end():
    K = 16
    rows = [
        {"model": "m", "dataset": "d", "question_id": "q", "trajectory": 0, "k": k, "T": 10, "K": K, "H": h}
        for k, h in [(0, math.log(16)), (4, math.log(2)), (8, 0.0), (10, 0.0)]
    ]
    got = certaindex(pl.LazyFrame(rows)).collect().row(0, named=True)
    # k = 10 = T is the finished response, not a probe: (0 + (1 - 1/4) + 1) / 3
    assert got["n_probes"] == 3 and got["certaindex"] == pytest.approx((0 + 0.75 + 1) / 3)


def test_confidence_filter_keeps_the_top_fraction_ties_included():
    s = np.array([[1.0, 1.0, 5.0, 0.5]])
    assert kept_by_score(s, "max", 0.25).tolist() == [[False, False, True, False]]
    assert kept_by_score(s, "max", 0.5).tolist() == [[True, True, True, False]]  # tie at the 2nd best
    assert kept_by_score(s, "min", 0.25).tolist() == [[False, False, False, True]]
    assert kept_by_score(np.array([[np.nan, 2.0]]), "max", 0.9).tolist() == [[False, True]]


def test_weighted_and_filtered_votes_by_hand():
    """Answers a a a b with confidences 1 1 1 5: a majority vote says a (wrong), a confidence-
    weighted vote says b (5 > 3), and keeping the top 25% keeps only b."""
    codes = np.array([0, 0, 0, 1])
    correct = np.array([False, False, False, True])
    conf = np.array([1.0, 1.0, 1.0, 5.0])
    idx = np.array([[0, 1, 2, 3]])
    acc = {
        name: select_accuracy(correct, codes, 1, conf, sel, idx)[0]
        for name, sel in {
            "majority": Selector(None, None, True),
            "weighted": Selector("c", "max", True),
            "top25": Selector("c", "max", True, keep=0.25),
            "best": Selector("c", "max", False),
        }.items()
    }
    assert acc == {"majority": 0.0, "weighted": 1.0, "top25": 1.0, "best": 1.0}
    # confidences 3 3 1 5 for a a a b: weighted a = 7 > 5; top 50% keeps 5 and both 3s: a = 6 > 5
    conf2 = np.array([3.0, 3.0, 1.0, 5.0])
    assert select_accuracy(correct, codes, 1, conf2, Selector("c", "max", True), idx)[0] == 0.0
    assert select_accuracy(correct, codes, 1, conf2, Selector("c", "max", True, keep=0.5), idx)[0] == 0.0
    assert select_accuracy(correct, codes, 1, conf2, Selector("c", "max", True, keep=0.25), idx)[0] == 1.0


def _pool():
    """Two questions, four responses each, with every score column."""
    rows = []
    for q, answers, gold in (("q0", ["1", "1", "2", "NULL"], "2"), ("q1", ["3", "3", "3", "4"], "3")):
        for t, a in enumerate(answers):
            rows.append(
                {
                    "model": "m",
                    "dataset": "d",
                    "question_id": q,
                    "trajectory": t,
                    "answer": a,
                    "gold": gold,
                    "correct": a == gold,
                    "conf_lowest_group": [1.0, 2.0, 9.0, 4.0][t],
                    "certaindex": [0.9, 0.8, 0.1, 0.0][t],
                }
            )
    return pl.DataFrame(rows)


def test_best_of_n_over_the_whole_pool_by_hand():
    """N = pool size: the one subset is the pool. q0: lowest-group confidence picks response 2
    (answer 2, right); Certaindex picks response 0 (wrong); majority says 1 (wrong). q1: every rule
    but the picks of response 3 is right."""
    sel = {
        "majority": Selector(None, None, True),
        "pick_conf_lowest": Selector("conf_lowest_group", "max", False),
        "certaindex": Selector("certaindex", "max", False),
        "deepconf_vote_lowest": Selector("conf_lowest_group", "max", True),
    }
    out = best_of_n(_pool(), sel, n_values=[4], n_draws=3, seed=0, n_boot=50, ci=0.95)
    acc = dict(zip(out["method"], out["accuracy"]))
    # q1 pick_conf_lowest picks response 2 (conf 9, answer 3, right); weighted q0: 1 -> 3, 2 -> 9: right
    assert acc == {"majority": 0.5, "pick_conf_lowest": 1.0, "certaindex": 0.5, "deepconf_vote_lowest": 1.0}
    assert set(out["n_questions"]) == {2}


def test_methods_cover_every_selector_of_the_issue():
    """Issue 30 renamed the rows after their sources: DeepConf's offline votes are
    ``deepconf_vote_*`` (its filters ``*_top10`` / ``*_top90``), the old pick-the-most-confident rows
    are siaflow's ``pick_conf_*``, and the self-certainty vote weighted by the score is the EDIS
    paper's (``self_certainty_edis``) beside Self-Certainty's own Borda vote."""
    m = methods([0.1, 0.9])
    assert {
        "random",
        "majority",
        "mean_entropy",
        "self_certainty",
        "self_certainty_borda",
        "self_certainty_edis",
        "edis",
        "weighted_edis",
        *(f"deepconf_vote_{c}" for c in ("mean", "bottom", "tail", "lowest")),
        *(f"deepconf_vote_{c}_top{e}" for c in ("bottom", "tail", "lowest") for e in (10, 90)),
        *(f"pick_conf_{c}" for c in ("mean", "bottom", "tail", "lowest")),
        "certaindex",
        "certaindex_weighted",
    } == set(m)
    assert m["deepconf_vote_lowest_top10"] == Selector("conf_lowest_group", "max", True, keep=0.1)


def test_pool_scores_names_a_response_without_entropy_rows():
    roll = pl.DataFrame(
        [
            {
                "model": "m",
                "dataset": "d",
                "question_id": "q",
                "trajectory": t,
                "answer": "1",
                "gold": "1",
                "correct": True,
                "token_entropy": [0.1, 0.2],
                "token_self_certainty": [1.0, 1.0],
                "token_confidence": [2.0, 3.0],
            }
            for t in range(3)
        ]
    )
    ent = pl.LazyFrame(
        [{"model": "m", "dataset": "d", "question_id": "q", "trajectory": 0, "k": 0, "T": 2, "K": 4, "H": 0.0}]
    )
    with pytest.raises(ValueError, match="trajectory 1"):
        pool_scores(roll, ent, n_trajectories=2, edis_params=EdisParams(), window=2, tail=1, bottom_fraction=0.1)
    ent = pl.concat([ent, ent.with_columns(trajectory=pl.lit(1, dtype=pl.Int64))])
    out = pool_scores(roll, ent, n_trajectories=2, edis_params=EdisParams(), window=2, tail=1, bottom_fraction=0.1)
    assert out.height == 2  # the pool is the first n_trajectories
    assert out["conf_tail"].to_list() == [3.0, 3.0] and out["certaindex"].to_list() == [1.0, 1.0]
