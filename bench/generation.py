"""Benchmarks 1 and 2 of bench/run.py: the continuation tokens siaflow decodes against the naive
procedure, and the transformers backend's throughput against a plain generate loop."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _setup(cfg: dict, model: str, n_questions: int, dataset: str):
    """The model's backend, and its rollouts on the first ``n_questions`` of ``dataset``, made as
    the workflow makes them (responses end at their answer and the prompt's stop strings)."""
    from dataclasses import replace

    import polars as pl

    from siaflow.answers import response_rules
    from siaflow.generation.backends import EngineSettings, TransformersSettings, open_backend
    from siaflow.generation.rollouts import run_rollouts
    from siaflow.generation.settings import DrawSettings
    from siaflow.inputs.datasets import build_prompts, load_dataset, prompt_for

    dspec = cfg["datasets"][dataset]
    questions = load_dataset(dataset, {**dspec, "n_questions": n_questions})
    mspec = cfg["models"][model]
    engine = TransformersSettings(batch_rows=cfg["sampling"]["batch_rows"])
    backend = open_backend(EngineSettings("transformers", str(ROOT / mspec["path"]), engine))
    template = cfg["prompts"][prompt_for(mspec, dspec["answer_type"])]
    prompts, ids = build_prompts(backend, template, questions)
    draw = DrawSettings.of(cfg["decoding"], cfg["sampling"], n_samples=cfg["sampling"]["n_trajectories"])
    rules = response_rules(dspec, template, stop_at_answer=cfg["sampling"]["stop_at_answer"], example_prompt=prompts[0])
    roll = run_rollouts(backend, questions, prompts, draw=draw, rules=replace(rules, answer_start=None), prompt_ids=ids)
    return backend, draw.decoding, rules, roll.filter(pl.col("trajectory") < cfg["sampling"]["n_trajectories"])


def _naive_prefixes(roll, step: int, variant: str, seed: int):
    """Every checkpoint prefix of every trajectory, k = 0 included, shuffled for that variant."""
    from siaflow.generation.rollouts import shuffle_prefix
    from siaflow.keys import checkpoint_positions

    for q, j, prompt, toks in roll.select("question_id", "trajectory", "prompt_ids", "token_ids").iter_rows():
        for k in checkpoint_positions(len(toks), step):
            prefix = list(toks[:k])
            if variant == "shuffled" and k:
                prefix = shuffle_prefix(prefix, seed=seed, question_id=q, trajectory=j, k=k)
            yield q, j, k, prefix, list(prompt)


def _run_naive(backend, roll, cfg: dict, decoding, rules):
    """The naive procedure, one model row per sample: both variants at the main stride and Table
    3's coarse grid on its own, every continuation to its end (``rules`` without answer stopping).
    Returns the draws and tokens."""
    from siaflow.generation.rollouts import continue_prefixes
    from siaflow.generation.settings import DrawSettings

    s, mc = cfg["sampling"], cfg["mc_ablation"]
    backend.share_rows = False
    naive, tokens = {}, 0
    for variant in ("original", "shuffled"):
        draw = DrawSettings(decoding, s["seed"], s["n_continuations"], stride=s["strides"][0], variant=variant)
        prefixes = list(_naive_prefixes(roll, draw.stride, variant, draw.seed))
        naive[variant], led = continue_prefixes(backend, prefixes, draw=draw, rules=rules)
        tokens += led["generated_tokens"]
    draw = DrawSettings(decoding, s["seed"], mc["n_continuations"], stride=mc["stride"])
    prefixes = list(_naive_prefixes(roll, draw.stride, "original", draw.seed))
    naive_mc, led = continue_prefixes(backend, prefixes, draw=draw, rules=rules)
    backend.share_rows = True
    return naive, naive_mc, tokens + led["generated_tokens"]


def bench_tokens(cfg: dict, n_questions: int, dataset: str) -> list[dict]:
    """siaflow (k = 0 once per question and shared by the shuffled variant, stop at the settled
    answer, Table 3 as a sub-sample) against the naive procedure (every checkpoint of every
    trajectory, k = 0 included, K continuations run to their end, in each variant, and Table 3's
    coarse grid run on its own). Same seeds: where both sample the same stream, answers must agree."""
    from dataclasses import replace

    import polars as pl

    from siaflow.analysis.metrics import subsample_continuations
    from siaflow.generation.rollouts import run_continuations
    from siaflow.generation.settings import DrawSettings

    s, mc = cfg["sampling"], cfg["mc_ablation"]
    rows = []
    for model in cfg["models"]:
        backend, decoding, rules, roll = _setup(cfg, model, n_questions, dataset)
        draw = DrawSettings(decoding, s["seed"], s["n_continuations"], stride=s["strides"][0])
        t0 = time.perf_counter()
        orig, led_o = run_continuations(backend, roll, draw=draw, rules=rules)
        shuf = replace(draw, variant="shuffled")
        shuf, led_s = run_continuations(backend, roll, draw=shuf, rules=rules, shared_k0=orig)
        t_sia = time.perf_counter() - t0
        # what siaflow's engine decoded (one step per distinct token history); the samples it
        # delivered are led["generated_tokens"]
        sia_tokens = led_o["decoded_tokens"] + led_s["decoded_tokens"]
        sia_sampled = led_o["generated_tokens"] + led_s["generated_tokens"]
        ledger_naive = led_o["naive_generated_tokens"] + led_s["naive_generated_tokens"]

        t0 = time.perf_counter()
        naive, naive_mc, naive_tokens = _run_naive(backend, roll, cfg, decoding, replace(rules, answer_final=None))
        t_naive = time.perf_counter() - t0

        keys = ["question_id", "trajectory", "k", "sample"]
        same = orig.filter(pl.col("k") > 0).join(naive["original"], on=keys, suffix="_naive")
        sub = subsample_continuations(
            orig.lazy(), roll.lazy(), stride=mc["stride"], n_continuations=mc["n_continuations"]
        ).collect()
        same_mc = sub.filter(pl.col("k") > 0).join(naive_mc, on=keys, suffix="_naive")
        identical = (same["answer"] == same["answer_naive"]).sum() + (
            same_mc["answer"] == same_mc["answer_naive"]
        ).sum()
        rows.append(
            {"model": model, "dataset": dataset, "questions": n_questions, "siaflow_tokens": sia_tokens}
            | {"siaflow_sampled_tokens": sia_sampled, "naive_tokens": naive_tokens, "ratio": sia_tokens / naive_tokens}
            | {
                "ledger_naive_estimate": ledger_naive,
                "settled_at_answer": led_o["settled_at_answer"] + led_s["settled_at_answer"],
            }
            | {"answers_compared": same.height + same_mc.height, "answers_identical": int(identical)}
            | {"siaflow_s": round(t_sia, 1), "naive_s": round(t_naive, 1)}
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_throughput(cfg: dict, n_questions: int, dataset: str, n_prefixes: int = 96) -> dict:
    """Same model (the config's first sft model), same checkpoint prefixes, K samples each, same
    decoding (and the prompt's stop strings, which a plain generate loop cannot apply, are not used)."""
    import torch

    from siaflow.generation.backends import Request
    from siaflow.generation.rollouts import continuation_prefixes
    from siaflow.generation.sampling import stream_key

    s = cfg["sampling"]
    K = s["n_continuations"]
    model = next(m for m, spec in cfg["models"].items() if spec.get("regime") == "sft")
    backend, decoding, _, roll = _setup(cfg, model, min(n_questions, 16), dataset)
    prefixes = list(continuation_prefixes(roll, stride=s["strides"][0], seed=s["seed"], variant="original"))[
        :n_prefixes
    ]
    reqs = [
        Request(tuple(prompt + prefix), tuple(stream_key("bench", q, j, k, i) for i in range(K)))
        for q, j, k, prefix, prompt in prefixes
    ]
    timed = {}
    for share in (False, True):  # one row per sample, then shared rows (the default)
        backend.share_rows = share
        before = backend.stats["decoded_tokens"]
        t0 = time.perf_counter()
        gens = backend.generate(reqs, decoding)
        timed[share] = (time.perf_counter() - t0, backend.stats["decoded_tokens"] - before)
    t_ours, decoded = timed[True]
    ours = sum(g.n_sampled for gs in gens for g in gs)

    t0 = time.perf_counter()
    plain = _plain_generate(backend, reqs, decoding, K)
    t_plain = time.perf_counter() - t0
    res = {
        "model": model,
        "prefixes": len(reqs),
        "K": K,
        "siaflow_tokens": ours,
        "siaflow_tok_s": ours / t_ours,
        "siaflow_decoded_tokens": decoded,
        "unshared_tok_s": ours / timed[False][0],
        "plain_tokens": plain,
        "plain_tok_s": plain / t_plain,
        "speedup": (ours / t_ours) / (plain / t_plain),
        "unshared_speedup": (ours / timed[False][0]) / (plain / t_plain),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(res), flush=True)
    return res


def _plain_generate(backend, reqs, decoding, K: int) -> int:
    """A per-prefix ``model.generate(num_return_sequences=K)`` loop on the backend's model: the
    tokens it sampled, each row up to and including its first EOS."""
    import torch

    hf, eos = backend.model, backend.eos_token_ids
    plain = 0
    with torch.inference_mode():
        for r in reqs:
            ids = torch.tensor([r.prompt_ids])
            out = hf.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=decoding.temperature,
                top_p=decoding.top_p,
                max_new_tokens=min(decoding.max_new_tokens, backend.max_context - ids.shape[1]),
                num_return_sequences=K,
                eos_token_id=list(eos),
                pad_token_id=backend.pad_id,
            )
            new = out[:, ids.shape[1] :]
            for row in new.tolist():
                plain += next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
    return plain
