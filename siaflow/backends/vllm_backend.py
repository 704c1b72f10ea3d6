"""vLLM backend (GPU nodes): one engine per job, token-id prompts, all prompts of a call in one
``generate`` with ``SamplingParams(n=K)`` and automatic prefix caching.

With ``answer_final`` or a request's stop strings, samples end where the transformers backend
ends them (``siaflow.backends.base.TextWatch``), in rounds of stop strings (``_generate_watched``).

vLLM returns only the top-k log-probabilities of each step, so token entropy is approximated from
the top k plus one bucket holding the remaining mass (``entropy_kind = "topk_approx"``), and
self-certainty (which needs the whole vocabulary) is not available. vLLM seeds per request, not
per sample: samples are reproducible for the same requests, but, unlike the transformers backend,
not invariant to how requests are grouped.

``vllm`` is imported only when this backend is built; the adapter logic (``build_requests``,
``parse_completion``, ``topk_entropy``) is plain Python, tested on objects shaped like vLLM's.
"""

from __future__ import annotations

import math

from siaflow.answers import FINAL_MARKER, answer_line_open
from siaflow.backends.base import BackendInfo, Decoding, Generation, HFTokenizerBackend, Request, text_watch
from siaflow.sampling import stream_key

VLLM_FINISH_REASONS = {"stop": "stop", "length": "length"}  # vLLM CompletionOutput.finish_reason -> ours


def topk_entropy(top_logprobs: dict) -> float:
    """Entropy (nats) from one step's top-k log-probabilities, the mass outside the top k counted
    as one extra outcome: -sum_i p_i log p_i - r log r with r = 1 - sum_i p_i. A lower bound on the
    full-vocabulary entropy when the rest is spread over many tokens."""
    ps = [math.exp(getattr(lp, "logprob", lp)) for lp in top_logprobs.values()]
    rest = max(0.0, 1.0 - sum(ps))
    return -sum(p * math.log(p) for p in ps if p > 0) - (rest * math.log(rest) if rest > 0 else 0.0)


def seed31(key: int) -> int:
    """A 31-bit vLLM seed from a 62-bit stream key."""
    return int(key % (2**31 - 1))


def request_seed(request: Request) -> int:
    """A vLLM seed from the request's first sample key."""
    return seed31(request.keys[0])


def sampling_args(decoding: Decoding, *, n: int, seed: int, stop_token_ids: tuple[int, ...],
                  logprobs: int | None = None, max_tokens: int | None = None, stop: list[str] | None = None) -> dict:
    """Keyword arguments of one ``SamplingParams``: n samples, the decoding config, a seed, stop
    token ids, top-k log-probs when asked; with ``stop``, stop strings kept in the output."""
    args = dict(n=n, temperature=decoding.temperature, top_p=decoding.top_p,
                max_tokens=decoding.max_new_tokens if max_tokens is None else max_tokens, seed=seed,
                stop_token_ids=list(stop_token_ids), logprobs=logprobs)
    if stop is not None:
        args.update(stop=stop, include_stop_str_in_output=True)
    return args


def build_requests(requests: list[Request], decoding: Decoding, *, stop_token_ids: tuple[int, ...], logprobs: int | None,
                   tokens_prompt=dict, sampling_params=dict) -> tuple[list, list]:
    """vLLM prompts (``TokensPrompt``) and one ``SamplingParams`` per request: n samples, the
    decoding config, the request's seed, stop token ids, and top-k log-probs when asked."""
    prompts, params = [], []
    for r in requests:
        prompts.append(tokens_prompt(prompt_token_ids=list(r.prompt_ids)))
        params.append(sampling_params(**sampling_args(decoding, n=r.n, seed=request_seed(r), max_tokens=r.budget(decoding),
                                                      stop_token_ids=stop_token_ids, logprobs=logprobs)))
    return prompts, params


def parse_completion(completion, *, stop_token_ids: tuple[int, ...], token_stats: bool) -> Generation:
    """One vLLM ``CompletionOutput`` -> ``Generation``: the stop token is dropped from the ids,
    finish reasons map to "stop"/"length", and per-token log-prob and top-k entropy are read from
    ``completion.logprobs`` (a list of {token_id: Logprob})."""
    reason = VLLM_FINISH_REASONS.get(completion.finish_reason)
    if reason is None:
        raise ValueError(f"vLLM finished a sample with reason {completion.finish_reason!r}")
    ids = list(completion.token_ids)
    steps = list(completion.logprobs) if (token_stats and completion.logprobs is not None) else None
    if reason == "stop" and ids and ids[-1] in stop_token_ids:
        ids = ids[:-1]
        steps = steps[:-1] if steps is not None else None
    if not token_stats:
        return Generation(token_ids=ids, finish_reason=reason)
    if steps is None or len(steps) != len(ids):
        raise ValueError("vLLM returned no per-token logprobs; was SamplingParams.logprobs set?")
    logprobs = [getattr(step[t], "logprob", step[t]) for t, step in zip(ids, steps)]
    return Generation(token_ids=ids, finish_reason=reason, logprobs=logprobs, entropies=[topk_entropy(s) for s in steps])


def count_work(stats: dict, prompt_lengths: list[int], outputs) -> None:
    """Add one ``generate`` call's work to ``stats``: prompt tokens not served from the prefix
    cache (``RequestOutput.num_cached_tokens`` where vLLM reports it) and every sampled token
    (vLLM decodes each of the n samples of a request on its own row)."""
    for n, out in zip(prompt_lengths, outputs):
        stats["prefill_tokens"] += n - int(getattr(out, "num_cached_tokens", None) or 0)
        stats["decoded_tokens"] += sum(len(c.token_ids) for c in out.outputs)


def marker_stops(text: str) -> list[str]:
    """Stop strings that end a round where ``####`` completes: the marker, and when ``text`` ends
    with its first characters (``###``), the rest of it (vLLM matches stop strings in the
    generated text only, so a marker split across the prefix and the continuation needs its own)."""
    tail = next((n for n in range(len(FINAL_MARKER) - 1, 0, -1) if text.endswith(FINAL_MARKER[:n])), 0)
    return [FINAL_MARKER] + ([FINAL_MARKER[tail:]] if tail else [])


class VLLMBackend(HFTokenizerBackend):
    def __init__(self, model: str, revision: str | None = None, dtype: str = "auto", seed: int = 0,
                 max_model_len: int | None = None, gpu_memory_utilization: float = 0.9, logprobs: int = 20,
                 stop_token_ids: tuple[int, ...] = ()):
        try:
            from vllm import LLM, SamplingParams
            from vllm.inputs import TokensPrompt
        except ImportError as err:
            raise ImportError(
                f"model {model!r} has `backend: vllm` but vllm is not importable here ({err}). Run the "
                "generation rules in envs/vllm.yaml (snakemake --sdm conda) or `pip install siaflow[gpu]` "
                "on a CUDA machine; or set `backend: transformers`."
            ) from err

        self._SamplingParams, self._TokensPrompt = SamplingParams, TokensPrompt
        self.llm = LLM(model=model, revision=revision, seed=seed, dtype=dtype, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization, enable_prefix_caching=True, max_logprobs=logprobs)
        self.tokenizer = self.llm.get_tokenizer()
        eos = self.tokenizer.eos_token_id
        self.eos_token_ids = tuple(dict.fromkeys([*([eos] if eos is not None else []), *stop_token_ids]))
        self.logprobs = logprobs
        self.stats = {"prefill_tokens": 0, "decoded_tokens": 0}
        self.info = BackendInfo(name="vllm", model=model, revision=revision, entropy_kind="topk_approx",
                                extra={"logprobs": logprobs, "dtype": dtype})

    def generate(self, requests, decoding, *, token_stats=False, progress=None, answer_final=None):
        watches = [text_watch(self.decode, r, answer_final) for r in requests]
        if any(w is not None for w in watches) or any(r.budget(decoding) == 0 for r in requests):
            return self._generate_watched(requests, watches, decoding, token_stats, progress)
        prompts, params = build_requests(requests, decoding, stop_token_ids=self.eos_token_ids,
                                         logprobs=self.logprobs if token_stats else None,
                                         tokens_prompt=self._TokensPrompt, sampling_params=self._SamplingParams)
        outputs = self.llm.generate(prompts, params, use_tqdm=bool(progress))
        count_work(self.stats, [len(r.prompt_ids) for r in requests], outputs)
        return [[parse_completion(c, stop_token_ids=self.eos_token_ids, token_stats=token_stats) for c in out.outputs]
                for out in outputs]

    def _generate_watched(self, requests, watches, decoding, token_stats, progress) -> list[list[Generation]]:
        """Samples that end at their settled answer or at a stop string, in rounds of stop strings
        (a stop string cannot say "the ``####`` line is complete" by itself): a sample runs until
        ``####`` (or one of its request's stop strings) appears, then to the end of that line, and
        so on. Every round's tokens are replayed through the sample's ``TextWatch``, the same test
        the transformers backend applies token by token: where it ends the sample, the sample ends
        (tokens vLLM drew past that point are dropped, and counted as decoded); where vLLM stopped
        at EOS or the limit first, that is the end. Round 1 is one request per prompt with ``n``
        samples (prefix caching shares the prompt); a later round is a request per sample with its
        own seed, prefix-cached too. The samples are draws from the same model as one
        uninterrupted call, with their random numbers drawn per round."""
        empty = {"logprobs": [], "entropies": []} if token_stats else {}
        out: list[list[Generation | None]] = [[None] * r.n for r in requests]
        # open work: (request, its sample indices, tokens so far, their log-probs and entropies, watches)
        jobs = []
        for i, (r, w) in enumerate(zip(requests, watches)):
            if w is not None and w.done:  # the prefix already settles the answer: nothing to generate
                out[i] = [Generation(token_ids=[], finish_reason="answer", **empty) for _ in r.keys]
            elif r.budget(decoding) == 0:  # the response has no tokens left
                out[i] = [Generation(token_ids=[], finish_reason="length", **empty) for _ in r.keys]
            else:
                jobs.append((i, list(range(r.n)), [], [], [], [w.copy() if w is not None else None for _ in r.keys]))
        round_ = 0
        while jobs:
            prompts, params = [], []
            for i, js, gen, _, _, ws in jobs:
                r = requests[i]
                seed = request_seed(r) if round_ == 0 else seed31(stream_key("vllm-round", r.keys[js[0]], round_))
                prompts.append(list(r.prompt_ids) + gen)
                params.append(self._SamplingParams(**sampling_args(
                    decoding, n=len(js), seed=seed, stop_token_ids=self.eos_token_ids, max_tokens=r.budget(decoding) - len(gen),
                    logprobs=self.logprobs if token_stats else None, stop=self._round_stops(r, gen, ws[0]))))
            outputs = self.llm.generate([self._TokensPrompt(prompt_token_ids=p) for p in prompts], params,
                                        use_tqdm=bool(progress) and round_ == 0)
            count_work(self.stats, [len(p) for p in prompts], outputs)
            later = []
            for (i, js, gen, lps, ents, ws), o in zip(jobs, outputs):
                for j, c, w in zip(js, o.outputs, ws):
                    g = parse_completion(c, stop_token_ids=self.eos_token_ids, token_stats=token_stats)
                    n, why = len(g.token_ids), None  # the tokens it keeps, and why it ends there
                    for t, x in enumerate(g.token_ids if w is not None else ()):
                        why = w.push(x)
                        if why is not None:
                            n = t + 1 - w.cut
                            break
                    ids = gen + g.token_ids[:n]
                    stats = {"logprobs": lps + g.logprobs[:n], "entropies": ents + g.entropies[:n]} if token_stats else {}
                    if why is not None:
                        out[i][j] = Generation(token_ids=ids, finish_reason=why, cut=w.cut, **stats)
                    elif g.finish_reason in ("stop", "length") and not isinstance(getattr(c, "stop_reason", None), str):
                        out[i][j] = Generation(token_ids=ids, finish_reason=g.finish_reason, **stats)  # EOS or limit
                    elif len(ids) >= requests[i].budget(decoding):
                        out[i][j] = Generation(token_ids=ids, finish_reason="length", **stats)
                    else:  # stopped at a round's stop string that did not end it: go on
                        later.append((i, [j], ids, stats.get("logprobs", []), stats.get("entropies", []), [w]))
            jobs, round_ = later, round_ + 1
        return out  # type: ignore[return-value]

    def _round_stops(self, request: Request, generated: list[int], watch) -> list[str]:
        """Stop strings of a sample's next round: the request's own, and, where its answer is
        watched, the end of the open ``####`` line or else the next marker."""
        stops = list(request.stop)
        if watch is not None and watch.final is not None:
            text = self.decode(list(request.prompt_ids[request.answer_start:]) + generated)
            stops += ["\n"] if answer_line_open(text) else marker_stops(text)
        return stops
