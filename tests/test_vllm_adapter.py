"""The vLLM backend's adapter logic, on objects shaped like vLLM's outputs (vllm is not installed
here): request building, n > 1 fan-out, stop handling, top-k entropy and finish reasons."""

import math
from dataclasses import dataclass, field

import pytest
from fakes import EOS, SCRIPT, script_rest, vllm_backend

from siaflow.backends import Decoding, Request, make_backend
from siaflow.backends.vllm_backend import build_requests, parse_completion, request_seed, topk_entropy


@dataclass
class Logprob:  # vllm.logprobs.Logprob
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:  # vllm.outputs.CompletionOutput
    index: int
    token_ids: list
    finish_reason: str | None
    logprobs: list | None = None
    text: str = ""
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:  # vllm.outputs.RequestOutput
    prompt_token_ids: list
    outputs: list = field(default_factory=list)
    num_cached_tokens: int | None = None




def test_build_requests_token_prompts_and_fan_out():
    reqs = [Request((1, 5, 6), (11, 12, 13)), Request((1, 7), (21,))]
    prompts, params = build_requests(reqs, Decoding(temperature=0.7, top_p=0.9, max_new_tokens=50),
                                     stop_token_ids=(EOS,), logprobs=20)
    assert prompts == [{"prompt_token_ids": [1, 5, 6]}, {"prompt_token_ids": [1, 7]}]
    assert [p["n"] for p in params] == [3, 1]  # one call per request, n = K samples
    assert params[0] == {"n": 3, "temperature": 0.7, "top_p": 0.9, "max_tokens": 50, "seed": request_seed(reqs[0]),
                         "stop_token_ids": [EOS], "logprobs": 20}
    assert 0 <= params[0]["seed"] < 2**31 - 1 and params[0]["seed"] != params[1]["seed"]


def test_parse_stop_drops_the_stop_token():
    g = parse_completion(CompletionOutput(0, [5, 6, EOS], "stop", stop_reason=EOS), stop_token_ids=(EOS,), token_stats=False)
    assert g.token_ids == [5, 6] and g.finish_reason == "stop"
    g = parse_completion(CompletionOutput(0, [5, 6, 7], "length"), stop_token_ids=(EOS,), token_stats=False)
    assert g.token_ids == [5, 6, 7] and g.finish_reason == "length"


def test_unknown_finish_reason_is_an_error():
    with pytest.raises(ValueError, match="abort"):
        parse_completion(CompletionOutput(0, [5], "abort"), stop_token_ids=(EOS,), token_stats=False)


def test_topk_entropy_with_a_remainder_bucket():
    # top-2 of 0.5 and 0.25, remainder 0.25 as one bucket: H = 1.5 log 2
    step = {5: Logprob(math.log(0.5)), 6: Logprob(math.log(0.25))}
    assert topk_entropy(step) == pytest.approx(1.5 * math.log(2))
    # all the mass in the top k: the exact entropy
    assert topk_entropy({5: Logprob(0.0)}) == pytest.approx(0.0)


def test_parse_token_stats():
    steps = [{5: Logprob(math.log(0.5)), 9: Logprob(math.log(0.5))},
             {6: Logprob(math.log(0.9)), 9: Logprob(math.log(0.05))},
             {EOS: Logprob(math.log(0.99))}]
    g = parse_completion(CompletionOutput(0, [5, 6, EOS], "stop", logprobs=steps), stop_token_ids=(EOS,), token_stats=True)
    assert g.token_ids == [5, 6]
    assert g.logprobs == pytest.approx([math.log(0.5), math.log(0.9)])
    assert g.entropies[0] == pytest.approx(math.log(2))
    assert g.entropies[1] == pytest.approx(-(0.9 * math.log(0.9) + 0.05 * math.log(0.05) + 0.05 * math.log(0.05)))
    with pytest.raises(ValueError, match="logprobs"):
        parse_completion(CompletionOutput(0, [5], "length", logprobs=None), stop_token_ids=(EOS,), token_stats=True)


def test_generate_maps_outputs_back_to_requests():
    """The backend's generate with a fake engine: result[i][j] is request i's sample j."""
    class FakeLLM:
        def generate(self, prompts, params, use_tqdm=False):
            return [RequestOutput(p["prompt_token_ids"], [CompletionOutput(j, [100 + 10 * i + j, EOS], "stop")
                                                          for j in range(sp["n"])])
                    for i, (p, sp) in enumerate(zip(prompts, params))]

    b = vllm_backend(FakeLLM())  # skip the engine start: no GPU, no vllm
    out = b.generate([Request((1,), (1, 2)), Request((1, 3), (3,))], Decoding())
    assert [[g.token_ids for g in gs] for gs in out] == [[[100], [101]], [[110]]]
    # the ledger's work counts: 3 prompt tokens; 3 samples of 2 sampled tokens (text + EOS)
    assert b.stats == {"prefill_tokens": 3, "decoded_tokens": 6}


def test_vllm_is_imported_only_when_chosen():
    import sys

    assert "vllm" not in sys.modules
    with pytest.raises(ImportError):
        make_backend("vllm", "some/model")


def test_work_counts_skip_prefix_cached_prompt_tokens():
    from siaflow.backends.vllm_backend import count_work

    stats = {"prefill_tokens": 0, "decoded_tokens": 0}
    outs = [RequestOutput([1, 2, 3, 4], [CompletionOutput(0, [5, EOS], "stop"), CompletionOutput(1, [6, 7, 8], "length")],
                          num_cached_tokens=3),
            RequestOutput([1, 2], [CompletionOutput(0, [EOS], "stop")])]
    count_work(stats, [4, 2], outs)
    assert stats == {"prefill_tokens": 1 + 2, "decoded_tokens": 5 + 1}


class ScriptedLLM:
    """A stand-in engine with vLLM's stop semantics over one scripted response: tokens are
    characters; a prompt whose text ends inside the script continues it (then EOS). It honours
    ``max_tokens``, ``stop_token_ids`` and ``stop`` strings (the stop string is kept, as with
    ``include_stop_str_in_output``, and reported in ``stop_reason``), and records every call."""

    SCRIPT = SCRIPT  # tests.fakes.SCRIPT

    def __init__(self):
        self.calls = []

    def generate(self, prompts, params, use_tqdm=False):
        self.calls.append([(p["prompt_token_ids"], sp) for p, sp in zip(prompts, params)])
        outs = []
        for p, sp in zip(prompts, params):
            rest = script_rest(p["prompt_token_ids"])
            comps = []
            for j in range(sp["n"]):
                ids, reason, why = [], "length", None
                for t in rest[:sp["max_tokens"]]:
                    ids.append(t)
                    if t in sp["stop_token_ids"]:
                        reason = "stop"
                        break
                    done = "".join(chr(x) for x in ids)
                    hit = next((st for st in sp.get("stop", []) if st in done), None)
                    if hit:
                        reason, why = "stop", hit
                        break
                steps = [{t: Logprob(-0.5, rank=1), 999: Logprob(-1.5, rank=2)} for t in ids] if sp.get("logprobs") else None
                comps.append(CompletionOutput(j, ids, reason, stop_reason=why, logprobs=steps))
            outs.append(RequestOutput(p["prompt_token_ids"], comps))
        return outs


def _scripted_backend():
    return vllm_backend(ScriptedLLM())


def test_continuations_stop_at_the_settled_answer_in_rounds_of_stop_strings():
    from siaflow.answers import answer_is_final, extract_answer

    final = lambda text: answer_is_final(text, "numeric")  # noqa: E731
    b = _scripted_backend()
    script = ScriptedLLM.SCRIPT
    question = [ord(c) for c in "Q?\n"]
    cut = {"before": script.index("3 +"), "inside the marker": script.index("#### 7") + 3,
           "after": script.index("that")}
    reqs = [Request(tuple(question + [ord(c) for c in script[len(question):k]]), (3 * n, 3 * n + 1, 3 * n + 2),
                    answer_start=len(question)) for n, k in enumerate(cut.values())]
    reqs.append(Request(tuple(question), (9,)))  # no answer start (a rollout): runs to EOS
    out = b.generate(reqs, Decoding(max_new_tokens=200), answer_final=final)
    before, on_line, after, rollout = out
    for gs, k in zip((before, on_line), (cut["before"], cut["inside the marker"])):
        for g in gs:
            text = script[len(question):k] + "".join(map(chr, g.token_ids))
            assert g.finish_reason == "answer" and text.endswith("#### 7\n")   # stopped at the line's end
            assert extract_answer(text, "numeric") == extract_answer(script, "numeric") == "7"
    assert [(g.token_ids, g.finish_reason) for g in after] == [([], "answer")] * 3  # the prefix settles it
    assert rollout[0].finish_reason == "stop" and "".join(map(chr, rollout[0].token_ids)) == script[len(question):]
    # round 1: one request per prompt with n samples, stopping at the marker; round 2: one request
    # per sample, stopping at the newline
    # (a prefix ending in "###" also stops at the marker's last "#": vLLM matches stop strings in
    # the generated text only)
    first, second = b.llm.calls
    assert [(sp["n"], sp["stop"]) for _, sp in first] == [(3, ["####"]), (3, ["####", "#"]), (1, [])]
    assert [(sp["n"], sp["stop"]) for _, sp in second] == [(1, ["\n"])] * 6
    assert len({sp["seed"] for _, sp in second}) == 6  # each sample its own seed in later rounds
    # decoded: 3 x "3 + 4 = 7\n#### 7\n" + 3 x "# 7\n" + the rollout's script and EOS
    assert b.stats["decoded_tokens"] == 3 * len("3 + 4 = 7\n#### 7\n") + 3 * len("# 7\n") + len(script) - len(question) + 1


def test_continuations_that_never_settle_run_to_their_limit():
    from siaflow.answers import answer_is_final

    b = _scripted_backend()
    question = [ord(c) for c in "Q?\n"]
    out = b.generate([Request(tuple(question), (1,), answer_start=len(question))], Decoding(max_new_tokens=10),
                     answer_final=lambda t: answer_is_final(t, "numeric"))
    assert [(len(g.token_ids), g.finish_reason) for g in out[0]] == [(10, "length")]


def test_marker_stops():
    from siaflow.backends.vllm_backend import marker_stops

    assert marker_stops("so 3 + 4 = 7\n") == ["####"]
    assert marker_stops("so 7\n##") == ["####", "##"]
    assert marker_stops("so 7\n###") == ["####", "#"]


def test_rollouts_with_token_stats_stop_at_their_answer_too():
    """A rollout passes token_stats and answer_final together: it ends at its settled answer, with
    one log-prob and one entropy per kept token, accumulated over the rounds."""
    from siaflow.answers import answer_is_final

    b = _scripted_backend()
    question = [ord(c) for c in "Q?\n"]
    out = b.generate([Request(tuple(question), (1, 2), answer_start=len(question))], Decoding(max_new_tokens=200),
                     token_stats=True, answer_final=lambda t: answer_is_final(t, "numeric"))
    for g in out[0]:
        assert g.finish_reason == "answer" and "".join(map(chr, g.token_ids)).endswith("#### 7\n")
        assert len(g.logprobs) == len(g.entropies) == len(g.token_ids) and g.logprobs[0] == -0.5


def test_a_prompt_stop_string_ends_the_sample_and_is_cut():
    b = _scripted_backend()
    question = [ord(c) for c in "Q?\n"]
    out = b.generate([Request(tuple(question), (1,), answer_start=len(question), stop=("that is",))],
                     Decoding(max_new_tokens=200), token_stats=True)
    g = out[0][0]
    script = ScriptedLLM.SCRIPT
    assert g.finish_reason == "stop_sequence" and g.cut == len("that is")
    assert "".join(map(chr, g.token_ids)) == script[len(question):script.index("that is")]
    assert len(g.logprobs) == len(g.token_ids) and g.n_sampled == script.index("that is") + len("that is") - 3
    assert b.llm.calls[0][0][1]["stop"] == ["that is"]


def test_request_budgets_reach_vllm_as_max_tokens():
    reqs = [Request((1, 5), (11,), max_new_tokens=7), Request((1, 5), (12,))]
    _, params = build_requests(reqs, Decoding(max_new_tokens=50), stop_token_ids=(EOS,), logprobs=None)
    assert [p["max_tokens"] for p in params] == [7, 50]
    b = _scripted_backend()
    out = b.generate([Request((ord("Q"), ord("?")), (1, 2), max_new_tokens=0)], Decoding(max_new_tokens=50))
    assert [(g.token_ids, g.finish_reason) for g in out[0]] == [([], "length")] * 2 and b.llm.calls == []
