"""The workflow with `backend: vllm` on the real engine (in .venv-vllm): config/smollm2-vllm.yaml
shrunk to one model and dataset, every target built, first with the local executor, then through
`--profile slurm`, where the generation rules run vLLM as SLURM jobs (the project's shape
on a cluster), and through vLLM's OpenAI-compatible server (`backend: openai`). The SLURM run's
and the served run's tables and raw draws equal the local run's; the tables equal a recomputation
from the raw draws; the rollouts carry exact token statistics from the scoring pass.
SLURM: skipped without a cluster, except under SIAFLOW_REQUIRE_SLURM=1 (CI)."""

import os
import re
import subprocess
import sys

import polars as pl
import pytest
import yaml
from conftest import ROOT, require_slurm, slurm_snakemake
from polars.testing import assert_frame_equal
from recompute import check_entropy_table, check_probe_tables, check_table1
from vllm_support import ENGINE_ENV, require_vllm

from siaflow.generation.rollouts import TOKEN_STATS
from siaflow.io import read_provenance

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
MODEL, DATASET = "smollm2-chat", "gsm8k"
KEY_ENV = "SIAFLOW_TEST_SERVER_KEY"


def _config(tmp, name, server=None):
    """config/smollm2-vllm.yaml shrunk; with ``server`` (a vllm_support.Server), the same model
    through that server (`backend: openai`) instead of an engine in each job."""
    cfg = yaml.safe_load((ROOT / "config/smollm2-vllm.yaml").read_text())
    cfg["results"] = str(tmp / name)
    cfg["models"] = {MODEL: cfg["models"][MODEL]}
    if server is not None:
        del cfg["models"][MODEL]["vllm"]
        cfg["models"][MODEL].update(backend="openai", server={"base_url": server.url, "model": "smollm2"})
        cfg["models"][MODEL]["server"]["api_key_env"] = KEY_ENV
    cfg["datasets"] = {DATASET: {**cfg["datasets"][DATASET], "n_questions": 3}}
    cfg["decoding"]["max_new_tokens"] = 80
    cfg["sampling"].update(n_trajectories=2, n_continuations=3, shard_size=3)
    cfg["mc_ablation"] = {"stride": 48, "n_continuations": 2}  # not a multiple of 32: a run of its own
    cfg["edis"].update(pool_size=2, n_values=[2], n_draws=10, example_trajectories=1)
    cfg["selection"]["n_values"] = [2]
    cfg["analysis"]["bootstrap"] = 20
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return cfg, path


def _env():
    return {**os.environ, **ENGINE_ENV}


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    require_vllm()
    tmp = tmp_path_factory.mktemp("vllm_local")
    cfg, path = _config(tmp, "local")
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(path), "--directory", str(ROOT)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return {"results": tmp / "local", "cfg": cfg}


@pytest.fixture(scope="module")
def slurm(tmp_path_factory, local, profiles_env):
    require_slurm()
    tmp = tmp_path_factory.mktemp("vllm_slurm")
    cfg, path = _config(tmp, "slurm")
    cmd = slurm_snakemake(path, tmp / "slurm_logs")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT, env={**profiles_env, **_env()})
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    return {"results": tmp / "slurm", "out": out, "logs": tmp / "slurm_logs"}


@pytest.fixture(scope="module")
def served(tmp_path_factory, local, smollm2_server):
    """Every target with the model behind vLLM's server (tests/conftest.py: smollm2_server)."""
    tmp = tmp_path_factory.mktemp("vllm_served")
    cfg, path = _config(tmp, "served", server=smollm2_server)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(path), "--directory", str(ROOT)]
    env = {**_env(), KEY_ENV: smollm2_server.api_key}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    assert smollm2_server.api_key not in out + "".join(p.read_text() for p in (tmp / "served/logs").rglob("*.log"))
    return {"results": tmp / "served", "cfg": cfg}


def test_every_target_on_vllm_with_exact_token_statistics(local):
    r = local["results"]
    assert len(list(r.glob("tables/*.csv"))) == 10 and len(list(r.glob("figures/*.png"))) == 11
    assert (r / "report.html").exists()
    path = next((r / f"rollouts/{MODEL}/{DATASET}").glob("*.parquet"))
    prov = read_provenance(path)
    assert prov["backend"]["name"] == "vllm" and prov["backend"]["settings"]["vllm"] == "0.32.0"
    assert prov["entropy_kind"] == "exact" and prov["token_stats"]["source"].startswith("vllm tokens, scored")
    assert prov["token_stats"]["check"]["p99_abs_logprob_diff"] < 5e-4
    roll = pl.read_parquet(path)
    for c in ("token_entropy_full", "token_self_certainty", "token_confidence"):  # from the scoring pass
        assert all(len(v) == t for v, t in zip(roll[c], roll["T"])), c
    scores = pl.read_parquet(r / "edis/scores.parquet")
    assert not scores["approximate"].any()  # EDIS of exact entropies


def test_tables_equal_a_recomputation_from_the_raw_draws(local):
    r, cfg = local["results"], local["cfg"]
    stride = cfg["sampling"]["strides"][0]
    check_entropy_table(r, cfg, MODEL, DATASET, stride)
    check_entropy_table(r, cfg, MODEL, DATASET, stride, "shuffled")
    check_table1(r, cfg, [DATASET], stride)


def test_probes_on_the_engine_and_their_tables_equal_a_recomputation(local):
    """Forced-answer probes run by vLLM's engine: K short answers per checkpoint, read from what the
    model wrote after the cue, and both probe tables recomputed from the raw draws."""
    r, cfg = local["results"], local["cfg"]
    stride = cfg["sampling"]["strides"][0]
    check_entropy_table(r, cfg, MODEL, DATASET, stride, "probe")
    check_probe_tables(r, cfg, [DATASET], stride)
    path = next((r / f"continuations/{MODEL}/{DATASET}/stride-{stride}/probe").glob("*.parquet"))
    prov, probes = read_provenance(path), pl.read_parquet(path)
    assert prov["step"] == "probes" and prov["backend"]["name"] == "vllm"
    assert probes["n_generated"].max() <= cfg["probe"]["max_new_tokens"]
    # a real model answers a forced cue with a number most of the time
    assert (probes["answer"] != "NULL").mean() > 0.5


def test_vllm_generation_ran_as_slurm_jobs_and_the_rest_locally(slurm):
    ids = set(re.findall(r"SLURM jobid (\d+)", slurm["out"]))
    assert len(ids) == 4  # rollouts, the main stride's two variants, the ablation's stride, the probes
    logs = {p.relative_to(slurm["logs"]).parts[0] for p in slurm["logs"].rglob("*.log")}
    assert logs == {"rule_rollouts", "rule_continuations_both_variants", "rule_continuations", "rule_probes"}, logs
    prov = read_provenance(next((slurm["results"] / f"rollouts/{MODEL}/{DATASET}").glob("*.parquet")))
    assert prov["backend"]["name"] == "vllm"


def test_slurm_tables_and_draws_equal_the_local_vllm_run(slurm, local):
    _assert_same_draws_and_tables(slurm["results"], local["results"])


def test_a_served_run_equals_the_in_process_vllm_run(served, local):
    """The served model's draws are the in-process engine's: every table and figure the same."""
    prov = read_provenance(next((served["results"] / f"rollouts/{MODEL}/{DATASET}").glob("*.parquet")))
    assert prov["backend"]["name"] == "openai" and prov["backend"]["settings"]["served_model"] == "smollm2"
    assert prov["entropy_kind"] == "exact" and prov["token_stats"]["source"].startswith("openai tokens, scored")
    _assert_same_draws_and_tables(served["results"], local["results"])


def _assert_same_draws_and_tables(a, b):
    """The same tokens, answers and entropy tables, exactly. Per-token statistics may differ between
    processes in their last digits (measured: up to 5e-5, CPU kernels), and so may the EDIS and
    selection scores built on them: those within 1e-3."""
    stats = list(TOKEN_STATS)
    for rel in sorted(p.relative_to(b) for p in b.glob("rollouts/**/*.parquet")):
        x, y = pl.read_parquet(a / rel), pl.read_parquet(b / rel)
        assert_frame_equal(x.drop(stats), y.drop(stats), check_exact=True)
        for c in stats:
            diffs = [abs(u - v) for lu, lv in zip(x[c].to_list(), y[c].to_list()) for u, v in zip(lu, lv)]
            assert max(diffs) < 1e-3, (rel, c, max(diffs))
    for kind in ("continuations", "entropy"):
        files = sorted(p.relative_to(b) for p in b.glob(f"{kind}/**/*.parquet"))
        assert files, kind
        for rel in files:
            assert_frame_equal(pl.read_parquet(a / rel), pl.read_parquet(b / rel), check_exact=True)
    tables = sorted(p.relative_to(b) for p in b.glob("tables/*.csv")) + sorted(
        p.relative_to(b) for p in b.glob("figures/*.data.csv")
    )
    assert len(tables) == 10 + 11
    exact = ("table1", "table2", "table3", "fig1", "fig2", "fig3", "fig4", "fig5", "fig_fano")
    for rel in tables:
        tol = dict(rel_tol=1e-12, abs_tol=1e-15) if rel.name.startswith(exact) else dict(rel_tol=1e-3, abs_tol=1e-3)
        assert_frame_equal(pl.read_csv(a / rel), pl.read_csv(b / rel), **tol)
