"""Every Best-of-N and early-exit baseline against its authors' code (issue 30).

Each reference below is a small reimplementation, written here and calling nothing of siaflow, of
the function named in its docstring (repository and path); siaflow's function must agree with it on
the hand-made cases of the issue and on random ones. Where a reference breaks a tie by position
(the first answer to reach the top weight), siaflow scores the tie by its expected accuracy; the
random cases skip ties, the hand-made ones have none.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import polars as pl
import pytest

from siaflow.config import ConfigError, check_early_exit, dynasor_interval
from siaflow.selection import early_exit as ee
from siaflow.selection.bestofn import Selector, kept_by_score, select_accuracy
from siaflow.selection.selectors import deepconf_scores, methods

NULL = "NULL"
HEDGE = ["wait", "hold", "but", "okay", "no", "hmm"]  # Dynasor's uncertain_words

# ----------------------------------------------------------------------------------------------
# references
# ----------------------------------------------------------------------------------------------


def ref_bottom_window(confs, window, bottom_percent):
    """facebookresearch/deepconf deepconf/utils.py: calculate_bottom_window_confidence (-1: min)."""
    if len(confs) < window:
        return float(np.mean(confs))
    means = [sum(confs[i : i + window]) / window for i in range(len(confs) - window + 1)]
    if bottom_percent == -1:
        return min(means)
    num_bottom = max(1, int(len(means) * bottom_percent))
    return float(np.mean(sorted(means)[:num_bottom]))


def ref_weighted_vote(answers, weights):
    """deepconf/utils.py: weighted_majority_vote, returning every answer at the top weight."""
    totals = {}
    for a, w in zip(answers, weights):
        totals[a] = totals.get(a, 0.0) + float(w)
    if not totals:
        return []
    best = max(totals.values())
    return [a for a, t in totals.items() if t == best]


def ref_deepconf_offline(answers, conf, top_percent=None):
    """deepconf/utils.py: compute_all_voting_results: valid (answered) traces only, then
    filter_top_confidence (np.percentile at (1 - top) * 100, kept with >=), then the weighted vote."""
    valid = [(a, c) for a, c in zip(answers, conf) if a != NULL]
    if top_percent is not None and valid:
        threshold = np.percentile([c for _, c in valid], (1 - top_percent) * 100)
        valid = [(a, c) for a, c in valid if c >= threshold]
    return ref_weighted_vote([a for a, _ in valid], [c for _, c in valid])


def ref_borda(answers, conf, power=0.5):
    """backprop07/Self-Certainty src/voting_from_list.py: confidence_with_file, one item: ranks over
    every output (a stable sort), votes (N - rank)^p by rank index, unanswered outputs skipped."""
    n = len(conf)
    order = sorted(range(n), key=lambda k: conf[k], reverse=True)
    votes_map = {order[i]: (n - i) ** power for i in range(n)}
    votes = {}
    for i in range(n):
        if answers[i] != NULL:
            votes[answers[i]] = votes.get(answers[i], 0.0) + votes_map[i]
    best = max(votes.values()) if votes else None
    return [a for a, v in votes.items() if v == best]


def ref_self_certainty_pick(answers, conf):
    """Self-Certainty src/self_certainty_from_list.py: unanswered outputs get -1e9, then the max."""
    c = [-1e9 if a == NULL else s for a, s in zip(answers, conf)]
    return [answers[i] for i in range(len(c)) if c[i] == max(c)]


def _siaflow(answers, gold, scores, selector):
    """siaflow's expected accuracy on one subset in the given order."""
    vocab = {a: i for i, a in enumerate(dict.fromkeys(a for a in answers if a != NULL))}
    codes = np.array([vocab.get(a, -1) for a in answers])
    correct = np.array([a == gold for a in answers])
    idx = np.arange(len(answers))[None]
    return select_accuracy(correct, codes, vocab.get(gold, -1), np.asarray(scores, float), selector, idx)[0]


# ----------------------------------------------------------------------------------------------
# Best-of-N
# ----------------------------------------------------------------------------------------------


def test_a_response_without_an_answer_is_never_picked():
    """Issue case: scores [12 (no answer), 10 (right), 9]: every pick takes the right one."""
    answers, gold = [NULL, "7", "3"], "7"
    for sel in (Selector("s", "max", False), Selector("s", "min", False)):
        scores = [12.0, 10.0, 9.0] if sel.direction == "max" else [-12.0, -10.0, -9.0]
        assert _siaflow(answers, gold, scores, sel) == 1.0
    assert ref_self_certainty_pick(answers, [12.0, 10.0, 9.0]) == ["7"]
    assert _siaflow([NULL, NULL], gold, [1.0, 2.0], Selector("s", "max", False)) == 0.0
    # a missing score loses to any answered score, but an answered response still beats NULL
    assert _siaflow([NULL, "7", "3"], gold, [5.0, np.nan, np.nan], Selector("s", "max", False)) == 0.5


def test_deepconf_filter_keeps_the_top_eta_of_the_answered_traces():
    """At eta = 0.9 DeepConf's percentile filter keeps 1/3/7/14 of N = 2/4/8/16 distinct scores;
    a NULL response fills no slot and takes no part in the percentile."""
    for n, want in ((2, 1), (4, 3), (8, 7), (16, 14)):
        s = np.arange(n, dtype=float)[None]
        assert kept_by_score(s, "max", 0.9).sum() == want
        ref = np.percentile(s[0], 10)
        assert int((s[0] >= ref).sum()) == want
    s = np.array([[9.0, 1.0, 2.0, 3.0]])
    answered = np.array([[False, True, True, True]])
    assert kept_by_score(s, "max", 0.1, answered).tolist() == [[False, False, False, True]]


@pytest.mark.parametrize("keep", [None, 0.1, 0.5, 0.9])
def test_deepconf_votes_agree_with_deepconf_offline(keep):
    rng = np.random.default_rng(1)
    compared = 0
    for _ in range(300):
        n = int(rng.integers(2, 17))
        answers = [str(a) if a < 4 else NULL for a in rng.integers(0, 5, n)]
        conf = rng.uniform(1, 10, n).round(2)
        gold = str(int(rng.integers(0, 4)))
        ref = ref_deepconf_offline(answers, conf, keep)
        if len(ref) > 1:
            continue
        compared += 1
        want = float(ref == [gold])
        assert _siaflow(answers, gold, conf, Selector("c", "max", True, keep=keep)) == want, (answers, conf)
    assert compared > 250


def test_deepconf_confidences_agree_with_deepconf_utils():
    rng = np.random.default_rng(2)
    for _ in range(200):
        conf = rng.uniform(0, 5, int(rng.integers(1, 60))).tolist()
        window, frac = int(rng.integers(1, 12)), float(rng.choice([0.1, 0.25, 0.3, 0.5]))
        got = deepconf_scores(conf, window=window, tail=5, bottom_fraction=frac)
        assert got["conf_bottom_groups"] == pytest.approx(ref_bottom_window(conf, window, frac))
        assert got["conf_lowest_group"] == pytest.approx(ref_bottom_window(conf, window, -1))
        assert got["conf_tail"] == pytest.approx(np.mean(conf[-5:]))
    # 19 groups, bottom 10%: int(1.9) = 1 group (the lowest), not two
    conf = [1.0, 2.0] + [5.0] * 18
    assert deepconf_scores(conf, window=2, tail=2, bottom_fraction=0.1)["conf_bottom_groups"] == 1.5


def test_self_certainty_borda_and_pick_agree_with_self_certainty():
    rng = np.random.default_rng(3)
    borda, pick = methods([0.1])["self_certainty_borda"], methods([0.1])["self_certainty"]
    compared = 0
    for _ in range(300):
        n = int(rng.integers(2, 12))
        answers = [str(a) if a < 3 else NULL for a in rng.integers(0, 4, n)]
        conf = rng.integers(0, 6, n).astype(float)  # ties in score: ranked in order, as a stable sort
        gold = str(int(rng.integers(0, 3)))
        ref = ref_borda(answers, conf)
        if len(ref) == 1:
            compared += 1
            assert _siaflow(answers, gold, conf, borda) == float(ref == [gold]), (answers, conf)
        best = ref_self_certainty_pick(answers, conf)
        assert _siaflow(answers, gold, conf, pick) == pytest.approx(np.mean([a == gold for a in best]))
    assert compared > 200
    # by hand: ranks 1..4 weigh 2, sqrt 3, sqrt 2, 1: "b" (ranks 2, 3) = 3.15 beats "a" (ranks 1, 4) = 3
    assert _siaflow(["a", "b", "b", "a"], "b", [4.0, 3.0, 2.0, 1.0], borda) == 1.0
    # a NULL response keeps its rank (its weight is lost): "a" (ranks 3, 4) = sqrt 2 + 1 > "b" (2) = sqrt 3
    assert _siaflow([NULL, "a", "a", "b"], "a", [9.0, 3.0, 2.0, 5.0], borda) == 1.0


def test_methods_are_named_after_their_sources():
    m = methods([0.1, 0.9])
    assert m["self_certainty_borda"] == Selector("self_certainty", "max", True, borda=0.5)
    assert m["self_certainty_edis"] == Selector("self_certainty", "max", True)
    assert m["deepconf_vote_lowest_top10"] == Selector("conf_lowest_group", "max", True, keep=0.1)
    assert m["deepconf_vote_tail"] == Selector("conf_tail", "max", True)
    assert m["pick_conf_bottom"] == Selector("conf_bottom_groups", "max", False)
    assert not any(k.startswith("deepconf_") and not k.startswith("deepconf_vote_") for k in m)


# ----------------------------------------------------------------------------------------------
# DeepConf online
# ----------------------------------------------------------------------------------------------


def ref_deepconf_online(traces, *, window, warmup, eta):
    """deepconf/wrapper.py: _deepthink_online + _perform_basic_voting, with processors.py's
    ConfPerReqLogitsProcessor stopping a final trace at the first full window below the bar.
    ``traces``: (token confidences, answer). Returns (top answers, tokens spent)."""
    groups = [ref_bottom_window(c, window, -1) for c, _ in traces]
    bar = float(np.percentile(groups[:warmup], 100 - 100 * eta))
    answers, weights, spent = [], [], 0
    for i, (c, a) in enumerate(traces):
        if i < warmup:
            spent += len(c)
            if groups[i] >= bar and a != NULL:
                answers.append(a)
                weights.append(groups[i])
            continue
        q, n = deque(maxlen=window), 0
        for t in c:
            q.append(t)
            n += 1
            if len(q) >= window and sum(q) / len(q) < bar:
                break
        spent += n
        if groups[i] >= bar and a != NULL:  # not stopped (a stopped trace's min_conf is below the bar)
            answers.append(a)
            weights.append(groups[i])
    return ref_weighted_vote(answers, weights), spent


def _online_pool(traces, gold):
    n = len(traces)
    return pl.DataFrame(
        {
            "model": ["m"] * n,
            "dataset": ["d"] * n,
            "question_id": ["q"] * n,
            "trajectory": list(range(n)),
            "T": [len(c) for c, _ in traces],
            "answer": [a for _, a in traces],
            "gold": [gold] * n,
            "token_confidence": [list(map(float, c)) for c, _ in traces],
        }
    )


def test_deepconf_online_warmup_votes_only_at_or_above_the_threshold():
    """Issue case: warm-up lowest groups [10 x 7 (A), 12 (B)], two survivors at 11 (B). DeepConf-low
    (eta = 0.1): the bar is the 90th percentile, 10.6; only B's warm-up trace votes: B."""
    traces = [([10.0] * 4, "A")] * 7 + [([12.0] * 4, "B")] + [([11.0] * 4, "B")] * 2
    (want,), spent = ref_deepconf_online(traces, window=2, warmup=8, eta=0.1)
    r = ee.deepconf_online(_online_pool(traces, "B"), window=2, warmup=8, keep=0.1).row(0, named=True)
    assert want == "B" and r["correct"] and r["cost"] == spent == 40


def test_deepconf_online_agrees_with_deepconf_on_random_pools():
    rng = np.random.default_rng(4)
    compared = 0
    for _ in range(150):
        n, warmup, window = int(rng.integers(4, 12)), int(rng.integers(1, 4)), int(rng.integers(1, 6))
        eta = float(rng.choice([0.1, 0.5, 0.9]))
        traces = [
            (rng.uniform(1, 5, int(rng.integers(1, 15))).round(3).tolist(), str(rng.choice(["1", "2", "3", NULL])))
            for _ in range(n)
        ]
        top, spent = ref_deepconf_online(traces, window=window, warmup=warmup, eta=eta)
        r = ee.deepconf_online(_online_pool(traces, "1"), window=window, warmup=warmup, keep=eta).row(0, named=True)
        assert r["cost"] == spent
        if len(top) <= 1:
            compared += 1
            assert r["correct"] == (top == ["1"])
    assert compared > 120


# ----------------------------------------------------------------------------------------------
# Dynasor
# ----------------------------------------------------------------------------------------------


def ref_dynasor(probes, T, threshold):
    """hao-ai-lab/Dynasor dynasor/core/cot.py: openai_chat_completion_stream's exit test on the
    probes made before the end (``probes``: (k, answer, text, tokens), every token_interval);
    answers compared as strings (``eqaul_group``), NULL is Dynasor's empty answer. Returns
    (answer or None, tokens spent)."""
    answers, texts, spent = [], [], 0
    for k, a, text, tok in probes:
        if k >= T:
            break
        spent += tok
        answers.append("" if a == NULL else a)
        texts.append(text)
        last = answers[-threshold:]
        certain = [not any(w in r.lower() for w in HEDGE) for r in texts[-threshold:]]
        if len(set(last)) == 1 and sum(x != "" for x in last) == threshold and sum(certain) == threshold:
            return answers[-1], k + spent
    return None, T + spent


def _dyn_cp(T, stride, answers, texts, toks, correct=False, gold="7"):
    ks = list(range(0, T, stride)) + [T]
    n = len(ks)
    pad = n - len(answers)
    return pl.DataFrame(
        {
            "model": ["m"] * n,
            "dataset": ["d"] * n,
            "question_id": ["q"] * n,
            "trajectory": [0] * n,
            "k": ks,
            "T": [T] * n,
            "correct": [correct] * n,
            "gold": [gold] * n,
            "dyn_answer": list(answers) + [gold] * pad,
            "dyn_text": list(texts) + [gold] * pad,
            "dyn_tok": list(toks) + [0] * pad,
        }
    )


def test_dynasor_exits_on_two_agreeing_certain_probes():
    # stride 4, interval 8: probes at k = 8, 16 (k = 4, 12 are not Dynasor's); T = 20
    answers = ["1", "9", "7", "9", "7"]
    cp = _dyn_cp(20, 4, answers, [" 7"] * 5, [3] * 5)
    r = ee.dynasor_exit(cp, 8, 2).row(0, named=True)
    assert (r["correct"], r["cost"], r["draws"], r["exited"]) == (True, 16 + 6, 6, True)
    # a hedge word (a substring, any case) in either probe's text: no exit, every probe paid
    for hedge in (" Hmm, 7", " 7, I think not"):
        cp = _dyn_cp(20, 4, answers, [" 7", " 7", hedge, " 7", " 7"], [3] * 5)
        r = ee.dynasor_exit(cp, 8, 2).row(0, named=True)
        assert (r["exited"], r["cost"]) == (False, 20 + 6)
    # NULL (Dynasor's empty answer) never agrees
    cp = _dyn_cp(20, 4, ["1", "9", NULL, "9", NULL], [""] * 5, [1] * 5)
    assert ee.dynasor_exit(cp, 8, 2)["exited"].to_list() == [False]
    assert ref_dynasor([(8, NULL, "", 1), (16, NULL, "", 1)], 20, 2) == (None, 22)


def test_dynasor_agrees_with_dynasor_on_random_trajectories():
    rng = np.random.default_rng(5)
    words = ["7", " 7", "8", " wait 7", "Okay 7", "7 no", ""]
    for _ in range(300):
        stride, mult, m = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        T = int(rng.integers(1, 40))
        n = len(range(0, T, stride))
        answers = [str(rng.choice(["7", "8", NULL])) for _ in range(n)]
        texts = [str(rng.choice(words)) for _ in range(n)]
        toks = rng.integers(0, 20, n).tolist()
        cp = _dyn_cp(T, stride, answers, texts, toks)
        r = ee.dynasor_exit(cp, stride * mult, m).row(0, named=True)
        ks = range(0, T, stride)
        probes = [(k, answers[i], texts[i], toks[i]) for i, k in enumerate(ks) if k > 0 and k % (stride * mult) == 0]
        answer, spent = ref_dynasor(probes, T, m)
        assert r["cost"] == spent and r["exited"] == (answer is not None)
        assert r["correct"] == (answer == "7" if answer is not None else False)


def test_first_probe_columns_come_from_sample_zero():
    draws = pl.LazyFrame(
        {
            "model": ["m"] * 4,
            "dataset": ["d"] * 4,
            "question_id": ["q"] * 4,
            "trajectory": [0, 0, -1, -1],
            "k": [4, 4, 0, 0],
            "sample": [1, 0, 0, 1],
            "answer": ["8", "7", "1", "2"],
            "text": [" 8", " 7", " 1", " 2"],
            "n_generated": [2, 2, 2, 2],
            "finish_reason": ["stop", "length", "stop", "stop"],
            "cut": [0, 0, 0, 0],
        }
    )
    got = ee.first_probes(draws).collect().sort("k")
    assert got["dyn_answer"].to_list() == ["1", "7"] and got["dyn_tok"].to_list() == [3, 2]


def test_dynasor_interval_is_a_multiple_of_the_stride():
    cfg = {"sampling": {"strides": [10], "n_trajectories": 4}, "early_exit": {"deepconf_warmup": 1}}
    assert dynasor_interval(cfg) == 40  # Dynasor's 32, rounded up to the stride
    cfg["early_exit"]["dynasor_interval"] = 20
    check_early_exit(cfg)
    cfg["early_exit"]["dynasor_interval"] = 32
    with pytest.raises(ConfigError, match="dynasor_interval: 32 is not a multiple of the main stride 10"):
        check_early_exit(cfg)
    assert math.isclose(dynasor_interval({"sampling": {"strides": [32]}, "early_exit": {}}), 32)
