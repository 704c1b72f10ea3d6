"""Adaptive Monte Carlo per checkpoint (``sampling.adaptive``, issue 32) against fixed K, side by
side in one run of the workflow (run on demand; docs/costs.md#adaptive-sampling):

    python bench/adaptive.py                                   # the toy demo, the default rule
    python bench/adaptive.py --setting k_min=4,epsilon=0.5     # one or more settings (repeatable)
    python bench/adaptive.py --config config/smollm2-k16.yaml  # SmolLM2 at K = 16 (build its model first)
    .venv-vllm/bin/python bench/adaptive.py --config config/smollm2-k16-vllm.yaml   # the same on vLLM
    python bench/adaptive.py --replay k_min=4,epsilon=0.5     # also replay settings on the fixed draws
    python bench/adaptive.py --config config/smollm2.yaml --fixed results/smollm2 --replay k_min=2
                                                               # replays only, on a fixed run made before
    python bench/adaptive.py --fixed results --unseen-gold posterior --replay delta=0.3
                                                               # replays without the unseen-gold clause

For the config, the workflow's continuations, entropy tables, Table 1 and Table 2 are made once with
fixed K and once per adaptive setting, each in its own results directory under ``--out``
(default results/bench-adaptive/<config name>/). Every adaptive run starts from a copy of the fixed
run's data and rollouts, so all read the same trajectories (the toy models are shared resources).
A directory already complete is not run again (Snakemake decides); its timings are those recorded
when it ran. Compared: decoded tokens (the continuation ledgers), the continuation jobs' wall time
(from Snakemake's log) and their generation seconds (the ledgers), Table 1's mean rho and rho_pre
with paired bootstrap intervals over questions (``metrics.compare_alignment``), Fig 2's AUC of -H_k
at each relative position (paired bootstrap over questions), Table 2's shuffled rho, whether each
adaptive Table 1 mean lies in its fixed-K interval, and where the savings come from (K and sampled
tokens by relative position and by correct / incorrect). Markdown to stdout, JSON to
``<out>/adaptive.json`` (``adaptive-replay.json`` with ``--fixed``, so that replays never overwrite a
real run's report). Benchmarks measure; they assert nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from glob import glob
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from adaptive_compare import compare_arms, markdown  # noqa: E402

TARGETS = ["table1_alignment", "table2_shuffle"]
DEFAULT = {"k_min": 8, "epsilon": 0.25, "delta": 0.2}


def parse_setting(text: str) -> dict:
    """``k_min=4,epsilon=0.5`` -> the adaptive block (on top of the defaults), enabled."""
    out = dict(DEFAULT)
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        out[key.strip()] = yaml.safe_load(value)
    return {"enabled": True, **out}


def arm_name(block: dict | None) -> str:
    if not block:
        return "fixed"
    return "adaptive-" + "-".join(f"{k}{block[k]}" for k in ("k_min", "epsilon", "delta", "step") if k in block)


def write_config(base: dict, results: Path, block: dict | None) -> Path:
    """The base config with its results directory (and sampling.adaptive) replaced, beside the run."""
    cfg = json.loads(json.dumps(base))
    cfg["results"] = str(results.relative_to(ROOT) if results.is_relative_to(ROOT) else results)
    if block:
        cfg["sampling"]["adaptive"] = block
    path = results.parent / f"{results.name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def job_walls(log: str, rule: str) -> list[float]:
    """Seconds from start to finish of every job of ``rule`` in a Snakemake log."""
    stamp = r"\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]"
    starts, walls = {}, []
    for m in re.finditer(stamp + r"\n(?:local)?rule (\w+):.*?jobid: (\d+)", log, re.S):
        if m.group(2) == rule:
            starts[m.group(3)] = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
    for m in re.finditer(stamp + r"\nFinished jobid: (\d+) \(Rule: (\w+)\)", log):
        if m.group(3) == rule and m.group(2) in starts:
            end = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            walls.append((end - starts[m.group(2)]).total_seconds())
    return walls


def run_arm(base: dict, out: Path, block: dict | None, fixed: Path, cores: int) -> dict:
    """Run one arm (Snakemake skips what is complete); its timing, recorded when its jobs ran."""
    results = out / arm_name(block)
    results.mkdir(parents=True, exist_ok=True)
    if block:  # the same trajectories as the fixed run
        for part in ("data", "rollouts"):
            if not (results / part).exists():
                shutil.copytree(fixed / part, results / part)
    cfg = write_config(base, results, block)
    snakemake = Path(sys.executable).parent / "snakemake"  # this venv's (.venv-vllm for a vLLM config)
    cmd = [str(snakemake), *TARGETS, "--profile", "profiles/local", "--cores", str(cores)]
    cmd += ["--configfile", str(cfg)]
    t0 = time.perf_counter()
    env = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", **os.environ, "OMP_NUM_THREADS": "2"}  # as the Makefile
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    (results.parent / f"{results.name}.log").write_text(log)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); log: {results.parent / results.name}.log")
    timing_file = results / "bench-timing.json"
    walls = job_walls(log, "continuations_both_variants") + job_walls(log, "continuations")
    if walls:
        timing = {"continuation_jobs_s": sum(walls), "jobs": len(walls), "snakemake_s": round(wall, 1)}
        timing |= {"when": datetime.now().isoformat(timespec="seconds"), "cores": cores}
        timing_file.write_text(json.dumps(timing))
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    return {"name": results.name, "dir": str(results), "adaptive": block, "timing": timing}


def ledger(results: str) -> dict:
    """The continuation shards' ledgers, summed (``checkpoints_K<K>`` and ``rounds`` included)."""
    from siaflow import layout
    from siaflow.io import read_provenance

    out: dict = {}
    for path in sorted(glob(layout.glob(layout.CONTINUATIONS, results=results))):
        prov = read_provenance(path)
        if prov.get("variant") not in ("original", "shuffled"):
            continue
        for key, v in (prov.get("ledger") or {}).items():
            if isinstance(v, (int, float)):
                out.setdefault(prov["model"], {}).setdefault(key, 0)
                out[prov["model"]][key] += v
    return out


def replay_check(real: str, replayed: str) -> dict:
    """Whether a real adaptive run's entropy tables are those its replay predicts (same K, H, S)."""
    import polars as pl

    from siaflow import layout

    diffs = {"tables": 0, "checkpoints": 0, "K_differs": 0, "max_abs_dH": 0.0, "max_abs_dS": 0.0}
    for path in sorted(glob(layout.glob(layout.ENTROPY, results=real))):
        keys = ["question_id", "trajectory", "k"]
        a = pl.read_parquet(path).select(*keys, "K", "H", "S")
        b = pl.read_parquet(path.replace(real, replayed, 1)).select(*keys, "K", "H", "S")
        j = a.join(b, on=keys, suffix="_r", how="full", coalesce=True)
        diffs["tables"] += 1
        diffs["checkpoints"] += j.height
        diffs["K_differs"] += j.filter(pl.col("K").ne_missing(pl.col("K_r"))).height
        for c in ("H", "S"):
            d = (j[c] - j[f"{c}_r"]).abs().max()
            diffs[f"max_abs_d{c}"] = max(diffs[f"max_abs_d{c}"], float(d if d is not None else float("nan")))
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--setting", action="append", help="adaptive settings run for real, k=v,... (default: the rule's)")
    ap.add_argument("--replay", action="append", default=[], help="adaptive settings replayed on the fixed draws")
    ap.add_argument("--out", default=None, help="results directory (default results/bench-adaptive/<config name>)")
    ap.add_argument("--fixed", default=None, help="an existing fixed-K run of the config to replay on (runs nothing)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=None, help="resamples (default: the config's)")
    ap.add_argument(
        "--unseen-gold",
        choices=["rule", "posterior", "k_min"],
        default="rule",
        help="replays only: an unseen gold runs to K (the rule), or the posterior alone decides, or stops at K_min",
    )
    args = ap.parse_args()
    os.chdir(ROOT)
    from adaptive_replay import ablate_unseen_gold, replay_run

    from siaflow.config import prepare

    base = yaml.safe_load((ROOT / args.config).read_text())
    cfg = prepare(json.loads(json.dumps(base)), ROOT / "workflow/schemas/config.schema.yaml")
    out = Path(args.out or ROOT / "results/bench-adaptive" / Path(args.config).stem).resolve()
    if args.fixed:  # replays only, on a run made before (by the workflow, with this config)
        fixed, settings = {"name": "fixed", "dir": str(Path(args.fixed).resolve()), "adaptive": None, "timing": {}}, []
    else:
        fixed, settings = run_arm(base, out, None, out / "fixed", args.cores), args.setting or [""]
    fixed["ledger"] = ledger(fixed["dir"])
    arms = [run_arm(base, out, parse_setting(s), Path(fixed["dir"]), args.cores) for s in settings]
    for arm in arms:
        arm["ledger"] = ledger(arm["dir"])
        replayed = out / f"replay-{arm['name']}"
        replay_run(fixed["dir"], replayed, arm["adaptive"], cfg)
        arm["replay_check"] = replay_check(arm["dir"], str(replayed))
    if args.unseen_gold != "rule" and (arms or not args.replay):
        raise SystemExit("--unseen-gold ablates replays only: use it with --fixed and --replay")
    ablate_unseen_gold(args.unseen_gold)
    for text in args.replay:
        block = parse_setting(text)
        name = f"replay-{arm_name(block)}"
        led = replay_run(fixed["dir"], out / name, block, cfg)
        arms.append({"name": name, "dir": str(out / name), "adaptive": block, "timing": {}, "ledger": led})
    report = {"config": args.config, "machine": f"{os.cpu_count()} CPUs", "fixed": fixed, "arms": arms}
    for arm in arms:
        arm["compare"] = compare_arms(cfg, fixed, arm, n_boot=args.bootstrap)
    dst = out / ("adaptive-replay.json" if args.fixed else "adaptive.json")
    dst.write_text(json.dumps(report, indent=1, default=str))
    print(markdown(report))
    print(f"\nJSON: {dst}")


if __name__ == "__main__":
    main()
