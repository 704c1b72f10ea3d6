"""The vLLM backend's adapter, against doubles that follow vLLM's source (tests/fakes.py; vllm is
not installed here): request building, per-sample requests and seeds, the prefill ledger, stop
handling, top-k entropy of the processed distribution, context checks, finish reasons."""

import math
import sys
import types

import pytest
from fakes import (
    EOS,
    SCRIPT,
    CompletionOutput,
    FakeLLM,
    Logprob,
    RequestOutput,
    SamplingParams,
    ScriptedLLM,
    SeededLLM,
    position_logprobs,
    vllm_backend,
)

from siaflow.backends import Decoding, Request, make_backend
from siaflow.backends.vllm_backend import (
    LOGPROBS_MODE,
    count_work,
    marker_stops,
    parse_completion,
    sample_seed,
    sampling_args,
    topk_confidence,
    topk_entropy,
)

QUESTION = tuple(ord(c) for c in "Q?\n")


def _completion(token_ids, finish_reason, logprobs=None, stop_reason=None):
    return CompletionOutput(index=0, text="", token_ids=token_ids, cumulative_logprob=None, logprobs=logprobs,
                            finish_reason=finish_reason, stop_reason=stop_reason)


def test_engine_records_the_processed_distribution(monkeypatch):
    """Point 1: vLLM's default logprobs_mode ("raw_logprobs") returns the temperature-1 distribution;
    the engine must be built with "processed_logprobs" (temperature and top-p applied)."""
    built = {}

    class LLM:  # vllm/entrypoints/llm.py: LLM(model, ..., **kwargs) -> EngineArgs
        def __init__(self, **kwargs):
            built.update(kwargs)
            self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=2048))

        def get_tokenizer(self):
            return types.SimpleNamespace(eos_token_id=EOS)

    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = LLM, SamplingParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    b = make_backend("vllm", "some/model", batch_rows=64, share_rows=True)  # options vLLM does not take are dropped
    assert built["logprobs_mode"] == LOGPROBS_MODE == "processed_logprobs" and built["enable_prefix_caching"]
    assert b.max_context == 2048 and b.info.extra["logprobs_mode"] == "processed_logprobs"


def test_vllm_is_imported_only_when_chosen():
    assert "vllm" not in sys.modules
    with pytest.raises(ImportError, match="backend: vllm"):
        make_backend("vllm", "some/model")


def test_topk_entropy_uses_the_top_k_only():
    """Point 3: vLLM adds the sampled token with its own rank when it is outside the top k, so a
    step has k or k + 1 entries; the entropy must come from the ranks <= k either way."""
    lps = [math.log(p) for p in (0.5, 0.25, 0.125, 0.0625, 0.0625)]
    inside, outside = position_logprobs(lps, 1, k=2), position_logprobs(lps, 4, k=2)
    assert len(inside) == 2 and len(outside) == 3 and outside[4].rank == 4
    want = -(0.5 * math.log(0.5) + 0.25 * math.log(0.25) + 0.25 * math.log(0.25))  # top 2 + remainder
    assert topk_entropy(inside, k=2) == pytest.approx(want)
    assert topk_entropy(outside, k=2) == pytest.approx(want)
    assert topk_entropy({5: Logprob(0.0, rank=1)}, k=1) == pytest.approx(0.0)  # all the mass in the top k
    # the sampled token's log-prob is read from its own entry, inside the top k or not
    g = parse_completion(_completion([4, EOS], "stop", [outside, position_logprobs(lps, 0, k=2)], None),
                         stop_token_ids=(EOS,), token_stats=True, k=2)
    assert g.token_ids == [4] and g.logprobs == [pytest.approx(math.log(0.0625))] and g.entropies == [pytest.approx(want)]
    # DeepConf's confidence from the same top-k entries: -(log .5 + log .25) / 2
    assert g.confidence == [pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)]
    assert topk_confidence({1: Logprob(math.log(0.8), rank=1), 2: Logprob(-math.inf, rank=2)}, k=2) == \
        pytest.approx(-math.log(0.8))  # a token outside the nucleus (-inf) does not count


def test_each_sample_is_its_own_request_with_its_keys_seed():
    """Point 5: vLLM seeds child i of an n-sample request with seed + i, so a sample's stream
    depended on its position in the request. Each sample is now an n = 1 request seeded by its
    own key: the same key draws the same tokens whatever it is grouped with."""
    b = vllm_backend(SeededLLM())
    dec = Decoding(max_new_tokens=6)
    a = b.generate([Request((1, 2, 3), (11, 22))], dec)
    c = b.generate([Request((1, 2, 3), (33, 22, 44)), Request((1, 2, 3), (11,))], dec)
    assert a[0][1].token_ids == c[0][1].token_ids and a[0][0].token_ids == c[1][0].token_ids
    assert a[0][0].token_ids != a[0][1].token_ids
    assert all(sp.n == 1 for call in b.llm.calls for _, sp in call)
    assert [sp.seed for _, sp in b.llm.calls[0]] == [sample_seed(11), sample_seed(22)]


def test_prefill_ledger_is_exact_with_a_prefix_cache():
    """Point 4: with n > 1 vLLM reports one child's num_cached_tokens for the whole request; per-
    sample requests make the ledger equal to the prompt tokens the engine really computed."""
    b = vllm_backend(SeededLLM())
    prompt = tuple(range(1, 11))  # 10 tokens: two full blocks of 4 can be cached, the last token never
    b.generate([Request(prompt, (1, 2, 3)), Request(prompt + (5, 6), (4, 5))], Decoding(max_new_tokens=3))
    assert b.stats["prefill_tokens"] == b.llm.prefill_computed == 10 + 2 + 2 + (12 - 8) * 2
    assert b.stats["decoded_tokens"] == 5 * 3


def test_no_detokenization_without_stop_strings():
    """Point 6: the adapter never reads CompletionOutput.text or Logprob.decoded_token; vLLM only
    needs detokenisation for stop strings (it rejects stop strings without it)."""
    args = sampling_args(Decoding(), seed=1, max_tokens=5, stop_token_ids=(EOS,), logprobs=5)
    assert args["detokenize"] is False and "stop" not in args
    SamplingParams(**args)
    with_stop = sampling_args(Decoding(), seed=1, max_tokens=5, stop_token_ids=(EOS,), stop=["####"])
    assert with_stop["detokenize"] is True and with_stop["include_stop_str_in_output"] is True
    SamplingParams(**with_stop)
    b = vllm_backend(ScriptedLLM())
    b.generate([Request(QUESTION, (1,))], Decoding(max_new_tokens=200), token_stats=True)
    b.generate([Request(QUESTION, (1,), answer_start=3)], Decoding(max_new_tokens=200),
               answer_final=lambda t: "#### 7\n" in t)
    plain, watched = b.llm.calls[0][0][1], b.llm.calls[1][0][1]
    assert plain.detokenize is False and not plain.stop
    assert watched.detokenize is True and watched.stop == ["####"]


def test_prompts_longer_than_the_context_are_reported_before_submitting():
    """Point 8: vLLM rejects a whole batch for one prompt over max_model_len; the backend names the
    prompt first, and run_rollouts names the question."""
    import polars as pl

    from siaflow.rollouts import run_rollouts

    b = vllm_backend(SeededLLM(max_model_len=8))
    with pytest.raises(ValueError, match="prompt of 9 tokens.*context of 8"):
        b.generate([Request(tuple(range(1, 5)), (1,)), Request(tuple(range(1, 10)), (2,))], Decoding())
    assert b.llm.calls == []
    questions = pl.DataFrame({"question_id": ["short", "long"], "gold": ["1", "2"]})
    with pytest.raises(ValueError, match="question long.*9 tokens.*8"):
        run_rollouts(b, questions, ["a", "b"], prompt_ids=[[1, 2], list(range(1, 10))], decoding=Decoding(),
                     n_trajectories=1, seed=0, extract=str)
    # a prompt that fits asks for no more than the context leaves
    out = b.generate([Request(tuple(range(1, 6)), (1,))], Decoding(max_new_tokens=50))
    assert b.llm.calls[-1][0][1].max_tokens == 3 and len(out[0][0].token_ids) == 3


def test_parse_stop_drops_the_stop_token():
    g = parse_completion(_completion([5, 6, EOS], "stop"), stop_token_ids=(EOS,), token_stats=False)
    assert g.token_ids == [5, 6] and g.finish_reason == "stop"
    g = parse_completion(_completion([5, 6, 7], "length"), stop_token_ids=(EOS,), token_stats=False)
    assert g.token_ids == [5, 6, 7] and g.finish_reason == "length"
    with pytest.raises(ValueError, match="abort"):
        parse_completion(_completion([5], "abort"), stop_token_ids=(EOS,), token_stats=False)
    with pytest.raises(ValueError, match="logprobs"):
        parse_completion(_completion([5], "length"), stop_token_ids=(EOS,), token_stats=True)


def test_generate_maps_outputs_back_to_requests():
    """result[i][j] is request i's sample j; the work counts are the engine's."""
    class Counting(FakeLLM):
        def next_logprobs(self, token_ids, params):
            return [0.0 if t == EOS else -math.inf for t in range(200)] if len(token_ids) > 3 else \
                [0.0 if t == 100 + len(token_ids) else -math.inf for t in range(200)]

    b = vllm_backend(Counting())
    out = b.generate([Request((1,), (1, 2)), Request((1, 3), (3,))], Decoding())
    assert [[g.token_ids for g in gs] for gs in out] == [[[101, 102, 103], [101, 102, 103]], [[102, 103]]]
    assert b.stats == {"prefill_tokens": b.llm.prefill_computed, "decoded_tokens": 4 + 4 + 3}


def test_work_counts_skip_prefix_cached_prompt_tokens():
    stats = {"prefill_tokens": 0, "decoded_tokens": 0}
    outs = [RequestOutput("0", None, [1, 2, 3, 4], None, [_completion([5, EOS], "stop")], True, num_cached_tokens=3),
            RequestOutput("1", None, [1, 2], None, [_completion([EOS], "stop")], True)]
    count_work(stats, [4, 2], outs)
    assert stats == {"prefill_tokens": 1 + 2, "decoded_tokens": 2 + 1}


def test_continuations_stop_at_the_settled_answer_in_rounds_of_stop_strings():
    from siaflow.answers import answer_is_final, extract_answer

    def final(text):
        return answer_is_final(text, "numeric")

    b = vllm_backend(ScriptedLLM())
    cut = {"before": SCRIPT.index("3 +"), "inside the marker": SCRIPT.index("#### 7") + 3, "after": SCRIPT.index("that")}
    reqs = [Request(QUESTION + tuple(ord(c) for c in SCRIPT[3:k]), (3 * n, 3 * n + 1, 3 * n + 2), answer_start=3)
            for n, k in enumerate(cut.values())]
    reqs.append(Request(QUESTION, (9,)))  # no answer start (a rollout): runs to EOS
    before, on_line, after, rollout = b.generate(reqs, Decoding(max_new_tokens=200), answer_final=final)
    for gs, k in zip((before, on_line), (cut["before"], cut["inside the marker"])):
        for g in gs:
            text = SCRIPT[3:k] + "".join(map(chr, g.token_ids))
            assert g.finish_reason == "answer" and text.endswith("#### 7\n")   # stopped at the line's end
            assert extract_answer(text, "numeric") == extract_answer(SCRIPT, "numeric") == "7"
    assert [(g.token_ids, g.finish_reason) for g in after] == [([], "answer")] * 3  # the prefix settles it
    assert rollout[0].finish_reason == "stop" and "".join(map(chr, rollout[0].token_ids)) == SCRIPT[3:]
    # round 1: one request per sample, stopping at the marker (a prefix ending in "###" also at the
    # marker's last "#": vLLM matches stop strings in the generated text only); round 2: at the newline
    first, second = b.llm.calls
    assert [sp.stop for _, sp in first] == [["####"]] * 3 + [["####", "#"]] * 3 + [None]
    assert [sp.stop for _, sp in second] == [["\n"]] * 6
    assert len({sp.seed for _, sp in first + second}) == 13  # every sample and round its own seed
    # decoded: 3 x "3 + 4 = 7\n####" + 3 x "#" (round 1), 6 x " 7\n" (round 2), the rollout and EOS
    assert b.stats["decoded_tokens"] == (3 * len("3 + 4 = 7\n####") + 3 * len("#") + 6 * len(" 7\n")
                                         + len(SCRIPT) - 3 + 1)


def test_continuations_that_never_settle_run_to_their_limit():
    from siaflow.answers import answer_is_final

    b = vllm_backend(ScriptedLLM())
    out = b.generate([Request(QUESTION, (1,), answer_start=3)], Decoding(max_new_tokens=10),
                     answer_final=lambda t: answer_is_final(t, "numeric"))
    assert [(len(g.token_ids), g.finish_reason) for g in out[0]] == [(10, "length")]


def test_marker_stops():
    assert marker_stops("so 3 + 4 = 7\n") == ["####"]
    assert marker_stops("so 7\n##") == ["####", "##"]
    assert marker_stops("so 7\n###") == ["####", "#"]


def test_rollouts_with_token_stats_stop_at_their_answer_too():
    """A rollout passes token_stats and answer_final together: it ends at its settled answer, with
    one log-prob and one entropy per kept token, accumulated over the rounds."""
    from siaflow.answers import answer_is_final

    b = vllm_backend(ScriptedLLM())
    out = b.generate([Request(QUESTION, (1, 2), answer_start=3)], Decoding(max_new_tokens=200),
                     token_stats=True, answer_final=lambda t: answer_is_final(t, "numeric"))
    want_h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    for g in out[0]:
        assert g.finish_reason == "answer" and "".join(map(chr, g.token_ids)).endswith("#### 7\n")
        assert len(g.logprobs) == len(g.entropies) == len(g.token_ids)
        assert g.logprobs[0] == pytest.approx(math.log(0.75)) and g.entropies[0] == pytest.approx(want_h)


def test_a_prompt_stop_string_ends_the_sample_and_is_cut():
    b = vllm_backend(ScriptedLLM())
    out = b.generate([Request(QUESTION, (1,), answer_start=3, stop=("that is",))], Decoding(max_new_tokens=200),
                     token_stats=True)
    g = out[0][0]
    assert g.finish_reason == "stop_sequence" and g.cut == len("that is")
    assert "".join(map(chr, g.token_ids)) == SCRIPT[3:SCRIPT.index("that is")]
    assert len(g.logprobs) == len(g.token_ids) and g.n_sampled == SCRIPT.index("that is") + len("that is") - 3
    assert b.llm.calls[0][0][1].stop == ["that is"]


def test_request_budgets_reach_vllm_as_max_tokens():
    b = vllm_backend(SeededLLM())
    b.generate([Request((1, 5), (11,), max_new_tokens=7), Request((1, 5), (12,))], Decoding(max_new_tokens=50))
    assert [sp.max_tokens for _, sp in b.llm.calls[0]] == [7, 50]
    out = b.generate([Request((ord("Q"), ord("?")), (1, 2), max_new_tokens=0)], Decoding(max_new_tokens=50))
    assert [(g.token_ids, g.finish_reason) for g in out[0]] == [([], "length")] * 2 and len(b.llm.calls) == 1


def test_vllm_pins_agree():
    """Point 2: the gpu extra allows only engines with processed log-probabilities (>= 0.10.2), the
    conda env pins a version inside it with the torch that version requires (vllm 0.11.0's
    metadata: torch==2.8.0), and both keep transformers below 5, which vLLM 0.11 breaks with."""
    import tomllib
    from pathlib import Path

    import yaml
    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parents[1]
    extra = {r.name: r.specifier for r in map(Requirement, tomllib.loads(
        (root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"])}
    env = yaml.safe_load((root / "workflow/envs/vllm.yaml").read_text())
    pins = {r.name: r.specifier for r in (Requirement(x.split("#")[0].strip()) for d in env["dependencies"]
                                         if isinstance(d, dict) for x in d["pip"] if not x.startswith("-"))}
    assert "0.10.1" not in extra["vllm"] and "0.10.2" in extra["vllm"]
    (vllm,) = [s.version for s in pins["vllm"] if s.operator == "=="]
    assert vllm in extra["vllm"]
    torch_for = {"0.10.2": "2.8.0", "0.11.0": "2.8.0", "0.11.1": "2.9.0", "0.11.2": "2.9.0"}
    assert pins["torch"] == Requirement(f"torch=={torch_for[vllm]}").specifier
    assert "5.0.0" not in extra["transformers"] and "4.56.0" in extra["transformers"]
    (transformers,) = [s.version for s in pins["transformers"] if s.operator == "=="]
    assert transformers in extra["transformers"]
