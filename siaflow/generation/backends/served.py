"""A served model: vLLM's OpenAI-compatible server (``vllm serve``, or ``python -m
vllm.entrypoints.openai.api_server``) behind the ``Backend`` interface (``backend: openai``).

The server is started once, elsewhere (a GPU node's job, a lab's shared server); generation jobs
send it requests over HTTP and need no GPU of their own. Prompts are token ids end to end, as in
the other backends: the local tokenizer (``models.<name>.path``) builds and reads them, and every
sample is one ``/v1/completions`` request with ``prompt`` a list of token ids, ``n = 1`` and its
stream key's seed, so it draws the same tokens as the in-process vLLM backend does for that key.
Sampling (rounds of stop strings, answer stopping, budgets) is ``rounds.RoundsBackend``'s, shared
with the in-process backend; what is read of each answer is ``vllm_protocol``'s.

Before anything is spent, the server is checked: it serves the named model, its context is its
``max_model_len``, and its log-probabilities are of the distribution actually sampled (a server
left at vLLM's default ``--logprobs-mode raw_logprobs`` gives temperature-1 values: the same
token's log-probability at two temperatures tells them apart). Requests run concurrently up to
``max_concurrency``, each with a timeout, and are retried with backoff on connection errors,
timeouts and 5xx answers. The API key is read from the environment variable the config names
and is never written to a log, provenance or an error.
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from siaflow.generation.backends.base import BackendInfo, local_revision, progress_bar
from siaflow.generation.backends.engine_settings import ServerSettings
from siaflow.generation.backends.rounds import RoundsBackend, stop_ids
from siaflow.generation.backends.vllm_protocol import LOGPROBS_MODE

# vLLM's completions API fills a field the request leaves out from the model's generation config
# (repetition_penalty, top_k, ...), the in-process engine does not: every one is sent
NEUTRAL_SAMPLING = {"repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "top_k": 0}
NEUTRAL_SAMPLING["min_p"] = 0.0
RAW_LOGPROBS_TOL = 1e-4  # the same token's log-probability at T = 0.5 and T = 1 on a raw_logprobs server
MIN_LOGPROB = -9999.0  # the server's JSON stand-in for -inf (tokens outside the nucleus)


class ServerError(RuntimeError):
    """The server could not be used: it is unreachable, serves another model, or answered an error."""


class ServedBackend(RoundsBackend):
    """A model behind vLLM's OpenAI-compatible server, reached as ``settings`` say
    (``models.<name>.server``); the tokenizer is ``model``'s, at ``revision``."""

    def __init__(self, model: str, settings: ServerSettings, *, revision: str | None = None, label: str | None = None):
        from transformers import AutoTokenizer

        self.label = label or model
        s = settings
        self.base_url = s.base_url.rstrip("/")
        self.served_model = s.served_model or model
        self._api_key = os.environ.get(s.api_key_env) if s.api_key_env else None
        if s.api_key_env and not self._api_key:
            raise ServerError(
                f"model {self.label!r}: the environment variable {s.api_key_env} (server.api_key_env) is not set"
            )
        self.timeout_s, self.retries, self.max_concurrency = float(s.timeout_s), int(s.retries), int(s.max_concurrency)
        self._local = threading.local()
        self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
        self.eos_token_ids = stop_ids(self.tokenizer, s.stop_token_ids)
        self.logprobs = s.logprobs
        self.stats = {"prefill_tokens": 0, "decoded_tokens": 0}
        card = self._model_card()
        self.max_context = int(card.get("max_model_len") or self.tokenizer.model_max_length)
        version = self._get("/version").get("version")
        self._check_logprobs_mode()
        depends = {"vllm": version, "served_model": self.served_model, "logprobs": s.logprobs}
        depends.update(logprobs_mode=LOGPROBS_MODE, max_model_len=self.max_context)
        self.info = BackendInfo(
            "openai",
            model,
            local_revision(model, revision),
            "topk_approx",
            settings=depends,
            extra={"base_url": self.base_url, "max_concurrency": self.max_concurrency, "root": card.get("root")},
        )

    # -- what the server is ----------------------------------------------------------------
    def _model_card(self) -> dict:
        models = self._get("/v1/models").get("data", [])
        card = next((m for m in models if m.get("id") == self.served_model), None)
        if card is None:
            served = [m.get("id") for m in models]
            raise ServerError(
                f"model {self.label!r}: the server at {self.base_url} serves {served}, not {self.served_model!r} "
                "(server.model is the server's --served-model-name, or the path it was started with)"
            )
        return card

    def _check_logprobs_mode(self) -> None:
        """Stop unless the server's log-probabilities are those of the distribution sampled: the
        first token's top log-probabilities at T = 0.5 and T = 1 differ then, and are equal on a
        server left at vLLM's default ``raw_logprobs``."""
        prompt = self.encode("The")
        steps = []
        for temperature in (0.5, 1.0):
            body = {"temperature": temperature, "top_p": 1.0, "max_tokens": 1, "seed": 0, "logprobs": self.logprobs}
            choice = self._post(self._body(prompt, body))["choices"][0]
            steps.append(_step_logprobs(choice["logprobs"]["top_logprobs"][0]))
        shared = set(steps[0]) & set(steps[1])
        if shared and max(abs(steps[0][t] - steps[1][t]) for t in shared) < RAW_LOGPROBS_TOL:
            raise ServerError(
                f"model {self.label!r}: the server at {self.base_url} returns raw (temperature-1) log-probabilities, "
                f"not those of the distribution it samples; start it with --logprobs-mode {LOGPROBS_MODE}"
            )

    # -- one round of samples -----------------------------------------------------------------
    def _complete(self, prompts: list[list[int]], args: list[dict], show_progress: bool) -> list:
        bar = progress_bar(len(prompts), "served samples" if show_progress else None)

        def one(item):
            prompt, a = item
            out = _request_output(self._post(self._body(prompt, a)), len(prompt))
            if bar is not None:
                bar.update(1)
            return out

        with ThreadPoolExecutor(max_workers=max(1, self.max_concurrency)) as pool:
            outputs = list(pool.map(one, zip(prompts, args)))
        if bar is not None:
            bar.close()
        return outputs

    def _body(self, prompt: list[int], args: dict) -> dict:
        """A ``/v1/completions`` request for one ``n = 1`` sample of ``sampling_args``."""
        body = {"model": self.served_model, "prompt": list(prompt), **NEUTRAL_SAMPLING}
        body.update({k: v for k, v in args.items() if k != "detokenize" and v is not None})
        body.update(n=1, return_token_ids=True, return_tokens_as_token_ids=True, skip_special_tokens=False)
        body.setdefault("stop_token_ids", list(self.eos_token_ids))  # the probes send none of their own
        return body

    # -- HTTP ------------------------------------------------------------------------------------
    def _session(self):
        import requests

        if getattr(self._local, "session", None) is None:
            self._local.session = requests.Session()
            if self._api_key:
                self._local.session.headers["Authorization"] = f"Bearer {self._api_key}"
        return self._local.session

    def _get(self, path: str) -> dict:
        return self._call("GET", path, None)

    def _post(self, body: dict) -> dict:
        return self._call("POST", "/v1/completions", body)

    def _call(self, method: str, path: str, body: dict | None) -> dict:
        """One request, retried with backoff (0.5 s, 1 s, 2 s, ...) on connection errors, timeouts
        and 5xx answers; a 4xx answer stops at once with the server's message."""
        import requests

        url, why = self.base_url + path, None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(0.5 * 2 ** (attempt - 1))
            try:
                res = self._session().request(method, url, json=body, timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as err:
                why = f"{type(err).__name__}: {err}"
                continue
            if res.status_code >= 500:
                why = f"HTTP {res.status_code}: {res.text[:300]}"
                continue
            if res.status_code >= 400:
                raise ServerError(
                    f"model {self.label!r}: {method} {url} answered HTTP {res.status_code}: {res.text[:500]}"
                )
            return res.json()
        raise ServerError(f"model {self.label!r}: {method} {url} failed {self.retries + 1} times; last: {why}")


def _step_logprobs(top: dict | None) -> dict[int, float]:
    """One step's ``top_logprobs`` ({"token_id:<id>": logprob}) as {id: logprob}, -inf restored."""
    out = {}
    for key, value in (top or {}).items():
        tid = int(key.split(":", 1)[1]) if key.startswith("token_id:") else int(key)
        out[tid] = -math.inf if value <= MIN_LOGPROB else float(value)
    return out


def _request_output(response: dict, prompt_length: int):
    """A completions answer as vLLM's ``RequestOutput`` reads to ``vllm_protocol``: its one
    completion (token ids, per-step {id: Logprob} with ranks by value, finish and stop reasons)
    and ``num_cached_tokens`` (from ``usage.prompt_tokens_details``, which the server sends with
    ``--enable-prompt-tokens-details``; else 0, and the prefill ledger counts every prompt token)."""
    choice = response["choices"][0]
    steps = None
    if choice.get("logprobs") is not None:
        steps = []
        for top in choice["logprobs"]["top_logprobs"]:
            values = _step_logprobs(top)
            ranked = sorted(values, key=lambda t: -values[t])
            steps.append({t: SimpleNamespace(logprob=values[t], rank=r + 1) for r, t in enumerate(ranked)})
    completion = SimpleNamespace(
        token_ids=list(choice["token_ids"]),
        logprobs=steps,
        finish_reason=choice["finish_reason"],
        stop_reason=choice.get("stop_reason"),
    )
    cached = ((response.get("usage") or {}).get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return SimpleNamespace(outputs=[completion], num_cached_tokens=int(cached))
