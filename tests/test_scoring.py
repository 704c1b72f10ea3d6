"""The exact scoring pass (siaflow.generation.backends.scoring) against the transformers backend's own
statistics: scoring the tokens it sampled gives back what it recorded while sampling, for
responses of different lengths in one padded batch, and an empty response."""

import pytest

from siaflow.generation.backends import Decoding, Request, make_backend
from siaflow.generation.backends.scoring import score_responses


@pytest.mark.parametrize("decoding", [Decoding(1.0, 1.0, 12), Decoding(0.7, 0.9, 12)])
def test_scoring_the_sampled_tokens_gives_back_the_sampled_statistics(tiny_model_dir, decoding):
    b = make_backend("transformers", tiny_model_dir, batch_rows=64)
    prompts = [b.encode("12+3="), b.encode("7-2=9+"), b.encode("1")]
    gens = b.generate([Request(tuple(p), (i, 100 + i)) for i, p in enumerate(prompts)], decoding, token_stats=True)
    # prompts and responses of different lengths in one batch (a response's first n tokens have the
    # statistics of its first n): the padding is exercised on both sides
    flat = [
        (p, g, max(1, len(g.token_ids) - 2 * i))
        for i, (p, g) in enumerate((p, g) for p, gs in zip(prompts, gens) for g in gs)
    ]
    assert len({n for *_, n in flat}) > 2
    scored = score_responses(
        b, [p for p, *_ in flat] + [prompts[0]], [g.token_ids[:n] for _, g, n in flat] + [[]], decoding, batch_tokens=60
    )
    for (_, g, n), s in zip(flat, scored):
        assert s.logprobs == pytest.approx(g.logprobs[:n], abs=1e-4)
        assert s.entropies == pytest.approx(g.entropies[:n], abs=1e-4)
        assert s.entropies_full == pytest.approx(g.entropies_full[:n], abs=1e-4)
        assert s.self_certainty == pytest.approx(g.self_certainty[:n], abs=1e-4)
        assert s.confidence == pytest.approx(g.confidence[:n], abs=1e-4)
    assert scored[-1].entropies == [] and scored[-1].logprobs == []


def test_rescoring_fills_the_statistics_a_processed_logprobs_engine_leaves_null(tiny_model_dir):
    """rollouts.rescore_rollouts on rollouts as vLLM leaves them (raw statistics null, a top-k
    entropy): every statistic column becomes the transformers backend's own, the tokens and the
    engine's log-probabilities are kept."""
    import polars as pl

    from siaflow.generation.backends.base import TOKEN_STAT_FIELDS
    from siaflow.generation.rollouts import ROLLOUT_TYPES, TOKEN_STATS, rescore_rollouts

    b = make_backend("transformers", tiny_model_dir, batch_rows=64)
    decoding = Decoding(0.7, 0.9, 10)
    prompt = b.encode("12+3=")
    gens = b.generate([Request(tuple(prompt), (1, 2, 3))], decoding, token_stats=True)[0]
    columns = dict(zip(TOKEN_STATS, TOKEN_STAT_FIELDS))
    vllm_like = pl.DataFrame(
        {
            "prompt_ids": [prompt] * len(gens),
            "token_ids": [g.token_ids for g in gens],
            "token_logprobs": [g.logprobs for g in gens],
            "token_entropy": [[0.0] * len(g.token_ids) for g in gens],  # a top-k bound, replaced
            **{c: [None] * len(gens) for c in TOKEN_STATS[2:]},
        },
        schema_overrides={c: ROLLOUT_TYPES[c] for c in TOKEN_STATS},
    )
    df, check = rescore_rollouts(b, vllm_like, decoding)
    assert check["tokens"] == sum(len(g.token_ids) for g in gens) and check["max_abs_logprob_diff"] < 1e-4
    for c, name in columns.items():
        for got, g in zip(df[c].to_list(), gens):
            assert got == pytest.approx(getattr(g, name), abs=1e-4), c
