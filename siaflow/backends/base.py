"""The rollout backend interface: what every generation engine must provide.

A backend turns *requests* (token-id prompts, each asking for ``n`` samples, each sample with its
own random stream key) into *generations* (token ids plus, per generated token, its log-probability
and the entropy of the next-token distribution). Prompts are token ids end to end: a checkpoint
prefix is ``prompt_ids + trajectory_ids[:k]`` and is never re-tokenised.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from siaflow.answers import FINAL_MARKER


@dataclass(frozen=True)
class Decoding:
    """The stochastic decoding configuration (greedy decoding is rejected by design)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"decoding.temperature must be > 0 (greedy decoding makes the entropies degenerate), got {self.temperature}")
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
    # where the answer-bearing text starts in prompt_ids (a continuation: after the prompt, at the
    # trajectory prefix); with generate(answer_final=...) a sample stops once its answer is settled
    answer_start: int | None = None

    @property
    def n(self) -> int:
        return len(self.keys)


@dataclass
class Generation:
    token_ids: list[int]
    # "stop" (EOS or stop token, not included in token_ids), "length", or "answer" (the extracted
    # answer was settled: generate(answer_final=...); the token that settled it is included)
    finish_reason: str
    logprobs: list[float] | None = None
    entropies: list[float] | None = None
    # KL(U || pi_t) = -log V - (1/V) sum_v log pi_t(v) per token (EDIS's self-certainty baseline)
    self_certainty: list[float] | None = None

    @property
    def n_sampled(self) -> int:
        """Tokens the sample drew: its text, plus the stop token when it stopped at one."""
        return len(self.token_ids) + (self.finish_reason == "stop")


@dataclass
class BackendInfo:
    name: str
    model: str
    revision: str | None
    entropy_kind: str  # "exact" (full vocabulary) or "topk_approx"
    extra: dict = field(default_factory=dict)


class Backend(ABC):
    """Generation engine. Implementations: ``transformers`` (CPU/one GPU), ``vllm`` (GPU)."""

    info: BackendInfo
    eos_token_ids: tuple[int, ...]
    # running totals of the work done, read by the token ledger: "prefill_tokens" (prompt tokens
    # run through the model) and "decoded_tokens" (decode steps: sampled tokens that needed a
    # forward pass of their own)
    stats: dict

    @abstractmethod
    def generate(self, requests: list[Request], decoding: Decoding, *, token_stats: bool = False,
                 progress: str | None = None,
                 answer_final: Callable[[str], bool] | None = None) -> list[list[Generation]]:
        """Sample ``request.n`` continuations of every request; result[i][j] belongs to
        ``requests[i].keys[j]``. With ``token_stats`` also return per-token logprobs/entropies.
        With ``answer_final`` (``siaflow.answers.answer_is_final`` for the dataset's answer type),
        a sample of a request with ``answer_start`` stops as soon as
        ``answer_final(decode(prompt_ids[answer_start:] + generated))`` holds (finish reason
        "answer"); one whose prefix already settles it generates nothing."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt, with the model's own special tokens (e.g. BOS)."""

    @abstractmethod
    def encode_chat(self, messages: list[dict]) -> tuple[str, list[int]]:
        """The model's chat template applied to ``messages`` with the assistant turn opened:
        the exact prompt text and its token ids."""

    @abstractmethod
    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, special tokens dropped."""


class AnswerWatch:
    """Incremental ``answer_final`` check of one sample's answer-bearing text, token by token.

    ``answer_final`` is False until the text holds the answer marker (``####``), so until then only
    a short window of the latest tokens is decoded to look for it; from the window where it first
    appears, the text is decoded from there on. Decoding cost per token stays small on long traces.
    """

    WINDOW = 8  # tokens; the marker spans at most 4

    def __init__(self, answer_final: Callable[[str], bool], decode: Callable[[list[int]], str], prefix: list[int]):
        self.final, self.decode, self.ids = answer_final, decode, list(prefix)
        text = decode(self.ids)
        self.anchored = FINAL_MARKER in text
        self.start = 0 if self.anchored else max(0, len(self.ids) - self.WINDOW)
        self.done = self.anchored and answer_final(text)

    def copy(self) -> "AnswerWatch":
        """An independent watch at the same point (one per sample of a shared prefix)."""
        twin = object.__new__(AnswerWatch)
        twin.__dict__.update(self.__dict__, ids=list(self.ids))
        return twin

    def push(self, token: int) -> bool:
        """Add a generated token; True once the answer is settled."""
        self.ids.append(token)
        text = self.decode(self.ids[self.start:])
        if not self.anchored:
            if FINAL_MARKER not in text:
                self.start = max(0, len(self.ids) - self.WINDOW)
                return False
            self.anchored = True
        self.done = self.final(text)
        return self.done
