"""Test doubles the tests share: a character-level tokenizer, a small scripted backend, and vLLM
doubles (vllm cannot be installed here). Each vLLM double follows the vLLM source file named beside
it (vLLM 0.10.2-0.11, the versions siaflow's ``gpu`` extra allows), so that the adapter is tested
against vLLM's real semantics, not against our reading of our own code."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from types import SimpleNamespace

from siaflow.generation.backends.base import BackendInfo, Decoding, Generation, HFTokenizerBackend, Request, text_watch

EOS = 2
# the one response every scripted engine gives: a prompt whose text is a prefix of it continues it
SCRIPT = "Q?\nadd 3 and 4\n3 + 4 = 7\n#### 7\nthat is all, and more words follow here\n"


class CharTokenizer:
    """Shaped like a Hugging Face tokenizer: one token per character (its code point), EOS = 2."""

    chat_template = None
    eos_token_id = EOS

    def __call__(self, text: str, add_special_tokens: bool = True):
        return SimpleNamespace(input_ids=[ord(c) for c in text])

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids if i != EOS)


def script_rest(prompt_ids) -> list[int]:
    """The script's tokens after a prompt (which must be a prefix of it), then EOS."""
    text = "".join(map(chr, prompt_ids))
    assert SCRIPT.startswith(text), f"prompt {text!r} is not a prefix of the script"
    return [ord(c) for c in SCRIPT[len(text) :]] + [EOS]


class CharBackend(HFTokenizerBackend):
    """A backend without a model: every sample continues ``SCRIPT`` from its prompt, one character
    per token, and ends as a real backend's would (EOS, its answer settled, a stop string, its
    token budget). Log-probabilities are -0.5 and entropies 1.0 at every step."""

    def __init__(self):
        self.tokenizer = CharTokenizer()
        self.eos_token_ids = (EOS,)
        self.stats = {"prefill_tokens": 0, "decoded_tokens": 0}
        self.info = BackendInfo(name="chars", model="script", revision=None, entropy_kind="exact")
        self.max_context = 4096

    def generate(
        self,
        requests: list[Request],
        decoding: Decoding,
        *,
        token_stats: bool = False,
        progress: str | None = None,
        answer_final=None,
    ) -> list[list[Generation]]:
        out = []
        for r in requests:
            out.append(
                [self._sample(r, decoding, token_stats, text_watch(self.decode, r, answer_final)) for _ in r.keys]
            )
        return out

    def _sample(self, r: Request, decoding: Decoding, token_stats: bool, watch) -> Generation:
        ids, reason, cut = [], "length", 0
        if watch is not None and watch.done:
            return Generation(token_ids=[], finish_reason="answer")
        watch = watch.copy() if watch is not None else None
        for t in script_rest(r.prompt_ids)[: r.budget(decoding)]:
            self.stats["decoded_tokens"] += 1
            if t == EOS:
                reason = "stop"
                break
            ids.append(t)
            why = watch.push(t) if watch is not None else None
            if why is not None:
                reason, cut = why, watch.cut
                break
        ids = ids[: len(ids) - cut]
        values = {"logprobs": -0.5, "entropies": 1.0, "entropies_full": 1.2, "self_certainty": 0.0, "confidence": 2.0}
        stats = {name: [v] * len(ids) for name, v in values.items()} if token_stats else {}
        return Generation(token_ids=ids, finish_reason=reason, cut=cut, **stats)


# --------------------------------------------------------------------------------------------
# vLLM doubles
# --------------------------------------------------------------------------------------------


@dataclass
class Logprob:  # vllm/logprobs.py: Logprob
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:  # vllm/outputs.py: CompletionOutput (field order as there)
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None  # "stop", "length" or "abort"
    stop_reason: int | str | None = None  # None for EOS, the stop token id, or the stop string


@dataclass
class RequestOutput:  # vllm/outputs.py: RequestOutput (the fields the adapter may read)
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list | None
    outputs: list[CompletionOutput]
    finished: bool
    num_cached_tokens: int | None = None  # prompt tokens served from the prefix cache


@dataclass
class SamplingParams:  # vllm/sampling_params.py: SamplingParams, with its _verify_args checks
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | None = None
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool = False
    max_tokens: int | None = 16
    logprobs: int | None = None
    detokenize: bool = True

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}.")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if self.stop and not self.detokenize:
            raise ValueError(
                "stop strings are only supported when detokenize is True. Set detokenize=True to use stop."
            )


def position_logprobs(logprobs: list[float], sampled: int, k: int) -> dict[int, Logprob]:
    """One position's dict, as vllm/v1/sample/sampler.py (gather_logprobs: the sampled token, its
    rank = 1 + #tokens with a greater log-prob, then torch.topk) and vllm/logprobs.py
    (append_logprobs_for_next_position: sampled first with its rank, then the top k with ranks
    1..k; a sampled token inside the top k is overwritten by its top-k entry) build it: k entries,
    or k + 1 when the sampled token is not in the top k."""
    rank = 1 + sum(lp > logprobs[sampled] for lp in logprobs)
    top = sorted(range(len(logprobs)), key=lambda t: (-logprobs[t], t))[:k]
    ids, lps, ranks = [sampled, *top], [logprobs[sampled], *(logprobs[t] for t in top)], [rank, *range(1, k + 1)]
    return {t: Logprob(logprob=lp, rank=r) for t, lp, r in zip(ids, lps, ranks)}


class FakeLLM:
    """``vllm.LLM.generate`` (vllm/entrypoints/llm.py) over a model given by two hooks:
    ``next_logprobs(token_ids, params)`` (the processed log-probabilities of the next token) and
    ``draw(logprobs, params, child_seed, step)``. What it follows:

    * a prompt longer than ``max_model_len`` rejects the whole call (vllm/v1/engine/processor.py:
      "The decoder prompt (length N) is longer than the maximum model length of M");
    * a request with ``n > 1`` runs as n child requests, child i seeded ``seed + i``
      (vllm/v1/engine/parallel_sampling.py), and the combined ``RequestOutput`` carries one
      child's ``num_cached_tokens`` (vllm/v1/engine/output_processor.py) — the last one's here;
    * prefix caching by full blocks of ``block_size`` tokens, the last prompt token always
      computed (vllm/v1/core/kv_cache_manager.py: get_computed_blocks); ``prefill_computed``
      counts the prompt tokens really computed;
    * EOS / ``stop_token_ids`` end a sample with finish reason "stop" (stop_reason None for EOS,
      the token id otherwise), the token kept in ``token_ids``; a stop string ends it with
      stop_reason = the string, the text cut after it (``include_stop_str_in_output``) but not
      ``token_ids`` (vllm/v1/engine/detokenizer.py, output_processor.py); ``max_tokens`` or the
      context end it with "length"; ``text`` is empty without ``detokenize``."""

    block_size = 4

    def __init__(self, *, max_model_len: int = 4096, eos: int = EOS, tokenizer=None):
        self.max_model_len, self.eos, self.tokenizer = max_model_len, eos, tokenizer or CharTokenizer()
        self.blocks: set[tuple] = set()
        self.prefill_computed = 0
        self.calls: list[list[tuple[list[int], SamplingParams]]] = []

    def next_logprobs(self, token_ids: list[int], params: SamplingParams) -> list[float]:
        raise NotImplementedError

    def draw(self, logprobs: list[float], params: SamplingParams, seed: int | None, step: int) -> int:
        return max(range(len(logprobs)), key=lambda t: logprobs[t])

    def generate(self, prompts, sampling_params, use_tqdm: bool = True) -> list[RequestOutput]:
        ids_list = [list(p["prompt_token_ids"]) for p in prompts]
        for ids in ids_list:
            if len(ids) > self.max_model_len:
                raise ValueError(
                    f"The decoder prompt (length {len(ids)}) is longer than the maximum model "
                    f"length of {self.max_model_len}."
                )
        self.calls.append(list(zip(ids_list, sampling_params)))
        outs = []
        for n_req, (ids, sp) in enumerate(zip(ids_list, sampling_params)):
            comps, cached = [], 0
            for i in range(sp.n):
                cached = self._prefill(ids)
                comps.append(self._sample(ids, sp, i, None if sp.seed is None else sp.seed + i))
            outs.append(
                RequestOutput(
                    request_id=str(n_req),
                    prompt=None,
                    prompt_token_ids=ids,
                    prompt_logprobs=None,
                    outputs=comps,
                    finished=True,
                    num_cached_tokens=cached,
                )
            )
        return outs

    def _prefill(self, ids: list[int]) -> int:
        b = self.block_size
        hit = 0
        while hit + b <= len(ids) - 1 and tuple(ids[: hit + b]) in self.blocks:
            hit += b
        self.blocks.update(tuple(ids[:end]) for end in range(b, len(ids) + 1, b))
        self.prefill_computed += len(ids) - hit
        return hit

    def _sample(self, ids: list[int], sp: SamplingParams, index: int, seed: int | None) -> CompletionOutput:
        gen, steps, reason, why, text = [], [], "length", None, ""
        stop_ids = set(sp.stop_token_ids or [])
        limit = min(sp.max_tokens, self.max_model_len - len(ids))
        for t in range(limit):
            lps = self.next_logprobs(ids + gen, sp)
            tok = self.draw(lps, sp, seed, t)
            gen.append(tok)
            if sp.logprobs is not None:
                steps.append(position_logprobs(lps, tok, sp.logprobs))
            if tok == self.eos or tok in stop_ids:
                reason, why = "stop", (None if tok == self.eos else tok)
                break
            if sp.detokenize:
                text = self.tokenizer.decode(gen)
                hit = next((st for st in (sp.stop or []) if st in text), None)
                if hit is not None:
                    reason, why = "stop", hit
                    text = text[: text.index(hit) + (len(hit) if sp.include_stop_str_in_output else 0)]
                    break
        return CompletionOutput(
            index=index,
            text=text if sp.detokenize else "",
            token_ids=gen,
            cumulative_logprob=None,
            logprobs=steps if sp.logprobs is not None else None,
            finish_reason=reason,
            stop_reason=why,
        )


class ScriptedLLM(FakeLLM):
    """Every sample continues ``SCRIPT`` (one character per token, then EOS): the next character has
    probability 3/4, token 999 the rest."""

    VOCAB = 1000

    def next_logprobs(self, token_ids, params):
        nxt = script_rest(token_ids)[0]
        lps = [-math.inf] * self.VOCAB
        lps[nxt], lps[999] = math.log(0.75), math.log(0.25)
        return lps


class SeededLLM(FakeLLM):
    """Uniform over tokens 100..149; each draw a pure function of (seed, step), as vLLM's
    per-request generator makes it."""

    VOCAB = 150

    def next_logprobs(self, token_ids, params):
        return [-math.inf] * 100 + [-math.log(50)] * 50

    def draw(self, logprobs, params, seed, step):
        return random.Random(f"{seed}:{step}").randrange(100, 150)


def vllm_backend(engine, *, logprobs: int = 5, eos: tuple[int, ...] = (EOS,)):
    """A ``VLLMBackend`` around a stand-in engine (``FakeLLM``), without starting vLLM: what
    ``VLLMBackend.__init__`` sets, with the double's ``SamplingParams`` and dict prompts."""
    from siaflow.generation.backends.vllm_backend import VLLMBackend

    b = VLLMBackend.__new__(VLLMBackend)
    b.llm, b.eos_token_ids, b.logprobs, b.tokenizer = engine, tuple(eos), logprobs, engine.tokenizer
    b._TokensPrompt, b._SamplingParams = dict, SamplingParams
    b.max_context = engine.max_model_len
    b.stats = {"prefill_tokens": 0, "decoded_tokens": 0}
    return b


def toy_rollouts(model_dir, max_new_tokens: int):
    """Two toy questions' rollouts (N = 2) from the model in ``model_dir`` on one thread, the way
    the probe and adaptive-sampling tests start: (backend, rollouts, response rules, decoding)."""
    import polars as pl
    import torch

    from siaflow.answers import ResponseRules, response_rules
    from siaflow.generation.backends import Decoding, make_backend
    from siaflow.generation.rollouts import run_rollouts
    from siaflow.generation.settings import DrawSettings

    torch.set_num_threads(1)
    backend = make_backend("transformers", model_dir, batch_rows=64)
    questions = pl.DataFrame({"question_id": ["a", "b"], "gold": ["7", "12"]})
    prompts = ["Q: Eve has 5, gets 2. How many?\nA: ", "Q: Bob has 12.\nA: "]
    rules = response_rules({"answer_type": "numeric"}, prompts[0], stop_at_answer=True, example_prompt=prompts[0])
    dec = Decoding(temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens)
    roll = run_rollouts(backend, questions, prompts, draw=DrawSettings(dec, 0, 2), rules=ResponseRules(rules.extract))
    return backend, roll, rules, dec
