"""Exit rules on hand-made trajectories (siaflow.selection.early_exit) and the probe-agreement
statistics (siaflow.analysis.probes): each number below is worked out by hand."""

import numpy as np
import polars as pl
import pytest

from siaflow.analysis.probes import bootstrap_pearson
from siaflow.selection import early_exit as ee


def _cp(
    T=12,
    ks=(0, 4, 8, 12),
    H_full=(2.0, 1.0, 0.0, 0.0),
    map_full=("1", "7", "7", "7"),
    H_probe=(1.5, 0.5, 0.0, 0.0),
    map_probe=("3", "7", "7", "7"),
    tok_full=10,
    tok_probe=2,
    correct=False,
):
    n = len(ks)
    return pl.DataFrame(
        {
            "model": ["m"] * n,
            "dataset": ["d"] * n,
            "question_id": ["q"] * n,
            "trajectory": [0] * n,
            "k": list(ks),
            "T": [T] * n,
            "correct": [correct] * n,
            "gold": ["7"] * n,
            "H_full": list(H_full),
            "map_full": list(map_full),
            "H_probe": list(H_probe),
            "map_probe": list(map_probe),
            "tok_full": [tok_full] * n,
            "tok_probe": [tok_probe] * n,
        }
    )


def _one(units):
    assert units.height == 1
    return units.row(0, named=True)


def test_entropy_threshold_exits_at_the_first_checkpoint_at_or_below_tau():
    cp = _cp()
    r = _one(ee.entropy_exit(cp, "full", 0.0))  # H = 0 first at k = 8: the draws at 0, 4, 8 paid
    assert (r["correct"], r["cost"], r["draws"], r["exited"]) == (True, 8 + 30, 30, True)
    r = _one(ee.entropy_exit(cp, "full", 1.0))  # H = 1.0 at k = 4
    assert (r["cost"], r["exited"]) == (4 + 20, True)
    r = _one(ee.entropy_exit(cp, "probe", 1.0))  # probes: 0.5 at k = 4, two tokens per checkpoint
    assert (r["correct"], r["cost"]) == (True, 4 + 4)


def test_no_exit_pays_every_draw_before_the_end_and_keeps_the_own_answer():
    cp = _cp(H_full=(2.0, 1.0, 0.9, 0.0))
    r = _one(ee.entropy_exit(cp, "full", 0.5))  # k = 12 = T is the end: nothing is drawn there
    assert (r["correct"], r["cost"], r["exited"]) == (False, 12 + 30, False)


def test_consecutive_needs_m_equal_answers_before_the_end():
    cp = _cp(map_full=("1", "7", "7", "7"))
    assert _one(ee.consecutive_exit(cp, "full", 2))["cost"] == 8 + 30  # 7 at k = 4 and 8
    r = _one(ee.consecutive_exit(cp, "full", 3))  # only two checkpoints of 7 before T
    assert (r["exited"], r["cost"]) == (False, 12 + 30)
    nulls = _cp(map_full=("NULL", "NULL", "7", "7"))
    assert _one(ee.consecutive_exit(nulls, "full", 2))["exited"] is False  # NULL is no answer to keep


def test_budget_forces_the_probe_answer_and_leaves_short_traces_alone():
    cp = _cp()
    r = _one(ee.budget_exit(cp, 4))
    assert (r["correct"], r["cost"], r["draws"]) == (True, 4 + 2, 2)  # one checkpoint's probes only
    short = _one(ee.budget_exit(_cp(correct=True), 12))
    assert (short["correct"], short["cost"], short["exited"]) == (True, 12, False)
    with pytest.raises(ValueError, match="no checkpoint at k = 6"):
        ee.budget_exit(cp, 6)


def test_vote_ignores_null_and_breaks_ties_by_answer_text():
    assert ee.vote(["NULL", "NULL", "3"]) == "3"
    assert ee.vote(["NULL"]) == "NULL"
    assert ee.vote(["5", "4"]) == "4" == ee.vote(["4", "5"])
    assert ee.vote(["5", "4", "4"], [3.0, 1.0, 1.0]) == "5"


def test_deepconf_online_stops_low_confidence_traces_and_votes_among_the_rest():
    # window 2; warm-up trace 0 has lowest group 3.0 -> with keep = 0.9 the threshold is 3.0
    pool = pl.DataFrame(
        {
            "model": ["m"] * 3,
            "dataset": ["d"] * 3,
            "question_id": ["q"] * 3,
            "trajectory": [0, 1, 2],
            "T": [4, 4, 4],
            "answer": ["7", "5", "5"],
            "gold": ["7"] * 3,
            "token_confidence": [[3.0, 3.0, 4.0, 4.0], [4.0, 1.0, 1.0, 4.0], [4.0, 4.0, 4.0, 4.0]],
        }
    )
    r = _one(ee.deepconf_online(pool, window=2, warmup=1, keep=0.9))
    # trace 1's first window (4, 1) = 2.5 < 3: stopped after 2 tokens; traces 0 and 2 vote
    # (weights 3.0 for "7", 4.0 for "5"): "5" wins, and the question is wrong
    assert (r["correct"], r["cost"], r["full"], r["exited"]) == (False, 4 + 2 + 4, 12, True)
    assert ee.stop_position([4.0, 1.0, 1.0, 4.0], 2, 3.0) == 2
    assert ee.stop_position([4.0, 4.0], 2, 3.0) is None


def test_summary_is_a_ratio_of_sums_with_intervals_over_questions():
    units = pl.DataFrame(
        {
            "question_id": ["a", "a", "b"],
            "correct": [True, False, True],
            "cost": [5, 15, 40],
            "full": [10, 10, 20],
            "draws": [1, 1, 0],
            "exited": [True, False, False],
        }
    )
    s = ee.summarise(units, n_boot=200, ci=0.9, seed=0)
    assert s["accuracy"] == pytest.approx(2 / 3) and s["rel_tokens"] == pytest.approx(60 / 40)
    assert s["accuracy_lo"] <= s["accuracy"] <= s["accuracy_hi"]
    assert s["rel_tokens_lo"] >= 1.0 and s["rel_tokens_hi"] <= 2.0  # between question a's 1.0 and b's 2.0
    assert s["exited"] == pytest.approx(1 / 3) and s["draw_share"] == pytest.approx(2 / 60)
    assert ee.verdict(1.5) == "costs 50% more than it saves" and ee.verdict(0.75) == "saves 25%"


def test_bootstrap_pearson_is_pearson_and_resamples_whole_questions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = x + rng.normal(size=60)
    groups = np.repeat(np.arange(12), 5)
    r, lo, hi = bootstrap_pearson(x, y, groups, n_boot=300, ci=0.95, seed=0)
    assert r == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert lo < r < hi
    # one resample by hand: question i drawn counts[i] times weighs its rows that many times
    from siaflow.analysis.stats import resample_counts

    counts = resample_counts(12, 300, 0)[0]
    rows = np.repeat(np.arange(60), counts[groups])
    by_hand = np.corrcoef(x[rows], y[rows])[0, 1]
    from siaflow.analysis.probes import _weighted_pearson

    assert _weighted_pearson(counts[groups][None].astype(float), x, y)[0] == pytest.approx(by_hand)
    assert np.isnan(bootstrap_pearson(np.ones(5), y[:5], groups[:5], n_boot=10, ci=0.9, seed=0)[0])
