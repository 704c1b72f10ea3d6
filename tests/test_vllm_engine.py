"""The vLLM backend on the real engine (vLLM's CPU build, ``make vllm-env``), on SmolLM2-135M-Instruct:
what it records against an independent teacher-forced reference, where its responses end, its
prefill ledger against vLLM's own counters, and that its samples are reproducible and resumable.

One engine for the module (it starts in about a minute on 2 cores); runs in .venv-vllm
(``make test`` runs it there); skipped where vllm is not importable, except under
SIAFLOW_REQUIRE_VLLM=1 (CI), where that fails.
"""

from contextlib import contextmanager

import polars as pl
import pytest
from vllm_support import ENGINE, quantile, reference_stats, require_vllm, smollm2_dir, smollm2_engine, smollm2_rollouts

from siaflow.answers import ResponseRules
from siaflow.generation.backends import Decoding, EngineSettings, make_backend, open_backend
from siaflow.generation.backends.base import FINISH_REASONS, TextWatch
from siaflow.generation.rollouts import continuation_prefixes, continue_prefixes, rescore_rollouts, run_continuations
from siaflow.generation.settings import DrawSettings

pytestmark = pytest.mark.vllm
RAW_STATS = ("token_entropy_full", "token_self_certainty", "token_confidence")
DECODINGS = {
    "T0.7-p0.95": Decoding(0.7, 0.95, 64),
    "T1-p1": Decoding(1.0, 1.0, 64),
    "T0.5-p0.9": Decoding(0.5, 0.9, 64),
}


@contextmanager
def node_lost_at_call(engine, n: int):
    """The engine's ``n``-th generate call raises "node lost" (a job killed mid-shard); the body of
    the ``with`` must raise it, and the engine is whole again afterwards."""
    calls, generate = {"n": 0}, engine.generate

    def dies(*a, **k):
        calls["n"] += 1
        if calls["n"] == n:
            raise RuntimeError("node lost")
        return generate(*a, **k)

    engine.generate = dies
    try:
        with pytest.raises(RuntimeError, match="node lost"):
            yield
    finally:
        engine.generate = generate


@pytest.fixture(scope="module")
def engine():
    require_vllm()
    b = smollm2_engine()
    yield b
    b.close()


@pytest.fixture(scope="module")
def hf():
    import torch

    torch.set_num_threads(2)
    return make_backend("transformers", smollm2_dir())


@pytest.fixture(scope="module")
def runs(engine):
    """Rollouts of the chat prompt at each decoding, with vLLM's own top-k statistics."""
    return {name: smollm2_rollouts(engine, d)[0] for name, d in DECODINGS.items()}


@pytest.mark.parametrize("name", list(DECODINGS))
def test_processed_logprobs_equal_the_reference_on_vllms_own_tokens(runs, hf, name):
    d = DECODINGS[name]
    diffs, outside = [], 0
    for r in runs[name].iter_rows(named=True):
        ref = reference_stats(hf.model, r["prompt_ids"], r["token_ids"], d.temperature, d.top_p)
        for got, (lp, *_) in zip(r["token_logprobs"], ref):
            if lp == float("-inf"):  # vLLM kept a token the reference's nucleus leaves out (rounding)
                outside += 1
            else:
                diffs.append(abs(got - lp))
    print(f"{name}: {len(diffs)} tokens, max |logprob - reference| {max(diffs):.2e}, outside nucleus {outside}")
    assert len(diffs) > 100 and outside <= 0.01 * len(diffs)
    assert max(diffs) < 1e-2 and quantile(diffs, 0.99) < 5e-4


@pytest.mark.parametrize("name", ["T0.7-p0.95", "T1-p1"])
def test_entropies_and_self_certainty_are_exact_after_the_scoring_pass(runs, hf, name):
    """vLLM's top-k entropy is a lower bound, far off where the nucleus is wide, and it records no
    statistic of the raw logits; the scoring pass (one teacher-forced transformers pass per
    response) gives every statistic within 0.01 at the 99th percentile."""
    d = DECODINGS[name]
    assert all(runs[name][c].null_count() == runs[name].height for c in RAW_STATS)  # vLLM: null
    scored, check = rescore_rollouts(hf, runs[name], d)
    errors, topk = {c: [] for c in ("token_entropy", *RAW_STATS)}, []
    for raw, r in zip(runs[name].iter_rows(named=True), scored.iter_rows(named=True)):
        ref = reference_stats(hf.model, r["prompt_ids"], r["token_ids"], d.temperature, d.top_p)
        for t, (_, e_ref, c_ref, f_ref, conf_ref) in enumerate(ref):
            want = {"token_entropy": e_ref, "token_self_certainty": c_ref}
            want |= {"token_entropy_full": f_ref, "token_confidence": conf_ref}
            for c, v in want.items():
                errors[c].append(abs(r[c][t] - v))
            topk.append(abs(raw["token_entropy"][t] - e_ref))
    p99 = {c: quantile(e, 0.99) for c, e in errors.items()}
    print(
        f"{name}: scored p99 errors {p99}; top-20 entropy p99 error {quantile(topk, 0.99):.3f} (max {max(topk):.3f}); {check}"
    )
    assert max(p99.values()) <= 0.01
    assert scored["token_ids"].to_list() == runs[name]["token_ids"].to_list()
    assert check["tokens"] == len(topk) and check["max_abs_logprob_diff"] < 1e-2


@pytest.mark.parametrize(
    "dataset,template", [("gsm8k", "chat_math"), ("gsm8k", "fewshot_math"), ("arc-mini", "fewshot_mc")]
)
def test_every_rollout_ends_where_the_transformers_backend_would_end_it(engine, dataset, template):
    """T semantics on real outputs: an "answer" rollout ends at the token that settles its answer
    (no earlier token does), a "stop_sequence" one where the prompt's stop string begins (its
    tokens cut), "stop" at EOS, "length" at the budget; the watch the transformers backend applies
    token by token, replayed over the tokens vLLM returned, ends each one at the same token."""
    d = Decoding(0.7, 0.95, 96)
    df, rules = smollm2_rollouts(engine, d, dataset=dataset, template=template, n_q=6, n=4)
    reasons = df["finish_reason"].value_counts()
    print(dict(reasons.iter_rows()))
    assert set(df["finish_reason"]) <= set(FINISH_REASONS)
    for r in df.iter_rows(named=True):
        watch = TextWatch(engine.decode, [], answer_final=rules.answer_final, stop=rules.stop)
        ends = [t for t, x in enumerate(r["token_ids"]) if watch.push(x) is not None]
        if r["finish_reason"] == "answer":
            assert ends == [r["T"] - 1], (r["text"], ends)
        else:
            assert ends == [], (r["finish_reason"], r["text"], ends)
        if r["finish_reason"] == "length":
            assert r["T"] == d.max_new_tokens
        if r["finish_reason"] == "stop":
            assert r["T"] < d.max_new_tokens and engine.eos_token_ids[0] not in r["token_ids"]
        if r["finish_reason"] == "stop_sequence":
            assert r["cut"] >= 1 and not any(s in r["text"] for s in rules.stop)
    if template == "fewshot_math":
        assert {"answer", "stop_sequence"} & set(df["finish_reason"]), "no answer or stop string exercised"


def test_the_prefill_ledger_agrees_with_vllms_counters_and_checkpoints_hit_the_prefix_cache(engine, runs):
    roll = runs["T0.7-p0.95"].filter(pl.col("trajectory") < 2)
    prefixes = list(continuation_prefixes(roll, stride=16, seed=0, variant="original"))
    before_stats, before = dict(engine.stats), engine.engine_counters()
    df, ledger = continue_prefixes(
        engine, prefixes, draw=DrawSettings(Decoding(0.7, 0.95, 64), 0, 4), rules=ResponseRules(lambda s: s)
    )
    after = engine.engine_counters()
    computed = (after["prompt_tokens"] - before["prompt_tokens"]) - (
        after["prefix_cache_hits"] - before["prefix_cache_hits"]
    )
    assert ledger["prefill_tokens"] == engine.stats["prefill_tokens"] - before_stats["prefill_tokens"] == computed
    assert ledger["decoded_tokens"] == after["generation_tokens"] - before["generation_tokens"]
    # the K continuations of one checkpoint share its prompt: after the first, each computes only
    # the part of its last, partial KV block (vLLM caches full blocks of 32 tokens here)
    for q, j, k, prefix, prompt_ids in prefixes[1:4]:
        n, was = len(prompt_ids) + len(prefix), engine.stats["prefill_tokens"]
        continue_prefixes(
            engine,
            [(q, j, k, prefix, prompt_ids)],
            draw=DrawSettings(Decoding(0.7, 0.95, 8), 1, 4),
            rules=ResponseRules(lambda s: s),
        )
        tail = n - 32 * ((n - 1) // 32)
        assert engine.stats["prefill_tokens"] - was <= n + 3 * tail, (n, engine.stats["prefill_tokens"] - was)
    assert df.height == 4 * len(prefixes)


def test_the_same_seed_gives_the_same_tokens_and_a_resumed_shard_equals_an_uninterrupted_one(engine, runs, tmp_path):
    again, _ = smollm2_rollouts(engine, DECODINGS["T0.7-p0.95"])
    assert again["token_ids"].to_list() == runs["T0.7-p0.95"]["token_ids"].to_list()
    # the same tokens; their log-probabilities to rounding (the prefix cache is warm now: cached and
    # recomputed KV blocks differ in their last bits)
    for x, y in zip(again["token_logprobs"].to_list(), runs["T0.7-p0.95"]["token_logprobs"].to_list()):
        assert x == pytest.approx(y, abs=1e-4)
    roll = runs["T0.7-p0.95"].filter(pl.col("trajectory") < 2)
    draw = DrawSettings(Decoding(0.7, 0.95, 64), seed=0, n_samples=3, stride=16)
    kw = dict(draw=draw, rules=ResponseRules(lambda s: s[-8:]), part_prefixes=3)
    whole, _ = run_continuations(engine, roll, output=tmp_path / "whole.parquet", **kw)
    with node_lost_at_call(engine, 3):  # the third part
        run_continuations(engine, roll, output=tmp_path / "resumed.parquet", **kw)
    parts = sorted((tmp_path / "resumed.parquet.parts").glob("part-*.parquet"))
    assert len(parts) == 2
    resumed, _ = run_continuations(engine, roll, output=tmp_path / "resumed.parquet", **kw)
    assert resumed.equals(whole)


def test_a_samples_tokens_are_its_keys_whatever_it_is_grouped_with(engine):
    """Every sample is its own n = 1 request seeded by its stream key (vLLM would seed the children
    of an n-sample request seed + i): the same key draws the same tokens alone or among others."""
    from siaflow.generation.backends import Request

    _, ids = engine.encode_chat([{"role": "user", "content": "Name three colours."}])
    d = Decoding(0.8, 0.95, 24)
    alone = engine.generate([Request(tuple(ids), (7,))], d)[0][0].token_ids
    grouped = engine.generate([Request(tuple(ids), (3, 5, 7)), Request(tuple(ids[:-1]), (9,))], d)
    assert grouped[0][2].token_ids == alone
    assert len({tuple(g.token_ids) for g in grouped[0]}) == 3


def test_a_model_vllm_cannot_load_is_named(tmp_path):
    require_vllm()
    import json
    import shutil

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(RuntimeError, match="vLLM could not load model 'my-model' from .*broken"):
        open_backend(EngineSettings("vllm", str(broken), ENGINE, label="my-model"))
    # a directory from an older build_model, whose config still declares GGUF quantization
    old = tmp_path / "old-build"
    shutil.copytree(smollm2_dir(), old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "gguf", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
    (old / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="model 'smollm2-chat'.*declares GGUF quantization.*build_model"):
        open_backend(EngineSettings("vllm", str(old), ENGINE, label="smollm2-chat"))


def test_a_batch_larger_than_one_engine_step_samples_with_its_seeds(engine):
    """More prompt tokens than one engine step takes (vLLM's CPU default: 4096). Chunked, a seeded
    request's partial prefill makes the CPU engine fail ("CPU Generator does not use offset"); the
    backend prefills whole prompts there, and the samples keep their keys' tokens."""
    from siaflow.generation.backends import Request

    reqs = [Request(tuple(1000 + (7 * i + 13 * t) % 20000 for t in range(150)), (i,)) for i in range(40)]
    d = Decoding(0.8, 0.95, 4)
    out = engine.generate(reqs, d)
    assert sum(len(r.prompt_ids) for r in reqs) > 4096 and all(len(g[0].token_ids) >= 1 for g in out)
    assert engine.generate(reqs[5:6], d)[0][0].token_ids == out[5][0].token_ids


def test_adaptive_rounds_draw_a_fixed_runs_first_samples_and_a_killed_shard_resumes_to_them(engine, runs, tmp_path):
    """Adaptive sampling (issue 32) on the engine: a round is a batch of n = 1 requests keyed as a
    fixed-K run's, so every adaptive row is that run's row, and a shard killed between rounds
    resumes to the rows of an uninterrupted one. The answer is the response length's parity and the
    gold "0", so the gold is seen and a lax rule stops some checkpoints."""
    from siaflow.adaptive_stopping import AdaptiveSettings

    roll = runs["T0.7-p0.95"].filter(pl.col("trajectory") < 2).with_columns(gold=pl.lit("0"))
    lax = AdaptiveSettings(k_min=2, epsilon=1.5, delta=0.5, draws=50)
    rules = ResponseRules(lambda s: str(len(s) % 2))

    def draw(adaptive, **kw):
        d = DrawSettings(Decoding(0.7, 0.95, 32), seed=0, n_samples=4, stride=16, adaptive=adaptive)
        return run_continuations(engine, roll, draw=d, rules=rules, part_prefixes=4, **kw)

    fixed, _ = draw(None)
    whole, ledger = draw(lax, output=tmp_path / "whole.parquet")
    keys = ["question_id", "trajectory", "k", "sample"]
    assert whole.equals(fixed.join(whole.select(keys), on=keys, how="semi"))
    assert whole.filter(pl.col("sample") < 2).equals(fixed.filter(pl.col("sample") < 2))
    assert 0 < ledger["stopped_early"] and ledger["continuations"] == whole.height < fixed.height
    with node_lost_at_call(engine, 4):  # in the second part: a part is at most two rounds (K 2, then 4)
        draw(lax, output=tmp_path / "resumed.parquet")
    assert list((tmp_path / "resumed.parquet.parts").glob("part-*.parquet"))  # some parts were saved
    resumed, _ = draw(lax, output=tmp_path / "resumed.parquet")
    assert resumed.equals(whole)
