"""The per-token statistics (siaflow.generation.sampling.distribution_stats) against the authors'
definitions, reimplemented here in numpy from their code: DeepConf's ``compute_confidence``
(facebookresearch/deepconf, deepconf/utils.py) on the log-probability dict vLLM returns by default
(raw_logprobs: top k and the sampled token), Self-Certainty's ``confidence_logits``
(backprop07/Self-Certainty, src/confidence_list.py); the whole-vocabulary entropy beside the
nucleus one; vLLM's processed log-probabilities leaving the raw statistics null; and the loud stop
of a score whose statistic the rollouts lack."""

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest
import torch

from siaflow.generation.backends.vllm_protocol import parse_completion
from siaflow.generation.rollouts import ROLLOUT_TYPES, TOKEN_STATS
from siaflow.generation.sampling import distribution_stats
from siaflow.selection.edis import EdisParams, trajectory_scores
from siaflow.selection.selectors import pool_scores
from siaflow.selection.token_stats import require_token_stats


@dataclass
class Logprob:  # vllm/logprobs.py: Logprob
    logprob: float
    rank: int | None = None


def vllm_raw_logprobs(logits: np.ndarray, token: int, k: int) -> dict:
    """What vLLM returns for one step with ``logprobs=k`` in its default raw_logprobs mode: the log
    softmax of the logits before temperature and top-p, for the top k and the sampled token
    (vllm/v1/sample/sampler.py: gather_logprobs; a dict keyed by token id)."""
    lp = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    top = np.argsort(-lp, kind="stable")[:k]
    out = {int(t): Logprob(float(lp[t]), r + 1) for r, t in enumerate(top)}
    out.setdefault(token, Logprob(float(lp[token]), int((lp > lp[token]).sum()) + 1))
    return out


def deepconf_compute_confidence(logprobs: list[dict]) -> list[float]:
    """deepconf/utils.py: compute_confidence, without its rounding to 3 decimals."""
    return [-np.mean([lp.logprob for lp in step.values()]) for step in logprobs if step]


def self_certainty_reference(logits: np.ndarray) -> float:
    """src/confidence_list.py: confidence_logits, -1/V * sum(log_softmax(logits) + log V)."""
    V = len(logits)
    logprob = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
    return float(-1 / V * np.sum(logprob + np.log(V)))


def stats(logits, token, *, temperature=0.7, top_p=0.95, k=20) -> dict:
    out = distribution_stats(
        torch.tensor(np.asarray(logits)[None], dtype=torch.float32),
        torch.tensor([token]),
        temperature=temperature,
        top_p=top_p,
        k=k,
    )
    return {name: v.item() for name, v in out.items()}


def top_and_uniform(p_top: float, V: int = 1000) -> np.ndarray:
    """The issue's hand-made row: one token of probability p_top, the rest uniform (as logits)."""
    return np.log(np.array([p_top] + [(1 - p_top) / (V - 1)] * (V - 1)))


def zipf(V: int = 10000, s: float = 1.2) -> np.ndarray:
    p = 1 / np.arange(1, V + 1) ** s
    return np.log(p / p.sum())


@pytest.mark.parametrize("p_top,want", [(0.99, 10.94), (0.5, 7.25)])
def test_deepconf_confidence_of_the_issues_rows(p_top, want):
    """V = 1000, k = 20, top-p 0.95, T = 0.7: the nucleus is the top token alone, so a confidence of
    the nucleus would be 0 where the model is surest; DeepConf's, of the raw top 20, is not."""
    logits = top_and_uniform(p_top)
    got = stats(logits, 0)
    ref = deepconf_compute_confidence([vllm_raw_logprobs(logits, 0, 20)])[0]
    assert got["confidence"] == pytest.approx(ref, rel=1e-5) and round(ref, 2) == want
    assert got["entropies"] == pytest.approx(0.0, abs=1e-6)  # the nucleus drawn from: one token


def test_deepconf_confidence_counts_a_sampled_token_outside_the_top_k():
    """vLLM adds the sampled token to the top k when it is not among them: k + 1 entries."""
    logits = zipf(1000)
    for token in (3, 500):
        step = vllm_raw_logprobs(logits, token, 20)
        assert len(step) == (20 if token < 20 else 21)
        ref = deepconf_compute_confidence([step])[0]
        assert stats(logits, token, top_p=1.0)["confidence"] == pytest.approx(ref, rel=1e-5)


def test_self_certainty_is_kang_et_als_of_the_raw_logits():
    rng = np.random.default_rng(0)
    for logits in (top_and_uniform(0.99), zipf(1000), rng.normal(size=300) * 3):
        got = stats(logits, 0)["self_certainty"]
        assert got == pytest.approx(self_certainty_reference(logits), rel=1e-4, abs=1e-4)


def test_self_certainty_and_confidence_do_not_depend_on_the_decoding():
    logits = zipf(2000)
    a, b = stats(logits, 7, temperature=0.5, top_p=0.9), stats(logits, 7, temperature=1.3, top_p=1.0)
    assert a["self_certainty"] == pytest.approx(b["self_certainty"], rel=1e-6)
    assert a["confidence"] == pytest.approx(b["confidence"], rel=1e-6)
    assert a["entropies"] < b["entropies"] and a["entropies_full"] < b["entropies_full"]


def test_full_entropy_is_above_the_nucleus_one_on_a_zipf_row():
    """Top-p 0.95 takes ~0.4 nats off a Zipf-shaped distribution (V = 10^4, exponent 1.2)."""
    logits = zipf()
    s = stats(logits, 0, temperature=1.0, top_p=0.95)
    p = np.exp(logits)
    assert s["entropies_full"] == pytest.approx(float(-(p * logits).sum()), rel=1e-4)
    assert 0.3 < s["entropies_full"] - s["entropies"] < 0.5
    same = stats(logits, 0, temperature=1.0, top_p=1.0)
    assert same["entropies_full"] == pytest.approx(same["entropies"], rel=1e-6)


def test_vllm_processed_logprobs_leave_the_raw_statistics_null():
    """vLLM's processed log-probabilities give the sampled token's and a top-k entropy; the rest is
    None, a null list in the rollouts (the scoring pass fills it)."""
    step = {4: Logprob(math.log(0.6), 1), 5: Logprob(math.log(0.4), 2)}

    @dataclass
    class Completion:
        token_ids: list
        logprobs: list
        finish_reason: str = "length"

    g = parse_completion(Completion([4, 5], [step, step]), stop_token_ids=(0,), token_stats=True, k=2)
    assert g.logprobs == pytest.approx([math.log(0.6), math.log(0.4)]) and len(g.entropies) == 2
    assert g.entropies_full is None and g.self_certainty is None and g.confidence is None
    row = {c: None for c in TOKEN_STATS} | {"token_logprobs": g.logprobs, "token_entropy": g.entropies}
    df = pl.DataFrame([row], schema_overrides={c: ROLLOUT_TYPES[c] for c in TOKEN_STATS})
    assert df["token_confidence"].null_count() == 1 and df.schema["token_confidence"] == pl.List(pl.Float32)


def _rollouts(**stats) -> pl.DataFrame:
    base = {
        "model": ["m", "m", "m"],
        "dataset": ["d", "d", "d"],
        "question_id": ["q1", "q1", "q1"],
        "trajectory": [0, 1, 2],
        "answer": ["1", "2", None],
        "gold": ["1", "1", "1"],
        "correct": [True, False, False],
        "token_ids": [[1, 2], [3, 4], []],
        "token_entropy": [[0.1, 0.2], [0.3, 0.4], []],
        "token_entropy_full": [[0.5, 0.6], [0.7, 0.8], None],
        "token_self_certainty": [[1.0, 2.0], [3.0, 4.0], []],
        "token_confidence": [[5.0, 6.0], [7.0, 8.0], []],
    }
    return pl.DataFrame(base | stats, schema_overrides={c: pl.List(pl.Float64) for c in TOKEN_STATS[1:]})


def test_edis_reads_the_token_entropy_the_config_names():
    roll = _rollouts()
    sampled = trajectory_scores(roll, EdisParams())
    full = trajectory_scores(roll, EdisParams(token_entropy="full"))
    assert sampled["mean_entropy"][0] == pytest.approx(0.15) and full["mean_entropy"][0] == pytest.approx(0.55)
    assert full["self_certainty"][1] == pytest.approx(3.5)
    with pytest.raises(ValueError, match="edis.token_entropy"):
        EdisParams(token_entropy="nucleus")


@pytest.mark.parametrize(
    "column,call",
    [
        ("token_self_certainty", lambda r: trajectory_scores(r, EdisParams())),
        ("token_entropy_full", lambda r: trajectory_scores(r, EdisParams(token_entropy="full"), source="roll.parquet")),
        ("token_confidence", lambda r: require_token_stats(r, ["token_confidence"], needed_by="DeepConf")),
    ],
)
def test_a_score_whose_statistic_is_null_or_missing_stops_naming_it(column, call):
    """Null for responses with tokens (vLLM without the scoring pass), or no column at all: a
    loud stop naming the statistic, the model and how to get it; never a silent skip."""
    call(_rollouts())  # complete (an empty response may have none)
    with pytest.raises(ValueError, match=rf"\({column}\).*2 of 3 responses.*m/d.*exact_token_stats: true"):
        call(_rollouts(**{column: [None, None, []]}))
    with pytest.raises(ValueError, match=rf"no {column} column.*--forcerun rollouts"):
        call(_rollouts().drop(column))


def test_pool_scores_stop_without_deepconf_confidences():
    roll = _rollouts(token_confidence=[None, None, []])
    ent = pl.LazyFrame({"model": [], "dataset": [], "question_id": [], "trajectory": [], "k": [], "T": []})
    with pytest.raises(ValueError, match="DeepConf's token confidence .token_confidence., which DeepConf needs"):
        pool_scores(roll, ent, n_trajectories=3, edis_params=EdisParams(), window=2, tail=1, bottom_fraction=0.1)
