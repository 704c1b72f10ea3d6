"""siaflow benchmarks, measured side by side in one run (`make bench`). Prints each figure with what
it is compared against and its target:

1. tokens      continuation tokens the model decodes on the demo config: siaflow vs the naive procedure
2. throughput  continuation tokens/s: the transformers backend vs a per-prefix
               `model.generate(num_return_sequences=K)` loop, same model and prefixes
3. analysis    time and peak memory of the metric rules on a synthetic paper-scale entropy table
4. workflow    wall time of `snakemake -n` on config/paper.yaml

    python bench/run.py [--only tokens,throughput,analysis,workflow] [--questions 48]
    python bench/run.py --config config/smollm2.yaml --only tokens,throughput --dataset gsm8k-mini --questions 4 \
        --prefixes 24 --out bench/results-smollm2.json
        (sections 1 and 2 on a real model, SmolLM2-135M-Instruct; build it first with
         `snakemake --configfile config/smollm2.yaml --cores 2 resources/models/smollm2-135m-instruct`)

Benchmarks measure; they assert nothing. Tests (tests/) show the optimisations change no estimate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_config(path: str) -> dict:
    from siaflow.config import prepare

    cfg = yaml.safe_load((ROOT / path).read_text())
    return prepare(cfg, ROOT / "workflow/schemas/config.schema.yaml")


def _setup(cfg: dict, model: str, n_questions: int, dataset: str):
    """The model's backend, and its rollouts on the first ``n_questions`` of ``dataset``, made as
    the workflow makes them (responses end at their answer and the prompt's stop strings)."""
    import polars as pl

    from siaflow.answers import response_rules
    from siaflow.generation.backends import Decoding, make_backend
    from siaflow.generation.rollouts import run_rollouts
    from siaflow.inputs.datasets import build_prompts, load_dataset, prompt_for

    dspec = cfg["datasets"][dataset]
    questions = load_dataset(dataset, {**dspec, "n_questions": n_questions})
    mspec = cfg["models"][model]
    backend = make_backend("transformers", str(ROOT / mspec["path"]), batch_rows=cfg["sampling"]["batch_rows"])
    template = cfg["prompts"][prompt_for(mspec, dspec["answer_type"])]
    prompts, ids = build_prompts(backend, template, questions)
    decoding = Decoding(**cfg["decoding"])
    rules = response_rules(dspec, template, stop_at_answer=cfg["sampling"]["stop_at_answer"], example_prompt=prompts[0])
    roll = run_rollouts(
        backend,
        questions,
        prompts,
        decoding=decoding,
        n_trajectories=cfg["sampling"]["n_trajectories"],
        seed=cfg["sampling"]["seed"],
        extract=rules["extract"],
        prompt_ids=ids,
        answer_final=rules["answer_final"],
        stop=rules["stop"],
    )
    return backend, decoding, rules, roll.filter(pl.col("trajectory") < cfg["sampling"]["n_trajectories"])


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


def _run_naive(backend, roll, cfg: dict, decoding, extract, stop):
    """The naive procedure, one model row per sample: both variants at the main stride and Table
    3's coarse grid on its own, every continuation to its end. Returns the draws and tokens."""
    from siaflow.generation.rollouts import continue_prefixes

    s, mc = cfg["sampling"], cfg["mc_ablation"]
    backend.share_rows = False
    naive, tokens = {}, 0
    for variant in ("original", "shuffled"):
        naive[variant], led = continue_prefixes(
            backend,
            list(_naive_prefixes(roll, s["strides"][0], variant, s["seed"])),
            n_continuations=s["n_continuations"],
            decoding=decoding,
            seed=s["seed"],
            variant=variant,
            extract=extract,
            stop=stop,
        )
        tokens += led["generated_tokens"]
    naive_mc, led = continue_prefixes(
        backend,
        list(_naive_prefixes(roll, mc["stride"], "original", s["seed"])),
        n_continuations=mc["n_continuations"],
        decoding=decoding,
        seed=s["seed"],
        variant="original",
        extract=extract,
        stop=stop,
    )
    backend.share_rows = True
    return naive, naive_mc, tokens + led["generated_tokens"]


def bench_tokens(cfg: dict, n_questions: int, dataset: str) -> list[dict]:
    """siaflow (k = 0 once per question and shared by the shuffled variant, stop at the settled
    answer, Table 3 as a sub-sample) against the naive procedure (every checkpoint of every
    trajectory, k = 0 included, K continuations run to their end, in each variant, and Table 3's
    coarse grid run on its own). Same seeds: where both sample the same stream, answers must agree."""
    import polars as pl

    from siaflow.analysis.metrics import subsample_continuations
    from siaflow.generation.rollouts import run_continuations

    s, mc = cfg["sampling"], cfg["mc_ablation"]
    K, stride, seed = s["n_continuations"], s["strides"][0], s["seed"]
    rows = []
    for model in cfg["models"]:
        backend, decoding, rules, roll = _setup(cfg, model, n_questions, dataset)
        extract, final, stop = rules["extract"], rules["answer_final"], rules["stop"]
        t0 = time.perf_counter()
        orig, led_o = run_continuations(
            backend,
            roll,
            stride=stride,
            n_continuations=K,
            decoding=decoding,
            seed=seed,
            variant="original",
            extract=extract,
            answer_final=final,
            stop=stop,
        )
        shuf, led_s = run_continuations(
            backend,
            roll,
            stride=stride,
            n_continuations=K,
            decoding=decoding,
            seed=seed,
            variant="shuffled",
            extract=extract,
            answer_final=final,
            shared_k0=orig,
            stop=stop,
        )
        t_sia = time.perf_counter() - t0
        # what siaflow's engine decoded (one step per distinct token history); the samples it
        # delivered are led["generated_tokens"]
        sia_tokens = led_o["decoded_tokens"] + led_s["decoded_tokens"]
        sia_sampled = led_o["generated_tokens"] + led_s["generated_tokens"]
        ledger_naive = led_o["naive_generated_tokens"] + led_s["naive_generated_tokens"]

        t0 = time.perf_counter()
        naive, naive_mc, naive_tokens = _run_naive(backend, roll, cfg, decoding, extract, stop)
        t_naive = time.perf_counter() - t0

        keys = ["question_id", "trajectory", "k", "sample"]
        same = orig.filter(pl.col("k") > 0).join(naive["original"], on=keys, suffix="_naive")
        sub = subsample_continuations(
            orig.lazy(), roll.lazy(), stride=mc["stride"], n_continuations=mc["n_continuations"]
        ).collect()
        same_mc = sub.filter(pl.col("k") > 0).join(naive_mc, on=keys, suffix="_naive")
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "questions": n_questions,
                "siaflow_tokens": sia_tokens,
                "siaflow_sampled_tokens": sia_sampled,
                "naive_tokens": naive_tokens,
                "ratio": sia_tokens / naive_tokens,
                "ledger_naive_estimate": ledger_naive,
                "settled_at_answer": led_o["settled_at_answer"] + led_s["settled_at_answer"],
                "answers_compared": same.height + same_mc.height,
                "answers_identical": int(
                    (same["answer"] == same["answer_naive"]).sum()
                    + (same_mc["answer"] == same_mc["answer_naive"]).sum()
                ),
                "siaflow_s": round(t_sia, 1),
                "naive_s": round(t_naive, 1),
            }
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

    hf, eos = backend.model, backend.eos_token_ids
    t0 = time.perf_counter()
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
            for row in new.tolist():  # tokens up to and including the first EOS
                plain += next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
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


ANALYSIS_CHILD = r"""
import json, resource, sys, time
import numpy as np, polars as pl
from siaflow.analysis import fano, metrics

path, n_boot = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
ent = pl.scan_parquet(path)
grid = metrics.relative_grid(21)
boot = dict(n_boot=n_boot, ci=0.95, seed=0)
timings = {}
def timed(name, fn):
    t = time.perf_counter(); fn(); timings[name] = round(time.perf_counter() - t, 2)
timed("table1", lambda: metrics.table1_alignment(metrics.trajectory_alignment(ent)))
timed("fig1_cumulative_gain", lambda: metrics.cumulative_gain_curves(ent, h="H", grid=grid, **boot))
timed("fig2_auc", lambda: metrics.auc_curves(ent, h="H", stride=32, grid=grid, **boot))
timed("fig3_saturation", lambda: metrics.saturation_summary(ent, h="H", grid=grid, plateau_fraction=0.2, late_from=0.6,
                                                            rebound_threshold=0.2, **boot))
timed("fig_fano", lambda: fano.fano_data(ent, h="H", answer_space={"gsm8k": 1000}, n_bins=10, **boot))
total = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": round(total, 1), "peak_mb": round(peak), "timings": timings}))
"""


def synthetic_entropy_table(
    path: Path, n_models: int = 11, n_questions: int = 2791, n_traj: int = 8, stride: int = 8, seed: int = 0
) -> int:
    """A paper-scale entropy table: 11 models x 2,791 questions x N = 8 trajectories of 200-600
    tokens with a checkpoint every ``stride`` tokens and at T (about 51 per trajectory, >= 10 M
    rows), with H falling towards the answer on correct traces."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    n_tr = n_questions * n_traj
    frames = []
    for m in range(n_models):
        T_tr = rng.integers(200, 600, n_tr)
        per = -(-T_tr // stride) + 1  # k = 0, s, 2s, ... and T
        tr = np.repeat(np.arange(n_tr), per)
        c = np.arange(len(tr)) - np.repeat(np.cumsum(per) - per, per)
        T = T_tr[tr]
        k = np.minimum(c * stride, T)
        correct = (rng.random(n_tr) < 0.6)[tr]
        rel = k / T
        n = len(tr)
        h = np.clip(rng.gamma(2.0, 0.4, n) * (1 - 0.9 * rel) * np.where(correct, 0.6, 1.2), 0, 2.8)
        frames.append(
            pl.DataFrame(
                {
                    "model": f"model-{m:02d}",
                    "dataset": "gsm8k",
                    "question_id": pl.Series(tr // n_traj).cast(pl.String),
                    "trajectory": tr % n_traj,
                    "k": k,
                    "T": T,
                    "rel_pos": rel,
                    "H": h,
                    "S": h + rng.random(n),
                    "H_a": h * rng.random(n),
                    "S_b": rng.random(n) * 3,
                    "correct": correct,
                    "map_correct": correct ^ (rng.random(n) < 0.1),
                }
            )
        )
    table = pl.concat(frames)
    table.write_parquet(path)
    return table.height


def bench_analysis(tmp: Path, n_boot: int) -> dict:
    path = tmp / "paper_scale_entropy.parquet"
    rows = synthetic_entropy_table(path)
    res = subprocess.run(
        [sys.executable, "-c", ANALYSIS_CHILD, str(path), str(n_boot)], capture_output=True, text=True, cwd=ROOT
    )
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    out = {"rows": rows, "n_boot": n_boot, **json.loads(res.stdout.strip().splitlines()[-1])}
    print(json.dumps(out), flush=True)
    return out


def bench_workflow() -> dict:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "--configfile", "config/paper.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(res.stdout[-2000:] + res.stderr[-2000:])
    out = {"seconds": round(wall, 1)}
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="tokens,throughput,analysis,workflow")
    ap.add_argument(
        "--config", default="config/config.yaml", help="the config of sections 1 and 2 (default: the demo's)"
    )
    ap.add_argument("--dataset", default=None, help="the dataset of sections 1 and 2 (default: the config's first)")
    ap.add_argument("--prefixes", type=int, default=96, help="checkpoint prefixes in the throughput benchmark")
    ap.add_argument(
        "--questions", type=int, default=None, help="questions for the token benchmark (default: the demo's)"
    )
    ap.add_argument(
        "--bootstrap", type=int, default=None, help="resamples in the analysis benchmark (default: the demo's)"
    )
    ap.add_argument("--out", default=str(ROOT / "bench/results.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    import os

    os.chdir(ROOT)  # config paths (models, local datasets) are relative to the repository
    cfg = load_config(args.config)
    dataset = args.dataset or next(iter(cfg["datasets"]))
    nq = args.questions or cfg["datasets"][dataset]["n_questions"]
    only = set(args.only.split(","))
    results, lines = {}, []
    if "tokens" in only:
        rows = bench_tokens(cfg, nq, dataset)
        results["tokens"] = rows
        sia, naive = sum(r["siaflow_tokens"] for r in rows), sum(r["naive_tokens"] for r in rows)
        same, compared = sum(r["answers_identical"] for r in rows), sum(r["answers_compared"] for r in rows)
        lines.append(
            f"1. continuation tokens the model decoded, {args.config} ({dataset}, {nq} questions, all models): siaflow {sia:,} vs "
            f"naive {naive:,} = {sia / naive:.3f} of naive (target <= 0.25); answers identical where both draw "
            f"the same streams: {same:,} / {compared:,}"
        )
        for r in rows:
            lines.append(
                f"   {r['model']}: {r['siaflow_tokens']:,} vs {r['naive_tokens']:,} = {r['ratio']:.3f} (samples' own "
                f"tokens {r['siaflow_sampled_tokens']:,}); ledger's naive estimate {r['ledger_naive_estimate']:,}; "
                f"stopped at the answer: {r['settled_at_answer']:,}"
            )
    if "throughput" in only:
        r = bench_throughput(cfg, nq, dataset, args.prefixes)
        results["throughput"] = r
        lines.append(
            f"2. continuation throughput ({r['model']}, {r['prefixes']} prefixes x K = {r['K']}, {r['threads']} threads): "
            f"siaflow {r['siaflow_tok_s']:,.0f} sampled tok/s vs plain generate(num_return_sequences=K) loop "
            f"{r['plain_tok_s']:,.0f} tok/s = {r['speedup']:.1f}x (target >= 3x); with one row per sample "
            f"(share_rows off) {r['unshared_tok_s']:,.0f} tok/s = {r['unshared_speedup']:.1f}x; siaflow decoded "
            f"{r['siaflow_decoded_tokens']:,} steps for {r['siaflow_tokens']:,} sampled tokens"
        )
    if "analysis" in only:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            r = bench_analysis(Path(tmp), args.bootstrap or cfg["analysis"]["bootstrap"])
        results["analysis"] = r
        lines.append(
            f"3. analysis on a synthetic paper-scale entropy table ({r['rows']:,} rows, {r['n_boot']} bootstrap "
            f"resamples): {r['seconds']} s (target <= 60 s), peak {r['peak_mb']:,} MB (target <= 4,096 MB); "
            f"per rule: {r['timings']}"
        )
    if "workflow" in only:
        r = bench_workflow()
        results["workflow"] = r
        lines.append(f"4. snakemake -n on config/paper.yaml: {r['seconds']} s (target <= 15 s)")
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
