"""siaflow benchmarks, measured side by side in one run (`make bench`). Prints each figure with what
it is compared against and its target:

1. tokens      continuation tokens the model decodes on the demo config: siaflow vs the naive procedure
2. throughput  continuation tokens/s: the transformers backend vs a per-prefix
               `model.generate(num_return_sequences=K)` loop, same model and prefixes
3. analysis    time and peak memory of the metric rules on a synthetic paper-scale entropy table
4. workflow    wall time of `snakemake -n` on config/paper.yaml

    python bench/run.py [--only tokens,throughput,analysis,workflow] [--questions 48]
    python bench/run.py --config config/smollm2.yaml --only tokens,throughput --dataset gsm8k --questions 4 \
        --prefixes 24 --out bench/results-smollm2.json
        (sections 1 and 2 on a real model, SmolLM2-135M-Instruct; build it first with
         `snakemake --configfile config/smollm2.yaml --cores 2 resources/models/smollm2-135m-instruct`)

Run on demand, outside this suite: bench/adaptive.py (adaptive sampling against fixed K, in two runs
of the workflow; docs/costs.md#adaptive-sampling), bench/vllm_throughput.py, bench/gpu.py.

Benchmarks measure; they assert nothing. Tests (tests/) show the optimisations change no estimate.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis import bench_analysis, bench_workflow  # noqa: E402
from generation import bench_throughput, bench_tokens  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_config(path: str) -> dict:
    from siaflow.config import prepare

    cfg = yaml.safe_load((ROOT / path).read_text())
    return prepare(cfg, ROOT / "workflow/schemas/config.schema.yaml")


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
        results["tokens"] = bench_tokens(cfg, nq, dataset)
        lines += _tokens_lines(results["tokens"], args.config, dataset, nq)
    if "throughput" in only:
        r = results["throughput"] = bench_throughput(cfg, nq, dataset, args.prefixes)
        lines.append(
            f"2. continuation throughput ({r['model']}, {r['prefixes']} prefixes x K = {r['K']}, {r['threads']} threads): "
            f"siaflow {r['siaflow_tok_s']:,.0f} sampled tok/s vs plain generate(num_return_sequences=K) loop "
            f"{r['plain_tok_s']:,.0f} tok/s = {r['speedup']:.1f}x (target >= 3x); with one row per sample "
            f"(share_rows off) {r['unshared_tok_s']:,.0f} tok/s = {r['unshared_speedup']:.1f}x; siaflow decoded "
            f"{r['siaflow_decoded_tokens']:,} steps for {r['siaflow_tokens']:,} sampled tokens"
        )
    if "analysis" in only:
        with tempfile.TemporaryDirectory() as tmp:
            r = results["analysis"] = bench_analysis(Path(tmp), args.bootstrap or cfg["analysis"]["bootstrap"])
        lines.append(
            f"3. analysis on a synthetic paper-scale entropy table ({r['rows']:,} rows, {r['n_boot']} bootstrap "
            f"resamples): {r['seconds']} s (target <= 60 s), peak {r['peak_mb']:,} MB (target <= 4,096 MB); "
            f"per rule: {r['timings']}"
        )
    if "workflow" in only:
        r = results["workflow"] = bench_workflow()
        lines.append(f"4. snakemake -n on config/paper.yaml: {r['seconds']} s (target <= 15 s)")
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("\n" + "\n".join(lines))


def _tokens_lines(rows: list[dict], config: str, dataset: str, nq: int) -> list[str]:
    sia, naive = sum(r["siaflow_tokens"] for r in rows), sum(r["naive_tokens"] for r in rows)
    same, compared = sum(r["answers_identical"] for r in rows), sum(r["answers_compared"] for r in rows)
    lines = [
        f"1. continuation tokens the model decoded, {config} ({dataset}, {nq} questions, all models): siaflow {sia:,} vs "
        f"naive {naive:,} = {sia / naive:.3f} of naive (target <= 0.25); answers identical where both draw "
        f"the same streams: {same:,} / {compared:,}"
    ]
    for r in rows:
        lines.append(
            f"   {r['model']}: {r['siaflow_tokens']:,} vs {r['naive_tokens']:,} = {r['ratio']:.3f} (samples' own "
            f"tokens {r['siaflow_sampled_tokens']:,}); ledger's naive estimate {r['ledger_naive_estimate']:,}; "
            f"stopped at the answer: {r['settled_at_answer']:,}"
        )
    return lines


if __name__ == "__main__":
    main()
