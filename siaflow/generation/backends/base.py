"""The rollout backend interface: what every generation engine must provide.

A backend turns *requests* (token-id prompts, each asking for ``n`` samples, each sample with its
own random stream key) into *generations* (token ids plus, per generated token, its log-probability
and the entropy of the next-token distribution). Prompts are token ids end to end: a checkpoint
prefix is ``prompt_ids + trajectory_ids[:k]`` and is never re-tokenised.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from siaflow.answer_text import THINK_CLOSE, THINK_OPEN
from siaflow.answers import FINAL_MARKER


@dataclass(frozen=True)
class Decoding:
    """The stochastic decoding configuration (greedy decoding is rejected by design)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(
                f"decoding.temperature must be > 0 (greedy decoding makes the entropies degenerate), got {self.temperature}"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"decoding.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"decoding.max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Request:
    prompt_ids: tuple[int, ...]
    keys: tuple[int, ...]  # one random stream key per requested sample; n = len(keys)
    # where the answer-bearing text (the response) starts in prompt_ids: after the question prompt,
    # so a continuation's trajectory prefix is part of it; with generate(answer_final=...) a sample
    # stops once its answer is settled
    answer_start: int | None = None
    # stop strings (the prompt's): a sample ends once its generated text writes one; the tokens
    # that complete it are cut from the sample (finish reason "stop_sequence")
    stop: tuple[str, ...] = ()
    # at most this many new tokens (below decoding.max_new_tokens): a continuation of a checkpoint
    # prefix completes a response of at most max_new_tokens, so it may add max_new_tokens - k
    max_new_tokens: int | None = None

    def budget(self, decoding: Decoding) -> int:
        """New tokens this request's samples may draw."""
        cap = decoding.max_new_tokens
        return cap if self.max_new_tokens is None else max(0, min(cap, self.max_new_tokens))

    @property
    def n(self) -> int:
        return len(self.keys)


# the per-token statistics a Generation holds (rollouts.TOKEN_STATS are their columns)
TOKEN_STAT_FIELDS = ("logprobs", "entropies", "entropies_full", "self_certainty", "confidence")


@dataclass
class Generation:
    token_ids: list[int]
    # "stop" (EOS or stop token, not included in token_ids), "stop_sequence" (a stop string was
    # written; its tokens, ``cut`` of them, are not included), "length", or "answer" (the extracted
    # answer was settled: generate(answer_final=...); the token that settled it is included)
    finish_reason: str
    # per token (sampling.distribution_stats; None where the backend cannot record it, vLLM's
    # processed_logprobs: docs/backends.md): the token's log-probability under the distribution it
    # was drawn from (temperature-scaled, renormalised over the top-p nucleus) and that
    # distribution's entropy (vLLM: a lower bound from its top k)
    logprobs: list[float] | None = None
    entropies: list[float] | None = None
    # the entropy of the whole temperature-scaled distribution (no top-p)
    entropies_full: list[float] | None = None
    # self-certainty KL(U || p_t) = -log V - (1/V) sum_v log p_t(v) (Kang et al. 2025), p_t the
    # model's raw distribution (temperature 1, before top-p)
    self_certainty: list[float] | None = None
    # DeepConf's token confidence: minus the mean raw (temperature-1) log-probability of the top k
    # tokens, and of the drawn token when it is not among them (sampling.token_confidence)
    confidence: list[float] | None = None
    cut: int = 0  # tokens drawn after token_ids that wrote the stop string (finish reason "stop_sequence")

    @property
    def n_sampled(self) -> int:
        """Tokens the sample drew: its text, plus the stop token or the stop string's tokens."""
        return len(self.token_ids) + (self.finish_reason == "stop") + self.cut


@dataclass
class BackendInfo:
    name: str
    model: str
    revision: str | None
    entropy_kind: str  # "exact" (full vocabulary) or "topk_approx"
    # what changes the samples or their statistics (dtype, engine version, top-k, ...): part of a
    # resumable job's identity, so parts made with other settings are not reused
    settings: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def identity(self) -> dict:
        """What a result made with this backend depends on: its name, model, revision, settings."""
        return {"backend": self.name, "model": self.model, "revision": self.revision, **self.settings}


def local_revision(model: str, revision: str | None) -> str | None:
    """The revision recorded for a model: the one asked for, else, for a local directory, the hub
    commit or hash its build record names or a hash of its files (``siaflow.inputs.models.model_revision``)."""
    from siaflow.inputs.models import model_revision

    return revision or (model_revision(model) if Path(model).is_dir() else None)


def local_build(model: str) -> dict | None:
    """A local model directory's build record (how ``build_model`` or ``download_model`` made it)."""
    from siaflow.inputs.models import build_record

    return build_record(model) if Path(model).is_dir() else None


class Backend(ABC):
    """Generation engine. Implementations: ``transformers`` (CPU/one GPU), ``vllm`` (GPU)."""

    info: BackendInfo
    eos_token_ids: tuple[int, ...]
    max_context: int  # prompt + generated tokens the model takes (a prompt must leave room for one more)
    # running totals of the work done, read by the token ledger: "prefill_tokens" (prompt tokens
    # run through the model) and "decoded_tokens" (decode steps: sampled tokens that needed a
    # forward pass of their own)
    stats: dict

    @abstractmethod
    def generate(
        self,
        requests: list[Request],
        decoding: Decoding,
        *,
        token_stats: bool = False,
        progress: str | None = None,
        answer_final: Callable[[str], bool] | None = None,
    ) -> list[list[Generation]]:
        """Sample ``request.n`` continuations of every request; result[i][j] belongs to
        ``requests[i].keys[j]``. With ``token_stats`` also return per-token logprobs/entropies.
        With ``answer_final`` (``siaflow.answers.answer_is_final`` for the dataset's answer type),
        a sample of a request with ``answer_start`` stops as soon as
        ``answer_final(decode(prompt_ids[answer_start:] + generated))`` holds (finish reason
        "answer"); one whose prefix already settles it generates nothing."""

    def close(self) -> None:  # noqa: B027 (most backends hold nothing to release)
        """Release the engine (a process, GPU memory) before another model is loaded."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt, with the model's own special tokens (e.g. BOS)."""

    @abstractmethod
    def encode_text(self, text: str) -> list[int]:
        """Token ids of a piece of text appended to a prompt (a probe's answer cue): no special tokens."""

    @abstractmethod
    def encode_chat(self, messages: list[dict]) -> tuple[str, list[int]]:
        """The model's chat template applied to ``messages`` with the assistant turn opened:
        the exact prompt text and its token ids."""

    @abstractmethod
    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, special tokens dropped."""


class HFTokenizerBackend(Backend):
    """A backend whose text side is a Hugging Face tokenizer at ``self.tokenizer`` (both engines
    here): prompts, chat templates and decoding in one place."""

    tokenizer: object

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text).input_ids)

    def encode_text(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def encode_chat(self, messages: list[dict]) -> tuple[str, list[int]]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"model {self.info.model!r} has no chat template; use a plain prompt template for it")
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text, list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def token_at(decode: Callable[[list[int]], str], token_ids: list[int], offset: int, text: str | None = None) -> int:
    """The index of the token of ``token_ids`` that holds character ``offset`` of their text
    (``text``, which is ``decode(token_ids)``): the smallest m whose prefix ``token_ids[:m]``
    decodes to more than ``offset`` characters, minus 1, by binary search.

    A prefix that ends inside a character (byte-level BPE) decodes to its whole characters and
    replacement characters (U+FFFD: one, or one per byte with byte fallback); those count as one
    character, the one the prefix has begun, so the token that holds a character's first byte
    holds the character."""
    text = decode(token_ids) if text is None else text
    if not 0 <= offset < len(text):
        raise ValueError(f"offset {offset} is outside the text of {len(token_ids)} tokens ({len(text)} characters)")

    def decoded_length(m: int) -> int:
        s = decode(token_ids[:m])
        if text.startswith(s):
            return len(s)
        whole = s.rstrip("\ufffd")
        return len(whole) + 1 if len(whole) < len(s) else len(s)

    lo, hi = 1, len(token_ids)  # all the tokens decode to the text, which holds the offset
    while lo < hi:
        mid = (lo + hi) // 2
        if decoded_length(mid) > offset:
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


FINISH_REASONS = ("stop", "stop_sequence", "answer", "length")


class TextWatch:
    """Incremental end-of-response checks of one sample, token by token: its answer settled
    (``answer_final`` of the answer-bearing text) or one of its stop strings written.

    ``answer_final`` is False until the text holds the answer marker (``####``), and what precedes
    the first marker or think tag cannot change its verdict, so until one appears only a short
    window of the latest tokens is decoded to look for it; from the window where it first appears,
    the text is decoded from there on. Stop strings are looked for in a window of the latest tokens
    that is long enough to hold them, and only an occurrence that the newest token completes counts
    (one inside a prefix never does). Decoding cost per token stays small on long traces.
    """

    WINDOW = 8  # tokens; the marker and think tags span at most 8
    TRIGGERS = (FINAL_MARKER, THINK_OPEN, THINK_CLOSE)

    def __init__(
        self,
        decode: Callable[[list[int]], str],
        prefix: list[int],
        *,
        answer_final: Callable[[str], bool] | None = None,
        stop: tuple[str, ...] = (),
    ):
        self.final, self.decode, self.ids, self.stop = answer_final, decode, list(prefix), tuple(s for s in stop if s)
        self.n_prefix = len(self.ids)
        self.stop_window = max([self.WINDOW] + [len(s) + 2 for s in self.stop])
        self.cut = 0
        text = decode(self.ids) if answer_final is not None else ""
        self.anchored = any(t in text for t in self.TRIGGERS)
        self.start = 0 if self.anchored else max(0, len(self.ids) - self.WINDOW)
        self.done = answer_final is not None and self.anchored and answer_final(text)

    def copy(self) -> TextWatch:
        """An independent watch at the same point (one per sample of a shared prefix)."""
        twin = object.__new__(TextWatch)
        twin.__dict__.update(self.__dict__, ids=list(self.ids))
        return twin

    def push(self, token: int) -> str | None:
        """Add a generated token; "answer" once the answer is settled, "stop_sequence" once a stop
        string is written (then ``cut`` is the number of generated tokens that belong to it)."""
        self.ids.append(token)
        if self.stop and self._stop_written():
            return "stop_sequence"
        if self.final is None:
            return None
        text = self.decode(self.ids[self.start :])
        if not self.anchored:
            if not any(t in text for t in self.TRIGGERS):
                self.start = max(0, len(self.ids) - self.WINDOW)
                return None
            self.anchored = True
        self.done = self.final(text)
        return "answer" if self.done else None

    def _stop_written(self) -> bool:
        n = len(self.ids)
        ws = max(0, n - self.stop_window)
        now = self.decode(self.ids[ws:])
        hits = [s for s in self.stop if s in now]
        if not hits:
            return False
        before = self.decode(self.ids[ws : n - 1])
        new = [s for s in hits if now.count(s) > before.count(s)]
        if not new:
            return False
        pos = min(now.rfind(s) for s in new)
        keep = n
        while keep > ws and len(self.decode(self.ids[ws:keep])) > pos:
            keep -= 1
        self.cut = n - max(keep, self.n_prefix)
        return True


def text_watch(
    decode: Callable[[list[int]], str], request: Request, answer_final: Callable[[str], bool] | None
) -> TextWatch | None:
    """The watch of a request's samples: its answer (when ``answer_final`` is given and the request
    marks where its response starts) and its stop strings; None when neither applies."""
    final = answer_final if request.answer_start is not None else None
    if final is None and not request.stop:
        return None
    start = request.answer_start if request.answer_start is not None else len(request.prompt_ids)
    return TextWatch(decode, list(request.prompt_ids[start:]), answer_final=final, stop=request.stop)


def unsampled(
    request: Request, watch: TextWatch | None, budget: int, stats: tuple[str, ...]
) -> list[Generation] | None:
    """The generations of a request with nothing to sample, one per key: its prefix already settles
    the answer (finish ``answer``) or it has no tokens left (``budget`` 0, finish ``length``), with
    empty per-token ``stats``; None when it has tokens to sample."""
    if watch is not None and watch.done:
        reason = "answer"
    elif budget == 0:
        reason = "length"
    else:
        return None
    return [Generation(token_ids=[], finish_reason=reason, **{s: [] for s in stats}) for _ in request.keys]


def progress_bar(total: int, desc: str | None):
    """A progress bar for a job's log (stderr, a line at most every 10 s), or None without ``desc``."""
    if not desc:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="seq", file=sys.stderr, mininterval=10, dynamic_ncols=False, ncols=100)
