"""Benchmarks 3 and 4 of bench/run.py: the analysis rules on a synthetic paper-scale entropy table,
and `snakemake -n` on config/paper.yaml."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


ANALYSIS_CHILD = r"""
import json, resource, sys, time
import numpy as np, polars as pl
from siaflow.analysis import curves, fano, metrics

path, n_boot = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
ent = pl.scan_parquet(path)
grid = curves.relative_grid(21)
boot = dict(n_boot=n_boot, ci=0.95, seed=0)
timings = {}
def timed(name, fn):
    t = time.perf_counter(); fn(); timings[name] = round(time.perf_counter() - t, 2)
timed("table1", lambda: metrics.table1_alignment(metrics.trajectory_alignment(ent), **boot))
timed("fig1_cumulative_gain", lambda: curves.cumulative_gain_curves(ent, h="H", grid=grid, **boot))
timed("fig2_auc", lambda: curves.auc_curves(ent, h="H", stride=32, grid=grid, **boot))
timed("fig3_saturation", lambda: curves.saturation_summary(ent, h="H", grid=grid, plateau_fraction=0.2, late_from=0.6,
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
                    "c_gold": rng.integers(0, 3, n),
                    "H_a": h * rng.random(n),
                    "S_b": rng.random(n) * 3,
                    "c_gold_b": rng.integers(0, 3, n),
                    "before_answer": k < T - 8,
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
