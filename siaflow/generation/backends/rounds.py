"""vLLM's sampling behind the ``Backend`` interface, whichever way the engine is reached: in the
job's own process (``vllm_backend``) or over HTTP from a served model (``served``). What a sample
is, how it ends and what it records is decided here once; a subclass only runs one round of
requests (``_complete``).

Every sample is its own ``n = 1`` request seeded by its stream key, so its tokens are the same
whatever it is batched with, and ``num_cached_tokens`` makes the prefill ledger exact. Samples
run in rounds of stop strings (``_generate_rounds``) and every round's tokens are replayed through
the sample's ``TextWatch``, so that a response ends where the transformers backend ends it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from siaflow.answers import answer_line_open
from siaflow.generation.backends.base import (
    Decoding,
    Generation,
    HFTokenizerBackend,
    Request,
    TextWatch,
    text_watch,
    unsampled,
)
from siaflow.generation.backends.vllm_protocol import (
    count_work,
    marker_stops,
    parse_completion,
    sample_seed,
    sampling_args,
)


@dataclass
class _Sample:
    """One sample in flight: where its result goes, its key, what it has drawn, its watch."""

    request: int
    index: int
    key: int
    watch: TextWatch | None
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)


def stop_ids(tokenizer, stop_token_ids: tuple[int, ...] = ()) -> tuple[int, ...]:
    """The token ids that end a sample: the tokenizer's EOS, then ``stop_token_ids``, each once."""
    eos = tokenizer.eos_token_id
    return tuple(dict.fromkeys([*([eos] if eos is not None else []), *stop_token_ids]))


class RoundsBackend(HFTokenizerBackend):
    """The sampling of vLLM's backends. A subclass sets ``tokenizer``, ``eos_token_ids``,
    ``logprobs`` (top-k per step), ``max_context``, ``stats`` and ``info``, and runs a round with
    ``_complete``."""

    def _complete(self, prompts: list[list[int]], args: list[dict], show_progress: bool) -> list:
        """Sample each token-id prompt with its ``SamplingParams`` arguments (``sampling_args``):
        one ``RequestOutput``-like result per prompt (``outputs[0]`` a ``CompletionOutput``-like
        completion, and ``num_cached_tokens``), in order."""
        raise NotImplementedError

    def generate(self, requests, decoding, *, token_stats=False, progress=None, answer_final=None):
        too_long = [len(r.prompt_ids) for r in requests if len(r.prompt_ids) >= self.max_context]
        if too_long:
            raise ValueError(
                f"a prompt of {too_long[0]} tokens leaves no room in the model's context of "
                f"{self.max_context} (max_model_len)"
            )
        watches = [text_watch(self.decode, r, answer_final) for r in requests]
        stats = ("logprobs", "entropies") if token_stats else ()  # the rest: None (vllm_protocol.parse_completion)
        out: list[list[Generation | None]] = [[None] * r.n for r in requests]
        samples = []
        for i, (r, w) in enumerate(zip(requests, watches)):
            done = unsampled(r, w, self._budget(r, decoding), stats)
            if done is not None:
                out[i] = done
            else:
                samples += [_Sample(i, j, key, w.copy() if w is not None else None) for j, key in enumerate(r.keys)]
        self._generate_rounds(requests, samples, out, decoding, token_stats, progress)
        return out

    def _budget(self, request: Request, decoding: Decoding, drawn: int = 0) -> int:
        """New tokens a sample of ``request`` may still draw: its budget, and the model's context."""
        return max(0, min(request.budget(decoding), self.max_context - len(request.prompt_ids)) - drawn)

    def _generate_rounds(self, requests, samples: list[_Sample], out, decoding, token_stats, progress) -> None:
        """Every sample as its own ``n = 1`` request, in rounds of stop strings (a stop string cannot
        say "the ``####`` line is complete" by itself): a sample runs until ``####`` (or one of its
        request's stop strings) appears, then to the end of that line, and so on; without a watch,
        one round. Every round's tokens are replayed through the sample's ``TextWatch``, the test
        the transformers backend applies token by token: where it ends the sample, the sample ends
        (tokens vLLM drew past that point are dropped, and counted as decoded); where vLLM stopped
        at EOS or the limit first, that is the end. Prefix caching shares the prompt (and, in later
        rounds, the sample's own tokens)."""
        round_ = 0
        while samples:
            prompts, params = [], []
            for s in samples:
                r = requests[s.request]
                prompts.append(list(r.prompt_ids) + s.ids)
                params.append(
                    sampling_args(
                        decoding,
                        seed=sample_seed(s.key, round_),
                        max_tokens=self._budget(r, decoding, len(s.ids)),
                        stop_token_ids=self.eos_token_ids,
                        logprobs=self.logprobs if token_stats else None,
                        stop=self._round_stops(r, s.ids, s.watch),
                    )
                )
            outputs = self._complete(prompts, params, bool(progress) and round_ == 0)
            count_work(self.stats, [len(p) for p in prompts], outputs)
            later = []
            for s, o in zip(samples, outputs):
                done = self._take(s, o.outputs[0], requests[s.request], decoding, token_stats)
                if done is None:
                    later.append(s)
                else:
                    out[s.request][s.index] = done
            samples, round_ = later, round_ + 1

    def _take(self, s: _Sample, completion, request: Request, decoding: Decoding, token_stats: bool):
        """Add one round's completion to a sample; its ``Generation`` when the sample has ended,
        None when it stopped at a round's stop string that does not end it."""
        g = parse_completion(completion, stop_token_ids=self.eos_token_ids, token_stats=token_stats, k=self.logprobs)
        n, why = len(g.token_ids), None  # the tokens it keeps, and why it ends there
        for t, x in enumerate(g.token_ids if s.watch is not None else ()):
            why = s.watch.push(x)
            if why is not None:
                n = t + 1 - s.watch.cut
                break
        s.ids += g.token_ids[:n]
        if token_stats:
            s.logprobs += g.logprobs[:n]
            s.entropies += g.entropies[:n]
        stats = {"logprobs": s.logprobs, "entropies": s.entropies} if token_stats else {}
        if why is not None:
            return Generation(token_ids=s.ids, finish_reason=why, cut=s.watch.cut, **stats)
        if not isinstance(getattr(completion, "stop_reason", None), str):  # EOS, a stop token or the limit
            return Generation(token_ids=s.ids, finish_reason=g.finish_reason, **stats)
        if self._budget(request, decoding, len(s.ids)) == 0:
            return Generation(token_ids=s.ids, finish_reason="length", **stats)
        return None

    def _round_stops(self, request: Request, generated: list[int], watch) -> list[str]:
        """Stop strings of a sample's next round: the request's own, and, where its answer is
        watched, the end of the open ``####`` line or else the next marker."""
        stops = list(request.stop)
        if watch is not None and watch.final is not None:
            text = self.decode(list(request.prompt_ids[request.answer_start :]) + generated)
            stops += ["\n"] if answer_line_open(text) else marker_stops(text)
        return stops
