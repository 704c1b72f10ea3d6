"""The toy pipeline through `snakemake --profile slurm` (as the README writes it, after `make
profiles`) on a real SLURM cluster, checked against the same config run with the local executor: every table, figure data frame and entropy table equal.

Needs a running cluster (`.ci/slurm-localhost.sh` brings one up on localhost). Without one the
test is skipped, except where SIAFLOW_REQUIRE_SLURM=1 (CI sets it): there a missing cluster fails.
The toy models' generation jobs request `gpu: 0`, so CPU jobs stand in for the GPU ones.
"""

import re
import subprocess

import polars as pl
import pytest
import yaml
from conftest import ROOT, require_slurm, slurm_snakemake, tiny_config
from polars.testing import assert_frame_equal

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, profiles_env):
    require_slurm()
    tmp = tmp_path_factory.mktemp("slurm")
    cfg, path = tiny_config(tmp)
    cmd = slurm_snakemake(path, tmp / "slurm_logs")
    # the pilot first (one shard of every model on every dataset, then the calibrated plan), as a
    # user prices the grid before submitting it; then the whole workflow
    pilot = subprocess.run(cmd + ["pilot"], capture_output=True, text=True, timeout=1800, cwd=ROOT, env=profiles_env)
    assert pilot.returncode == 0, (pilot.stdout + pilot.stderr)[-5000:]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT, env=profiles_env)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    # the profile found by name is this checkout's, under siaflow's workflow profile
    assert "Using profiles slurm and workflow specific profile" in out, out[:2000]
    return {
        "results": tmp / "results",
        "cfg": cfg,
        "out": pilot.stdout + pilot.stderr + out,
        "pilot": pilot.stdout + pilot.stderr,
        "logs": tmp / "slurm_logs",
    }


def test_generation_jobs_went_through_slurm_and_the_rest_ran_locally(slurm_run):
    out = slurm_run["out"]
    ids = re.findall(r"SLURM jobid (\d+)", out)
    # 2 models x 2 shards of rollouts; continuations: stride 8 original + shuffled in one job per
    # shard, and stride 16 for the Monte-Carlo ablation (a multiple of 8, so a sub-sample: no run);
    # the forced-answer probes, one job per shard
    assert len(set(ids)) == 2 * 2 + 2 * 2 + 2 * 2, out[-5000:]
    logs = sorted(p.relative_to(slurm_run["logs"]).parts[0] for p in slurm_run["logs"].rglob("*.log"))
    assert set(logs) == {"rule_rollouts", "rule_continuations_both_variants", "rule_probes"}, logs


def test_the_pilot_ran_one_shard_per_model_and_dataset_and_priced_the_grid(slurm_run):
    ids = set(re.findall(r"SLURM jobid (\d+)", slurm_run["pilot"]))
    assert len(ids) == 2 + 2  # shard 0 of 2 models: rollouts, then both variants' continuations
    plan = pl.read_csv(slurm_run["results"] / "pilot/plan.csv")
    rows = plan.filter(pl.col("model") != "TOTAL")
    assert rows.height == 2 and (rows["calibrated_from"] == "ledger of " + rows["model"]).all()
    # calibrated by what the pilot measured: response lengths, token ratio, throughput
    roll = pl.concat(
        [pl.read_parquet(slurm_run["results"] / f"rollouts/{m}/toy-arith/shard-0.parquet") for m in rows["model"]]
    )
    for model, length in rows.select("model", "trace_tokens").iter_rows():
        assert length == round(roll.filter(pl.col("model") == model)["T"].mean())
    assert (rows["tokens_per_second"] > 0).all() and (rows["ledger_ratio"] < 1).all()


def test_tables_and_figure_data_equal_a_local_run(slurm_run, local_run):
    """Equal to the last bits of a double: polars' float sums may differ there between processes."""
    a, b = slurm_run["results"], local_run["results"]
    files = sorted(p.relative_to(b) for p in b.glob("tables/*.csv")) + sorted(
        p.relative_to(b) for p in b.glob("figures/*.data.csv")
    )
    # 7 tables (the two Best-of-N tables also in long form, probe agreement's points), 11 figures
    assert len(files) == 10 + 11, files
    for rel in files:
        assert_frame_equal(pl.read_csv(a / rel), pl.read_csv(b / rel), rel_tol=1e-12, abs_tol=1e-15)


def test_raw_samples_and_entropy_tables_are_bit_identical_to_a_local_run(slurm_run, local_run):
    a, b = slurm_run["results"], local_run["results"]
    for kind in ("rollouts", "continuations", "entropy"):
        files = sorted(p.relative_to(b) for p in b.glob(f"{kind}/**/*.parquet"))
        assert files, kind
        for rel in files:
            assert_frame_equal(pl.read_parquet(a / rel), pl.read_parquet(b / rel), check_exact=True)


def test_profile_is_documented_and_marks_placeholders():
    text = (ROOT / "profiles/slurm/config.yaml").read_text()
    prof = yaml.safe_load(text)
    assert prof["executor"] == "slurm" and prof["retries"] >= 1
    # GPU cores come with each model's resources (and set the job's threads), not from the profile
    assert "cpus_per_gpu" not in str(prof.get("set-resources", {}))
    # account and partition are left to the user, commented and marked
    assert re.search(r"#\s*slurm_account: \"<ACCOUNT>\"\s+# EDIT", text)
    assert re.search(r"#\s*slurm_partition: \"<GPU-PARTITION>\"\s+# EDIT", text)
    # every active entry carries a comment on its line or the line above
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#") and not line.rstrip().endswith(":"):
            assert "#" in line or lines[i - 1].lstrip().startswith("#"), f"uncommented profile entry: {line!r}"
