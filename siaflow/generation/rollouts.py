"""Rollouts (N trajectories per question) and checkpoint continuations (K per prefix).

Pure drivers over a ``Backend``: they build token-id requests with their random stream keys and
turn generations into tables. The empty prefix (k = 0) is the same for all N trajectories of a
question and is estimated once per question (stored with trajectory = -1).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import polars as pl

from siaflow.answers import ResponseRules
from siaflow.generation.backends.base import TOKEN_STAT_FIELDS, Backend, Decoding, Request, token_at
from siaflow.generation.sampling import stream_key
from siaflow.generation.settings import DrawSettings
from siaflow.keys import VARIANTS, checkpoint_positions, draw_tokens

SHARED_TRAJECTORY = -1
# per-token statistics, a column per Generation field (backends.base.TOKEN_STAT_FIELDS; what each
# is: docs/selection.md); null in a row where its backend could not record it
TOKEN_STATS = ("token_logprobs", "token_entropy", "token_entropy_full", "token_self_certainty", "token_confidence")
# the columns of a rollouts table, in order: the identity of its saved parts (parts an older siaflow
# wrote with other columns are not resumed)
ROLLOUT_COLUMNS = ("question_id", "trajectory", "prompt", "prompt_ids", "token_ids", *TOKEN_STATS, "T")
ROLLOUT_COLUMNS += ("finish_reason", "cut", "text", "answer", "answer_start", "gold", "correct")
# the types polars would not infer: compact lists, and answer_start (null where no answer is located)
ROLLOUT_TYPES = {"prompt_ids": pl.List(pl.Int32), "token_ids": pl.List(pl.Int32), "answer_start": pl.Int32}
ROLLOUT_TYPES |= dict.fromkeys(TOKEN_STATS, pl.List(pl.Float32))


def _check_context(qids: list, prompt_ids: list[tuple[int, ...]], max_context: int) -> None:
    """Stop, naming the first question, when a prompt leaves no room in the model's context."""
    too_long = [(q, len(ids)) for q, ids in zip(qids, prompt_ids) if len(ids) >= max_context]
    if too_long:
        q, n = too_long[0]
        raise ValueError(
            f"question {q}: its prompt has {n} tokens, which leaves no room in the model's context of "
            f"{max_context} tokens ({len(too_long)} question(s) in all); shorten the prompt "
            f"template or the question, or use a model with a longer context"
        )


def run_rollouts(
    backend: Backend,
    questions: pl.DataFrame,
    prompts: list[str],
    *,
    draw: DrawSettings,
    rules: ResponseRules,
    prompt_ids: list[list[int]] | None = None,
) -> pl.DataFrame:
    """Sample ``draw.n_samples`` responses per question (``draw``: decoding and seed), with
    per-token log-prob and entropy. ``prompt_ids`` default to ``backend.encode`` of each prompt text.

    A response ends at its settled answer (``rules.answer_final``: finish reason "answer"), at one
    of the prompt's ``rules.stop`` strings (cut, "stop_sequence"), at EOS ("stop") or at the token
    limit ("length"): T is the response's own length, so every checkpoint lies inside the response.

    ``rules.answer_start``: where in a response the statement that ``rules.extract`` reads begins (a
    character offset, None when the answer is NULL). Each row's ``answer_start`` is the index of the
    generated token that holds that character (``token_at``), null where the answer is NULL or
    without it: checkpoint k is before the answer when k <= answer_start and k < T."""
    prompt_ids = (
        [tuple(ids) for ids in prompt_ids] if prompt_ids is not None else [tuple(backend.encode(p)) for p in prompts]
    )
    qids = questions["question_id"].to_list()
    _check_context(qids, prompt_ids, backend.max_context)
    requests = [
        Request(
            ids,
            tuple(stream_key(draw.seed, "rollout", q, j) for j in range(draw.n_samples)),
            answer_start=len(ids),
            stop=tuple(rules.stop),
        )
        for q, ids in zip(qids, prompt_ids)
    ]
    gens = backend.generate(
        requests, draw.decoding, token_stats=True, progress="rollouts", answer_final=rules.answer_final
    )
    rows = [
        rollout_row(
            backend,
            g,
            rules.extract,
            rules.answer_start,
            question=q,
            trajectory=j,
            prompt=prompt,
            prompt_ids=ids,
            gold=gold,
        )
        for q, gold, prompt, ids, gs in zip(qids, questions["gold"], prompts, prompt_ids, gens)
        for j, g in enumerate(gs)
    ]
    return pl.DataFrame(rows, schema_overrides=ROLLOUT_TYPES)


def rollout_row(backend: Backend, g, extract, locate, *, question, trajectory, prompt, prompt_ids, gold) -> dict:
    """One generation's row of a rollouts table: its tokens and their statistics, how it ended, its
    text, its answer, the token where the answer's statement begins (``token_at``; null when the
    answer is NULL or without ``locate``), and whether it is correct."""
    text = backend.decode(g.token_ids)
    answer = extract(text)
    start = locate(text) if locate is not None else None
    at = None if start is None else token_at(backend.decode, g.token_ids, start, text)
    stats = tuple(getattr(g, name) for name in TOKEN_STAT_FIELDS)
    values = (question, trajectory, prompt, list(prompt_ids), g.token_ids, *stats, len(g.token_ids))
    values += (g.finish_reason, g.cut, text, answer, at, gold, answer == gold)
    return dict(zip(ROLLOUT_COLUMNS, values, strict=True))


def rescore_rollouts(scorer: Backend, rollouts: pl.DataFrame, decoding: Decoding) -> tuple[pl.DataFrame, dict]:
    """Rollouts with exact per-token entropies (nucleus and whole vocabulary), self-certainty and
    confidence from one teacher-forced pass of ``scorer`` (a transformers backend of the same
    weights: ``backends.scoring``), for rollouts sampled by an engine that returns only top-k
    log-probabilities. The tokens and the engine's own log-probabilities are kept; the returned
    check compares those with the scored ones (they agree to rounding when both are the same model)."""
    from siaflow.generation.backends.scoring import score_responses

    prompts = [list(x) for x in rollouts["prompt_ids"]]
    responses = [list(x) for x in rollouts["token_ids"]]
    scored = score_responses(scorer, prompts, responses, decoding, progress="exact token statistics")
    given = rollouts["token_logprobs"].to_list()  # null: made elsewhere without them (docs/own-generations.md)
    exact = [x for s in scored for x in s.logprobs]
    pairs = [(a, b) for lps, s in zip(given, scored) if lps is not None for a, b in zip(lps, s.logprobs)]
    diffs = sorted(abs(a - b) for a, b in pairs if math.isfinite(b))
    check = {
        "tokens": len(exact),
        "outside_scored_nucleus": sum(not math.isfinite(b) for b in exact),
        "max_abs_logprob_diff": round(diffs[-1], 6) if diffs else 0.0,
        "p99_abs_logprob_diff": round(diffs[int(0.99 * (len(diffs) - 1))], 6) if diffs else 0.0,
    }
    f32 = pl.List(pl.Float32)
    df = rollouts.with_columns(
        pl.Series(column, [getattr(s, name) for s in scored], dtype=f32)
        for column, name in zip(TOKEN_STATS, TOKEN_STAT_FIELDS, strict=True)
        if name != "logprobs"
    )
    logprobs = [g if g is not None else s.logprobs for g, s in zip(given, scored)]
    return df.with_columns(pl.Series("token_logprobs", logprobs, dtype=f32)), check


def shuffle_prefix(ids: list[int], *, seed: int, question_id: str, trajectory: int, k: int) -> list[int]:
    """Random permutation of the generated prefix tokens (length kept), seeded per trajectory and
    checkpoint: the shuffle-prefix ablation. The prompt is never part of ``ids``."""
    out = list(ids)
    random.Random(stream_key(seed, "shuffle", question_id, trajectory, k)).shuffle(out)
    return out


def continuation_prefixes(rollouts: pl.DataFrame, *, stride: int, seed: int, variant: str):
    """(question_id, trajectory, k, generated prefix ids, prompt ids) for every checkpoint;
    k = 0 appears once per question with trajectory = -1."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    seen_q = set()
    for r in rollouts.select("question_id", "trajectory", "prompt_ids", "token_ids").iter_rows(named=True):
        q, j, prompt, toks = r["question_id"], r["trajectory"], list(r["prompt_ids"]), list(r["token_ids"])
        if q not in seen_q:
            seen_q.add(q)
            yield q, SHARED_TRAJECTORY, 0, [], prompt
        for k in checkpoint_positions(len(toks), stride):
            if k == 0:
                continue
            prefix = toks[:k]
            if variant == "shuffled":
                prefix = shuffle_prefix(prefix, seed=seed, question_id=q, trajectory=j, k=k)
            yield q, j, k, prefix, prompt


CONTINUATION_SCHEMA = {
    "question_id": pl.String,
    "trajectory": pl.Int32,
    "k": pl.Int32,
    "sample": pl.Int16,
    "answer": pl.String,
    "n_generated": pl.Int32,
    "finish_reason": pl.String,
    "cut": pl.Int16,
}


def continuation_requests(
    prefixes: list, draw: DrawSettings, stop: tuple[str, ...] = (), ranges: list | None = None
) -> list[Request]:
    """One request of K = ``draw.n_samples`` samples per prefix (question, trajectory, k, prefix
    ids, prompt ids), each sample on its own random stream; ``ranges``: samples [lo, hi) of each
    instead (a round of adaptive sampling). A continuation completes a response of at most
    ``max_new_tokens``: after a prefix of k tokens it may add max_new_tokens - k."""
    ranges = ranges or [(0, draw.n_samples)] * len(prefixes)
    return [
        Request(
            tuple(prompt + prefix),
            tuple(stream_key(draw.seed, "continuation", q, j, k, s) for s in range(*span)),
            answer_start=len(prompt),
            stop=tuple(stop),
            max_new_tokens=draw.decoding.max_new_tokens - len(prefix),
        )
        for (q, j, k, prefix, prompt), span in zip(prefixes, ranges)
    ]


def continue_prefixes(
    backend: Backend,
    prefixes: list,
    *,
    draw: DrawSettings,
    rules: ResponseRules,
    tails: dict | None = None,
    golds: dict | None = None,
) -> tuple[pl.DataFrame, dict]:
    """K = ``draw.n_samples`` continuations of each given prefix (from ``continuation_prefixes``),
    one row per sample in sample order, and the token ledger of this work.

    With ``rules.answer_final`` a continuation stops as soon as its answer (extracted from prefix +
    continuation) can no longer change: the answers are those of running it to the end.
    ``tails[(question, trajectory)]``: tokens a trajectory generated after its own answer settled,
    the ledger's estimate of what an early-stopped continuation would have gone on to generate.
    ``rules.stop``: the prompt's stop strings, which end a continuation as they end a rollout.
    ``draw.adaptive``: draw in rounds (``rounds.draw_in_rounds``; ``golds``: gold per question)."""
    from siaflow.generation.rounds import draw_in_rounds

    def one_round(chunk, ranges):
        requests = continuation_requests(chunk, draw, rules.stop, ranges)
        return draw_from_prefixes(
            backend,
            chunk,
            requests,
            draw.decoding,
            extract=rules.extract,
            answer_final=rules.answer_final,
            progress=f"continuations ({draw.variant})",
            first=[lo for lo, _ in ranges],
        )

    df, gens, work, rounds = draw_in_rounds(
        prefixes, one_round, k_max=draw.n_samples, adaptive=draw.adaptive, golds=golds
    )
    tails = tails or {}
    settled = sum(g.finish_reason == "answer" for gs in gens for g in gs)
    tail_tokens = sum(
        tails.get((q, j), 0) for (q, j, *_), gs in zip(prefixes, gens) for g in gs if g.finish_reason == "answer"
    )
    ledger = {"prefixes": work["prefixes"], "continuations": sum(len(gs) for gs in gens)}
    ledger.update(prompt_tokens=work["prompt_tokens"], generated_tokens=work["generated_tokens"])
    ledger.update(
        settled_at_answer=settled,
        naive_generated_tokens=work["generated_tokens"] + tail_tokens,
        # what the engine computed: prompt tokens prefilled, and decode steps (one per distinct
        # token history when the backend shares rows; else one per sample and token)
        prefill_tokens=work["prefill_tokens"],
        decoded_tokens=work["decoded_tokens"],
        **rounds,  # adaptive sampling: rounds, stopped_early, checkpoints per K
    )
    return df, ledger


def draw_from_prefixes(
    backend: Backend,
    prefixes: list,
    requests: list[Request],
    decoding: Decoding,
    *,
    extract: Callable[[str], str],
    answer_final: Callable[[str], bool] | None,
    progress: str,
    first: list[int] | None = None,
) -> tuple[pl.DataFrame, list, dict]:
    """Generate ``requests`` (one per prefix of ``prefixes``: question, trajectory, k, prefix ids,
    prompt ids) and return the draws (one row per sample in sample order, each answer extracted
    from prefix + sample), the generations, and the work done: prefixes, prompt and generated
    tokens, and what the engine prefilled and decoded (its ``stats``, where it keeps them). The
    full continuations and the forced-answer probes (``siaflow.generation.probes``) both draw here.
    ``first``: the index of each request's first sample (a round of adaptive sampling; else 0)."""
    before = dict(getattr(backend, "stats", {}))
    gens = (
        backend.generate(requests, decoding, token_stats=False, progress=progress, answer_final=answer_final)
        if requests
        else []
    )
    stats = {k: v - before.get(k, 0) for k, v in getattr(backend, "stats", {}).items()}
    cols = {c: [] for c in CONTINUATION_SCHEMA}
    for (q, j, k, prefix, _), gs, s0 in zip(prefixes, gens, first or [0] * len(prefixes)):
        for s, g in enumerate(gs, start=s0):
            cols["question_id"].append(q)
            cols["trajectory"].append(j)
            cols["k"].append(k)
            cols["sample"].append(s)
            cols["answer"].append(extract(backend.decode(prefix + g.token_ids)))
            cols["n_generated"].append(len(g.token_ids))
            cols["finish_reason"].append(g.finish_reason)
            cols["cut"].append(g.cut)
    prompt_tokens = sum(len(r.prompt_ids) for r in requests)
    generated = sum(g.n_sampled for gs in gens for g in gs)
    work = {"prefixes": len(requests), "prompt_tokens": prompt_tokens, "generated_tokens": generated}
    work.update(
        prefill_tokens=stats.get("prefill_tokens", prompt_tokens), decoded_tokens=stats.get("decoded_tokens", generated)
    )
    return pl.DataFrame(cols, schema=CONTINUATION_SCHEMA), gens, work


def run_continuations(
    backend: Backend,
    rollouts: pl.DataFrame,
    *,
    draw: DrawSettings,
    rules: ResponseRules,
    output=None,
    part_prefixes: int = 256,
    shared_k0: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict]:
    """K = ``draw.n_samples`` continuations of every checkpoint prefix (at ``draw.stride``, of
    ``draw.variant``), one row per sample in sample order (so a
    coarser K' <= K is an exact sub-sample), with each sample's extracted answer.

    The answer is extracted from prefix + continuation: at k = T the prefix already holds it.
    Sample j of (question, trajectory, k) uses the same random stream in every variant.
    With ``output``, work is saved in parts of ``part_prefixes`` prefixes beside it and a rerun
    after a kill resumes (``siaflow.generation.resume``). ``shared_k0``: the empty-prefix (k = 0) rows of
    another variant of the same shard. The empty prefix is the same in every variant, so its draws
    are reused instead of sampled again. ``rules.answer_final``: stop each continuation once its
    answer is settled (``continue_prefixes``). Returns the table and a token ledger, whose
    ``naive_generated_tokens`` estimates what the naive procedure (every continuation run to its
    end, the empty prefix sampled once per trajectory and per variant) would have generated.
    Parts drawn or read otherwise (``draw.as_identity``, ``rules.as_identity``) are not resumed."""
    prefixes = list(continuation_prefixes(rollouts, stride=draw.stride, seed=draw.seed, variant=draw.variant))
    tails = answer_tails(backend, rollouts, rules.answer_final) if rules.answer_final is not None else {}
    k0, prefixes = _take_shared_k0(shared_k0, prefixes, None if draw.adaptive else draw.n_samples)

    golds = dict(rollouts.select("question_id", "gold").iter_rows()) if draw.adaptive else None

    def work(chunk):
        return continue_prefixes(backend, list(chunk), draw=draw, rules=rules, tails=tails, golds=golds)

    if output is None or not prefixes:
        df, ledger = work(prefixes)
    else:
        from siaflow.generation.resume import run_in_parts

        identity = {**draw.as_identity(), "shared_k0": k0 is not None, **rules.as_identity()}
        identity.update(backend.info.identity())
        df, ledger = run_in_parts(prefixes, work, output=output, chunk=part_prefixes, identity=identity)
    if k0 is not None:
        df = pl.concat([k0, df]).sort("question_id", "trajectory", "k", "sample", maintain_order=True)
        ledger = {**ledger, "shared_prefixes": k0["question_id"].n_unique()}
    ledger["naive_generated_tokens"] = _naive_with_k0(df, ledger, rollouts, shared=k0 is not None)
    return df, ledger


def _take_shared_k0(shared_k0: pl.DataFrame | None, prefixes: list, n_continuations: int | None):
    """(the shared empty-prefix rows, the prefixes left to sample): another variant's k = 0 draws
    of this shard, checked to be K per question (None: adaptive, each its own K), replace this
    variant's own empty prefixes."""
    if shared_k0 is None:
        return None, prefixes
    k0 = shared_k0.filter(pl.col("k") == 0).select(list(CONTINUATION_SCHEMA)).cast(CONTINUATION_SCHEMA)
    wanted = {q for q, _, k, _, _ in prefixes if k == 0}
    expected = k0.height if n_continuations is None else len(wanted) * n_continuations
    if set(k0["question_id"]) != wanted or k0.height != expected:
        raise ValueError("shared_k0 does not hold the K empty-prefix draws of each of this shard's questions")
    return k0, [p for p in prefixes if p[2] != 0]


def _naive_with_k0(df: pl.DataFrame, ledger: dict, rollouts: pl.DataFrame, *, shared: bool) -> int:
    """The ledger's naive token count with the empty prefix as the naive procedure samples it: once
    per trajectory, in every variant (the draws here sample it once per question)."""
    k0_rows = df.filter(pl.col("k") == 0)
    k0_tokens = int(k0_rows.select(draw_tokens().sum()).item())
    n_traj = rollouts.select("question_id", "trajectory").unique().height
    n_q = rollouts["question_id"].n_unique()
    copies = n_traj / n_q if n_q else 0
    owned = 0 if shared else k0_tokens  # tokens of the empty prefix already counted in the ledger
    return int(round(ledger.get("naive_generated_tokens", 0) - owned + copies * k0_tokens))


def answer_tails(backend: Backend, rollouts: pl.DataFrame, answer_final: Callable[[str], bool]) -> dict:
    """Per (question, trajectory): tokens the trajectory generated after its answer settled (0 when
    it never settled before the end): the ledger's stand-in for what a continuation stopped at its
    answer would have gone on to generate."""
    from siaflow.generation.backends.base import TextWatch

    tails = {}
    for q, j, toks in rollouts.select("question_id", "trajectory", "token_ids").iter_rows():
        watch = TextWatch(backend.decode, [], answer_final=answer_final)
        toks = list(toks)
        tails[(q, j)] = next((len(toks) - t - 1 for t, x in enumerate(toks) if watch.push(x)), 0)
    return tails
