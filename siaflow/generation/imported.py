"""siaflow's rollouts and continuations tables from generations made elsewhere
(docs/own-generations.md; the files are read and validated by ``siaflow.inputs.generation_files``).

Texts are tokenised with the named model's tokenizer (a prompt with its special tokens, a response
or continuation without), answers are read by the same response rules as siaflow's own
(``answers.response_rules``), and the per-token statistics a file lacks come from the scoring
pass (``rollouts.rescore_rollouts``): one teacher-forced pass of the named transformers model under
the configured decoding. The tables then are those siaflow would have written.
"""

from __future__ import annotations

import polars as pl

from siaflow.answers import ResponseRules
from siaflow.generation.backends.base import Backend, Decoding, Generation
from siaflow.generation.rollouts import (
    CONTINUATION_SCHEMA,
    ROLLOUT_COLUMNS,
    ROLLOUT_TYPES,
    SHARED_TRAJECTORY,
    TOKEN_STATS,
    rescore_rollouts,
    rollout_row,
)
from siaflow.inputs.generation_files import GenerationsError
from siaflow.keys import checkpoint_positions


def _response_row(backend: Backend, r: dict, rules: ResponseRules, gold: str) -> dict:
    prompt_ids = r.get("prompt_ids") or backend.encode(r["prompt"])
    ids = list(r["token_ids"]) if "token_ids" in r else backend.encode_text(r["response"])
    if len(prompt_ids) + len(ids) > backend.max_context:
        raise GenerationsError(
            f"{r['where']}: fields 'prompt', 'response': {len(prompt_ids)} + {len(ids)} tokens exceed the "
            f"context of the scoring model ({backend.max_context} tokens)"
        )
    # the rollouts' own row: the token statistics are left to the scoring pass
    g = Generation(ids, r.get("finish_reason", "stop"), logprobs=r.get("token_logprobs"))
    return rollout_row(
        backend,
        g,
        rules.extract,
        rules.answer_start,
        question=r["question_id"],
        trajectory=r["trajectory"],
        prompt=r["prompt"],
        prompt_ids=prompt_ids,
        gold=gold,
    )


def rollouts_table(
    scorer: Backend, rows: list[dict], golds: dict, *, rules: ResponseRules, decoding: Decoding
) -> tuple[pl.DataFrame, dict]:
    """The rollouts table of validated rows (``generation_files.read_rollouts``), with the gold
    answers ``golds`` (question_id -> gold) and every per-token statistic from one scoring pass of
    ``scorer``; log-probabilities a row gives are kept, and the returned check compares them with
    the scored ones (``rescore_rollouts``)."""
    df = pl.DataFrame(
        [_response_row(scorer, r, rules, golds[r["question_id"]]) for r in rows],
        schema_overrides=ROLLOUT_TYPES,
        infer_schema_length=None,
    ).select(ROLLOUT_COLUMNS)
    df, check = rescore_rollouts(scorer, df, decoding)
    unscored = [c for c in TOKEN_STATS if c in df.columns and df[c].null_count()]
    if unscored:
        raise RuntimeError(f"the scoring pass left {unscored} empty: siaflow's scoring and this import disagree")
    return df.cast(ROLLOUT_TYPES), check


def continuations_table(
    backend: Backend,
    rows: list[dict],
    rollouts: pl.DataFrame,
    *,
    rules: ResponseRules,
    stride: int,
    n_continuations: int,
    files: list[str],
) -> tuple[pl.DataFrame, dict]:
    """The continuations table of one shard from validated rows (``read_continuations``) of its
    questions: each answer read from prefix + continuation, exactly the draws siaflow would
    store at ``stride`` with K = ``n_continuations`` for the trajectories of ``rollouts`` (the
    shard's SIA trajectories), and the token ledger of what the files hold."""
    traj = {(q, j): list(ids) for q, j, ids in rollouts.select("question_id", "trajectory", "token_ids").iter_rows()}
    traj |= {(q, SHARED_TRAJECTORY): [] for q in rollouts["question_id"].unique()}
    cols = {c: [] for c in CONTINUATION_SCHEMA}
    dropped = 0
    for r in rows:
        q, j, k = r["question_id"], r["trajectory"], r["k"]
        if (q, j) not in traj:
            dropped += 1  # a trajectory of the EDIS pool beyond sampling.n_trajectories: no SIA continuations
            continue
        prefix = traj[(q, j)]
        _check_draw(r, len(prefix), stride, n_continuations)
        ids = list(r["continuation_ids"]) if "continuation_ids" in r else backend.encode_text(r["continuation"])
        values = (q, j, k, r["sample"], rules.extract(backend.decode(prefix[:k] + ids)), len(ids))
        for c, v in zip(CONTINUATION_SCHEMA, (*values, r.get("finish_reason", "stop"), 0)):
            cols[c].append(v)
    df = pl.DataFrame(cols, schema=CONTINUATION_SCHEMA).sort("question_id", "trajectory", "k", "sample")
    _check_complete(df, traj, stride, n_continuations, files)
    ledger = {"prefixes": df.select("question_id", "trajectory", "k").unique().height, "continuations": df.height}
    ledger.update(generated_tokens=int(df["n_generated"].sum() or 0), dropped_rows=dropped)
    return df, ledger


def _check_draw(r: dict, T: int, stride: int, K: int) -> None:
    k, where = r["k"], r["where"]
    if k > T:
        raise GenerationsError(
            f"{where}: field 'k': {k} is beyond the response of trajectory {r['trajectory']} ({T} tokens)"
        )
    if k not in (0, T) and k % stride:
        raise GenerationsError(
            f"{where}: field 'k': {k} is not a checkpoint of the main stride {stride} (sampling.strides[0]): "
            f"0, {stride}, {2 * stride}, ... and T = {T}"
        )
    if r["sample"] >= K:
        raise GenerationsError(
            f"{where}: field 'sample': {r['sample']}, but sampling.n_continuations is {K} (0 to {K - 1})"
        )


def _check_complete(df: pl.DataFrame, traj: dict, stride: int, K: int, files: list[str]) -> None:
    """Every checkpoint of every trajectory with K draws: what siaflow's own table holds."""
    have = {(q, j, k): n for q, j, k, n in df.group_by("question_id", "trajectory", "k").len().iter_rows()}
    for (q, j), ids in traj.items():
        ks = [0] if j == SHARED_TRAJECTORY else [k for k in checkpoint_positions(len(ids), stride) if k]
        for k in ks:
            if have.get((q, j, k), 0) != K:
                raise GenerationsError(
                    f"{', '.join(files)}: question {q!r}, trajectory {j}, k = {k}: {have.get((q, j, k), 0)} draws of "
                    f"the {K} (sampling.n_continuations) that every checkpoint at stride {stride} needs "
                    f"(k = 0 once per question with trajectory -1)"
                )
