"""Rules of ``workflow/rules/generation.smk``: rollouts and checkpoint continuations, the only
stage that runs a language model (torch, and a backend chosen by ``models.<name>.backend``)."""

from __future__ import annotations

import time

import polars as pl
import torch

from siaflow import io
from siaflow.analysis.estimators import sia_trajectories
from siaflow.answers import ResponseRules, response_rules
from siaflow.generation.backends import Decoding, backend_for, scorer_for
from siaflow.generation.imported import continuations_table, rollouts_table
from siaflow.generation.probes import ProbeSpec, run_probes
from siaflow.generation.resume import clear_parts, run_in_parts
from siaflow.generation.rollouts import ROLLOUT_COLUMNS, rescore_rollouts, run_continuations, run_rollouts
from siaflow.generation.settings import DrawSettings
from siaflow.inputs.datasets import build_prompts, shard_slice
from siaflow.inputs.generation_files import read_continuations, read_rollouts, rollout_keys, sha256
from siaflow.inputs.generations import files_of
from siaflow.keys import PROBE_VARIANT
from siaflow.stages.common import stage


def _shard_questions(sm) -> tuple[pl.DataFrame, tuple[int, int]]:
    df = pl.read_parquet(sm.input.data)
    start, stop = shard_slice(df.height, sm.params.sampling["shard_size"], int(sm.wildcards.shard))
    return df.slice(start, stop - start), (start, stop)


def _rules(sm, example_prompt: str) -> ResponseRules:
    return response_rules(
        sm.params.dataset,
        sm.params.prompt,
        stop_at_answer=sm.params.sampling["stop_at_answer"],
        example_prompt=example_prompt,
    )


@stage
def rollouts(sm) -> None:
    """``n_rollouts`` responses to every question of one shard, with per-token statistics."""
    torch.set_num_threads(max(1, int(sm.threads)))
    if sm.params.model.get("generations"):
        return _import_rollouts(sm)  # made elsewhere: docs/own-generations.md
    p, s = sm.params, sm.params.sampling
    questions, qrange = _shard_questions(sm)
    backend = backend_for(p.model, s, label=sm.wildcards.model)
    prompts, prompt_ids = build_prompts(backend, p.prompt, questions)
    draw = DrawSettings.of(p.decoding, s, n_samples=p.n_rollouts)
    rules = _rules(sm, prompts[0])

    def work(idx):
        idx = list(idx)
        ids = [prompt_ids[i] for i in idx]
        df = run_rollouts(backend, questions[idx], [prompts[i] for i in idx], draw=draw, rules=rules, prompt_ids=ids)
        return df, {"trajectories": df.height}

    identity = {"questions": questions["question_id"].to_list(), "prompts": prompts, **draw.rollout_identity()}
    identity |= {**backend.info.identity(), **rules.as_identity()}
    identity["columns"] = list(ROLLOUT_COLUMNS)  # parts an older siaflow wrote, without answer_start, are redone
    df, _ = run_in_parts(
        list(range(questions.height)), work, output=sm.output[0], chunk=s["parts"]["questions"], identity=identity
    )
    token_stats = {"source": backend.info.name, "entropy_kind": backend.info.entropy_kind}
    if backend.info.entropy_kind != "exact" and s["exact_token_stats"]:
        df, token_stats = _exact_token_stats(backend, df, p.model, draw.decoding)
    df = df.with_columns(model=pl.lit(sm.wildcards.model), dataset=pl.lit(sm.wildcards.dataset))
    prov = _rollouts_provenance(sm, backend, qrange, prompts[0], draw.decoding, rules, token_stats, df)
    io.write_parquet(df, sm.output[0], prov)
    clear_parts(sm.output[0])
    backend.close()  # while the job's log is open: vLLM logs its engine's shutdown
    print(
        f"rollouts: {df.height} trajectories, accuracy {df['correct'].mean():.3f}, "
        f"mean T {df['T'].mean():.1f}, finish reasons {prov['finish_reasons']}"
    )


def _rollouts_provenance(sm, backend, qrange, example_prompt, decoding, rules, token_stats, df) -> dict:
    """How a rollouts shard was made: model, revision, backend, prompt, decoding, seed, N, the
    response rules, where its token statistics come from, and its finish reasons."""
    p, s = sm.params, sm.params.sampling
    return io.provenance(
        step="rollouts",
        model=sm.wildcards.model,
        model_path=p.model["path"],
        revision=backend.info.revision,
        backend=vars(backend.info),
        regime=p.model["regime"],
        dataset=sm.wildcards.dataset,
        shard=int(sm.wildcards.shard),
        question_range=list(qrange),
        prompt_template=p.prompt,
        example_prompt=example_prompt,
        decoding=decoding.as_dict(),
        seed=s["seed"],
        n_trajectories=s["n_trajectories"],
        n_rollouts=p.n_rollouts,
        stop_at_answer=s["stop_at_answer"],
        stop=list(rules.stop),
        response_preamble=rules.preamble,
        entropy_kind=token_stats["entropy_kind"],
        token_stats=token_stats,
        finish_reasons=dict(df["finish_reason"].value_counts().iter_rows()),
    )


def _exact_token_stats(backend, df: pl.DataFrame, model: dict, decoding: Decoding):
    """Close the engine, then score every rollout exactly through transformers (same weights, the
    dtype the engine ran in, DeepConf's k = the engine's top k): ``rollouts.rescore_rollouts``."""
    backend.close()
    scorer = scorer_for(model, backend)
    df, check = rescore_rollouts(scorer, df, decoding)
    print(f"exact token statistics: {check}")
    return df, {
        "source": f"{backend.info.name} tokens, scored by transformers",
        "entropy_kind": "exact",
        "scorer": scorer.info.identity(),
        "check": check,
    }


def _imported(files: list[str], scorer) -> dict:
    """Where imported generations come from: each file's path and SHA-256, and the model that read them."""
    return {"files": [{"path": str(f), "sha256": sha256(f)} for f in files], "model": scorer.info.identity()}


def _import_rollouts(sm) -> None:
    """Rule rollouts for a model with ``generations``: the shard's rows of its rollout files,
    tokenised, read and scored by the named model (``siaflow.generation.imported``)."""
    p, s = sm.params, sm.params.sampling
    files = files_of(p.model["generations"][sm.wildcards.dataset], "rollouts")
    every = pl.read_parquet(sm.input.data)
    rows = read_rollouts(files, every, p.dataset["answer_type"], p.n_rollouts)
    questions, qrange = _shard_questions(sm)
    rows = [r for r in rows if r["question_id"] in set(questions["question_id"])]
    scorer = backend_for(p.model, s, label=sm.wildcards.model)
    decoding, example = Decoding(**p.decoding), rows[0]["prompt"] if rows else ""
    rules = _rules(sm, example)
    golds = dict(zip(every["question_id"], every["gold"]))
    df, check = rollouts_table(scorer, rows, golds, rules=rules, decoding=decoding)
    df = df.with_columns(model=pl.lit(sm.wildcards.model), dataset=pl.lit(sm.wildcards.dataset))
    stats = {"source": "imported tokens, scored by transformers", "entropy_kind": "exact"}
    stats.update(scorer=scorer.info.identity(), check=check)
    prov = _rollouts_provenance(sm, scorer, qrange, example, decoding, rules, stats, df)
    io.write_parquet(df, sm.output[0], {**prov, "imported_rollouts": _imported(files, scorer)})
    scorer.close()
    print(f"imported rollouts: {df.height} trajectories, accuracy {df['correct'].mean():.3f}, scoring check {check}")


def _import_continuations(sm) -> None:
    """Rule continuations for a model with ``generations``: the shard's rows of its continuation
    files, each answer read from prefix + continuation (``siaflow.generation.imported``)."""
    p, s = sm.params, sm.params.sampling
    entry = p.model["generations"][sm.wildcards.dataset]
    files = files_of(entry, "continuations")
    rows = read_continuations(files, rollout_keys(files_of(entry, "rollouts")))
    roll, backend = _setup_continuations(sm)
    rows = [r for r in rows if r["question_id"] in set(roll["question_id"])]
    rules = _rules(sm, roll["prompt"][0] if roll.height else "")
    K = s["n_continuations"]
    df, ledger = continuations_table(backend, rows, roll, rules=rules, stride=p.stride, n_continuations=K, files=files)
    prov = {
        **io.read_provenance(sm.input.rollouts),
        **io.provenance(step="continuations", stride=p.stride, variant=p.variant, n_continuations=K, ledger=ledger),
        "imported_continuations": _imported(files, backend),
    }
    io.write_parquet(df, sm.output[0], prov)
    backend.close()
    print(f"imported continuations: {ledger}")


def _setup_continuations(sm):
    torch.set_num_threads(max(1, int(sm.threads)))
    roll = sia_trajectories(pl.read_parquet(sm.input.rollouts), sm.params.sampling["n_trajectories"])
    return roll, backend_for(sm.params.model, sm.params.sampling, label=sm.wildcards.model)


@stage
def continuations(sm) -> None:
    """K continuations of every checkpoint of a shard's trajectories, for one stride and variant
    (the shuffled variant reuses the original's empty-prefix draws)."""
    if sm.params.model.get("generations"):
        return _import_continuations(sm)  # made elsewhere: docs/own-generations.md
    roll, backend = _setup_continuations(sm)
    shared = pl.read_parquet(sm.input.original) if sm.input.get("original") else None
    _continue_variant(sm, backend, roll, sm.params.variant, sm.output[0], shared)
    backend.close()


@stage
def continuations_both_variants(sm) -> None:
    """The original then the shuffled variant of one shard at the main stride: one engine start,
    and the shuffled variant takes the original's empty-prefix draws from memory."""
    roll, backend = _setup_continuations(sm)
    original = _continue_variant(sm, backend, roll, "original", sm.output.original, None)
    _continue_variant(sm, backend, roll, "shuffled", sm.output.shuffled, original)
    backend.close()


def _continue_variant(sm, backend, roll, variant: str, output: str, shared_k0):
    p, s = sm.params, sm.params.sampling
    rules = _rules(sm, roll["prompt"][0] if roll.height else "")
    draw = DrawSettings.of(p.decoding, s, n_samples=s["n_continuations"], stride=p.stride, variant=variant)
    t0 = time.perf_counter()
    df, ledger = run_continuations(
        backend, roll, draw=draw, rules=rules, output=output, part_prefixes=s["parts"]["prefixes"], shared_k0=shared_k0
    )
    ledger["seconds"] = round(time.perf_counter() - t0, 3)  # generation time: the cost plan's throughput
    prov = {
        **io.read_provenance(sm.input.rollouts),
        **io.provenance(
            step="continuations", stride=p.stride, variant=variant, n_continuations=s["n_continuations"], ledger=ledger
        ),
        **({"adaptive": draw.adaptive.as_dict()} if draw.adaptive else {}),  # K per checkpoint: the ledger
    }
    io.write_parquet(df, output, prov)
    clear_parts(output)
    print(f"continuations ({variant}): {ledger}")
    return df


@stage
def probes(sm) -> None:
    """K forced-answer probes of every checkpoint of a shard's trajectories (``siaflow.generation.probes``)."""
    roll, backend = _setup_continuations(sm)
    p, s = sm.params, sm.params.sampling
    spec = ProbeSpec.of(p.probe)
    draw = DrawSettings.of(p.decoding, s, n_samples=spec.n_samples, stride=p.stride, variant=PROBE_VARIANT)
    rules = _rules(sm, roll["prompt"][0] if roll.height else "")
    t0 = time.perf_counter()
    df, ledger = run_probes(
        backend, roll, spec, draw=draw, rules=rules, output=sm.output[0], part_prefixes=s["parts"]["prefixes"]
    )
    ledger["seconds"] = round(time.perf_counter() - t0, 3)
    prov = {
        **io.read_provenance(sm.input.rollouts),
        **io.provenance(
            step="probes",
            stride=p.stride,
            variant=PROBE_VARIANT,
            n_continuations=spec.n_samples,
            probe=spec.as_dict(),
            ledger=ledger,
        ),
        **({"adaptive": draw.adaptive.as_dict()} if draw.adaptive else {}),
    }
    io.write_parquet(df, sm.output[0], prov)
    clear_parts(sm.output[0])
    backend.close()
    answered = df.filter(pl.col("answer") != "NULL").height / max(df.height, 1)
    print(f"probes: {df.height} answers ({answered:.1%} not NULL), {ledger}")
