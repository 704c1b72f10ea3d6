"""The vLLM backend's adapter logic, on objects shaped like vLLM's outputs (vllm is not installed
here): request building, n > 1 fan-out, stop handling, top-k entropy and finish reasons."""

import math
from dataclasses import dataclass, field

import pytest

from siaflow.backends import Decoding, Request, make_backend
from siaflow.backends.vllm_backend import VLLMBackend, build_requests, parse_completion, request_seed, topk_entropy


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


EOS = 2


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

    b = VLLMBackend.__new__(VLLMBackend)  # skip the engine start: no GPU, no vllm
    b.llm, b.eos_token_ids, b.logprobs = FakeLLM(), (EOS,), 5
    b._TokensPrompt, b._SamplingParams = dict, dict
    b.stats = {"prefill_tokens": 0, "decoded_tokens": 0}
    out = b.generate([Request((1,), (1, 2)), Request((1, 3), (3,))], Decoding())
    assert [[g.token_ids for g in gs] for gs in out] == [[[100], [101]], [[110]]]
    # the ledger's work counts: 3 prompt tokens; 3 samples of 2 sampled tokens (text + EOS)
    assert b.stats == {"prefill_tokens": 3, "decoded_tokens": 6}
    # continuations always pass answer_final; vLLM runs them to the end instead of failing
    out = b.generate([Request((1,), (1, 2), answer_start=1)], Decoding(), answer_final=lambda text: True)
    assert [[g.finish_reason for g in gs] for gs in out] == [["stop", "stop"]]


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
    count_work(stats, [Request((1, 2, 3, 4), (1, 2)), Request((1, 2), (3,))], outs)
    assert stats == {"prefill_tokens": 1 + 2, "decoded_tokens": 5 + 1}
