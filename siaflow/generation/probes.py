"""Forced-answer probes (issue 23; docs/early-exit.md): the ``probe`` continuation variant.

A probe asks the model for its answer *now*: the checkpoint prefix, then an answer cue that fits
the prompt (``\\n#### `` for siaflow's ``####`` prompts; a think section left open is closed
first), then K short samples of at most ``probe.max_new_tokens`` tokens, each ended at the end of
its answer line. Dynasor's Certaindex probes a prefix this way. Its answers are extracted as for any
response (from prefix + cue + sample) and are stored exactly as the full continuations' are, one row
per sample (``rollouts.CONTINUATION_SCHEMA``, drawn by ``rollouts.draw_from_prefixes``), so the entropy rule turns them into H_k unchanged;
a ``text`` column adds each sample's own text (Dynasor's hedge-word check reads it).

The cue depends on the prefix:

* the prefix already settles its answer (a complete first answer line, as at k = T): no cue, and
  the backend generates nothing (the answer is the prefix's);
* the prefix is writing an answer line that already states a value (``#### 4`` when the model
  was going to write ``#### 48``): no cue, so that the probe finishes the model's own line;
* the prefix is inside an open think section: ``think_close``, then the cue without its leading
  newlines (``\n</think>\n\n#### ``);
* otherwise: the cue.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

from siaflow.answers import NULL, ResponseRules, answer_lines, answer_on_line, leaves_think_open, think_sections
from siaflow.generation.backends.base import Backend, Request
from siaflow.generation.rollouts import continuation_prefixes, draw_from_prefixes
from siaflow.generation.sampling import stream_key
from siaflow.generation.settings import DrawSettings
from siaflow.keys import PROBE_VARIANT

ANSWER_LINE_END = "\n"  # a probe ends at the end of its answer line


@dataclass(frozen=True)
class ProbeSpec:
    """The ``probe`` block of the config: cue, think-section close, K and the token budget."""

    cue: str
    think_close: str
    n_samples: int
    max_new_tokens: int

    @classmethod
    def of(cls, block: dict) -> ProbeSpec:
        return cls(**{k: block[k] for k in ("cue", "think_close", "n_samples", "max_new_tokens")})

    def as_dict(self) -> dict:
        return asdict(self)


def probe_cue(prefix_text: str, spec: ProbeSpec, *, answer_type: str, preamble: str, settled: bool) -> str:
    """The text written after a prefix before its probe samples (rules in the module docstring)."""
    if settled:
        return ""
    visible = preamble + prefix_text
    if leaves_think_open(visible):
        return spec.think_close + spec.cue.lstrip("\n")  # the close ends its own line
    lines = list(answer_lines(think_sections(visible)[0]))
    if lines and not lines[-1][1] and answer_on_line(lines[-1][0], answer_type) != NULL:
        return ""  # the last answer line is being written (no newline yet) and states a value
    return spec.cue


def probe_prefixes(
    backend: Backend, rollouts: pl.DataFrame, spec: ProbeSpec, *, stride: int, rules: ResponseRules
) -> list:
    """(question, trajectory, k, prefix ids + cue ids, prompt ids) for every checkpoint (k = 0 once
    per question, as ``rollouts.continuation_prefixes``), with the cue each prefix takes.
    ``rules``: the prompt's ``ResponseRules`` (answer type, preamble, settled)."""
    out, cues = [], {}
    # the trajectory's own prefixes (the seed only shuffles the shuffled variant's)
    for q, j, k, prefix, prompt in continuation_prefixes(rollouts, stride=stride, seed=0, variant="original"):
        text = backend.decode(prefix)
        cue = probe_cue(text, spec, answer_type=rules.answer_type, preamble=rules.preamble, settled=rules.settled(text))
        if cue not in cues:
            cues[cue] = backend.encode_text(cue) if cue else []
        out.append((q, j, k, prefix + cues[cue], prompt))
    return out


def probe_requests(
    prefixes: list, spec: ProbeSpec, *, seed: int, stop: tuple[str, ...] = (), ranges: list | None = None
) -> list[Request]:
    """K = ``spec.n_samples`` samples of at most ``spec.max_new_tokens`` per prefix, each on its own
    random stream (the ``probe`` stream: never one of the full continuations'), ended at the end of
    the answer line; ``ranges``: samples [lo, hi) of each instead (a round of adaptive sampling)."""
    ends = tuple(dict.fromkeys((*stop, ANSWER_LINE_END)))
    ranges = ranges or [(0, spec.n_samples)] * len(prefixes)
    return [
        Request(
            tuple(prompt + prefix),
            tuple(stream_key(seed, "probe", q, j, k, s) for s in range(*span)),
            answer_start=len(prompt),
            stop=ends,
            max_new_tokens=spec.max_new_tokens,
        )
        for (q, j, k, prefix, prompt), span in zip(prefixes, ranges)
    ]


def probe_prefix_batch(
    backend: Backend,
    prefixes: list,
    spec: ProbeSpec,
    *,
    draw: DrawSettings,
    rules: ResponseRules,
    golds: dict | None = None,
) -> tuple[pl.DataFrame, dict]:
    """The probe samples of some prefixes (from ``probe_prefixes``), one row per sample in sample
    order, and the token ledger of this work (generated tokens, the prompt tokens prefilled). Each
    probe ends at its settled answer (``rules.settled``), whatever ``stop_at_answer`` says.
    ``draw.adaptive``: in rounds up to the probe's K (``rounds.draw_in_rounds``; ``golds``)."""
    from siaflow.generation.rounds import draw_in_rounds

    def one_round(chunk, ranges):
        requests = probe_requests(chunk, spec, seed=draw.seed, stop=rules.stop, ranges=ranges)
        out, gens, work = draw_from_prefixes(
            backend, chunk, requests, draw.decoding, extract=rules.extract, answer_final=rules.settled,
            progress="probes", first=[lo for lo, _ in ranges],
        )  # fmt: skip
        # each sample's own text (after the cue), for Dynasor's hedge-word check (early_exit.dynasor_exit)
        text = pl.Series([backend.decode(g.token_ids) for gs in gens for g in gs], dtype=pl.String)
        return out.with_columns(text=text), gens, work

    df, gens, work, rounds = draw_in_rounds(
        prefixes, one_round, k_max=spec.n_samples, adaptive=draw.adaptive, golds=golds
    )
    in_prefix = sum(g.finish_reason == "answer" and g.n_sampled == 0 for gs in gens for g in gs)
    ledger = {"prefixes": work["prefixes"], "probes": sum(len(gs) for gs in gens), **rounds}
    ledger.update(prompt_tokens=work["prompt_tokens"], generated_tokens=work["generated_tokens"])
    ledger.update(answered_in_prefix=in_prefix, prefill_tokens=work["prefill_tokens"])
    ledger.update(decoded_tokens=work["decoded_tokens"])
    return df, ledger


def run_probes(
    backend: Backend,
    rollouts: pl.DataFrame,
    spec: ProbeSpec,
    *,
    draw: DrawSettings,
    rules: ResponseRules,
    output=None,
    part_prefixes: int = 256,
) -> tuple[pl.DataFrame, dict]:
    """K = ``spec.n_samples`` forced-answer probes of every checkpoint prefix (at ``draw.stride``)
    of ``rollouts`` (the trajectories with continuations), one row per sample, and the token
    ledger. ``draw.decoding``: the temperature and top-p of the continuations (the token budget is
    the probe's own). With ``output`` the work is saved in parts beside it and a rerun after a kill
    resumes (``siaflow.generation.resume``)."""
    if draw.n_samples != spec.n_samples:
        raise ValueError(f"probe draws: n_samples {draw.n_samples} is not the probe's K ({spec.n_samples})")
    prefixes = probe_prefixes(backend, rollouts, spec, stride=draw.stride, rules=rules)

    golds = dict(rollouts.select("question_id", "gold").iter_rows()) if draw.adaptive else None

    def work(chunk):
        return probe_prefix_batch(backend, list(chunk), spec, draw=draw, rules=rules, golds=golds)

    if output is None or not prefixes:
        df, ledger = work(prefixes)
    else:
        from siaflow.generation.resume import run_in_parts

        identity = {**probe_identity(draw, rules, spec), **backend.info.identity()}
        df, ledger = run_in_parts(prefixes, work, output=output, chunk=part_prefixes, identity=identity)
    ledger["cue_tokens"] = sum(len(p[3]) - p[2] for p in prefixes)  # prompt tokens the cues added
    return df, ledger


def probe_identity(draw: DrawSettings, rules: ResponseRules, spec: ProbeSpec) -> dict:
    """What resumable probe parts depend on: the draw settings but K, which is the spec's (saved
    under ``probe``), the variant always ``probe``, and the response rules but ``stop_at_answer``
    (a probe ends at its settled answer either way)."""
    identity = {**draw.as_identity(), "variant": PROBE_VARIANT, "probe": spec.as_dict(), "text": True}
    identity |= {k: v for k, v in rules.as_identity().items() if k != "stop_at_answer"}
    del identity["K"]
    return identity
