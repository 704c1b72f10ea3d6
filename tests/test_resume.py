"""A continuation job killed mid-shard resumes from its saved parts: the rerun completes with
exactly the expected rows and the same values as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from siaflow.keys import checkpoint_positions

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
CONT = "continuations/toy-sft/toy-arith/stride-4/original/shard-0.parquet"


def _config(tmp: Path, name: str) -> Path:
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["results"] = str(tmp / name)
    cfg["models"] = {"toy-sft": cfg["models"]["toy-sft"]}
    del cfg["training_dynamics"]  # it replays toy-base too
    cfg["datasets"]["toy-arith"]["n_questions"] = 6
    cfg["sampling"].update(
        n_trajectories=3, n_continuations=6, strides=[4], shard_size=6, parts={"prefixes": 4, "questions": 2}
    )
    cfg["edis"].update(pool_size=4, n_values=[2, 4])
    cfg["mc_ablation"] = {"stride": 8, "n_continuations": 3}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cmd(cfg: Path, target: Path, *extra):
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        str(target),
        "--rerun-incomplete",
        *extra,
        "--configfile",
        str(cfg),
        "--directory",
        str(ROOT),
    ]


def test_killed_continuation_job_resumes_exactly(tmp_path):
    ref_cfg, cut_cfg = _config(tmp_path, "ref"), _config(tmp_path, "cut")
    ref_out, cut_out = tmp_path / "ref" / CONT, tmp_path / "cut" / CONT
    res = subprocess.run(_cmd(ref_cfg, ref_out), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]

    parts = cut_out.with_name(cut_out.name + ".parts")
    proc = subprocess.Popen(
        _cmd(cut_cfg, cut_out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while not (parts / "part-00003.parquet").exists():
        assert proc.poll() is None and time.time() < deadline, "the job ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job, as a scheduler's preemption would
    proc.wait()
    assert not cut_out.exists()
    n_parts = len(list(parts.glob("part-*.parquet")))
    assert n_parts >= 4

    subprocess.run(
        [sys.executable, "-m", "snakemake", "--unlock", "--configfile", str(cut_cfg), "--directory", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    res = subprocess.run(_cmd(cut_cfg, cut_out), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    # the main stride's variants run in one job (continuations_both_variants), the original first
    log = (tmp_path / "cut/logs/continuations/toy-sft/toy-arith/stride-4/both-variants/shard-0.log").read_text()
    assert "already written" in log  # it resumed rather than recomputed
    assert not parts.exists()  # parts are removed once the shard is complete

    ref, cut = pl.read_parquet(ref_out), pl.read_parquet(cut_out)
    roll = pl.read_parquet(tmp_path / "cut/rollouts/toy-sft/toy-arith/shard-0.parquet").filter(pl.col("trajectory") < 3)
    expected = 6 * (6 + sum(len(checkpoint_positions(t, 4)) - 1 for t in roll["T"]))
    assert cut.height == ref.height == expected
    assert cut.select("question_id", "trajectory", "k", "sample").is_duplicated().sum() == 0
    assert cut.equals(ref)
