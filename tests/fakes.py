"""Test doubles the tests share: a character-level tokenizer, a small scripted backend, and a
vLLM backend built around a stand-in engine (vllm cannot be installed here)."""

from __future__ import annotations

from types import SimpleNamespace

from siaflow.backends.base import BackendInfo, Decoding, Generation, HFTokenizerBackend, Request, text_watch

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
    return [ord(c) for c in SCRIPT[len(text):]] + [EOS]


class CharBackend(HFTokenizerBackend):
    """A backend without a model: every sample continues ``SCRIPT`` from its prompt, one character
    per token, and ends as a real backend's would (EOS, its answer settled, a stop string, its
    token budget). Log-probabilities are -0.5 and entropies 1.0 at every step."""

    def __init__(self):
        self.tokenizer = CharTokenizer()
        self.eos_token_ids = (EOS,)
        self.stats = {"prefill_tokens": 0, "decoded_tokens": 0}
        self.info = BackendInfo(name="chars", model="script", revision=None, entropy_kind="exact")

    def generate(self, requests: list[Request], decoding: Decoding, *, token_stats: bool = False,
                 progress: str | None = None, answer_final=None) -> list[list[Generation]]:
        out = []
        for r in requests:
            out.append([self._sample(r, decoding, token_stats, text_watch(self.decode, r, answer_final))
                        for _ in r.keys])
        return out

    def _sample(self, r: Request, decoding: Decoding, token_stats: bool, watch) -> Generation:
        ids, reason, cut = [], "length", 0
        if watch is not None and watch.done:
            return Generation(token_ids=[], finish_reason="answer")
        watch = watch.copy() if watch is not None else None
        for t in script_rest(r.prompt_ids)[:r.budget(decoding)]:
            self.stats["decoded_tokens"] += 1
            if t == EOS:
                reason = "stop"
                break
            ids.append(t)
            why = watch.push(t) if watch is not None else None
            if why is not None:
                reason, cut = why, watch.cut
                break
        ids = ids[:len(ids) - cut]
        stats = {"logprobs": [-0.5] * len(ids), "entropies": [1.0] * len(ids),
                 "self_certainty": [0.0] * len(ids)} if token_stats else {}
        return Generation(token_ids=ids, finish_reason=reason, cut=cut, **stats)


def vllm_backend(engine, *, tokenizer=None, logprobs: int = 5):
    """A ``VLLMBackend`` around a stand-in engine (an object with vLLM's ``LLM.generate``), without
    starting vLLM: prompts and sampling parameters are plain dicts."""
    from siaflow.backends.vllm_backend import VLLMBackend

    b = VLLMBackend.__new__(VLLMBackend)
    b.llm, b.eos_token_ids, b.logprobs, b.tokenizer = engine, (EOS,), logprobs, tokenizer or CharTokenizer()
    b._TokensPrompt, b._SamplingParams = dict, dict
    b.stats = {"prefill_tokens": 0, "decoded_tokens": 0}
    return b
