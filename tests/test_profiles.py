"""`make profiles` (siaflow.profiles): `snakemake --profile local` and `--profile slurm` work as
written from the checkout's root, and a profile of the same name the user already has is kept."""

import subprocess
import sys

from conftest import ROOT

from siaflow import profiles


def test_links_each_profile_once_and_keeps_the_users_own(tmp_path):
    mine = tmp_path / "slurm"
    mine.mkdir()
    (mine / "config.yaml").write_text("executor: slurm\njobs: 7\n")
    first = profiles.install(ROOT, tmp_path)
    assert (tmp_path / "local").resolve() == (ROOT / "profiles/local").resolve()
    assert not mine.is_symlink() and (mine / "config.yaml").read_text() == "executor: slurm\njobs: 7\n"
    assert "exists and is not this checkout's: left as it is" in first[1] and "--profile profiles/slurm" in first[1]
    again = profiles.install(ROOT, tmp_path)
    assert again[0].endswith("(already)") and again[1] == first[1]
    # a link to another checkout's profile is the user's too
    (tmp_path / "local").unlink()
    (tmp_path / "local").symlink_to(tmp_path / "elsewhere")
    assert "left as it is" in profiles.install(ROOT, tmp_path)[0]


def test_the_profile_folder_is_the_one_snakemake_searches(tmp_path):
    code = "from siaflow.profiles import profile_dir; print(profile_dir())"
    env = {"XDG_CONFIG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert res.stdout.strip() == str(tmp_path / "snakemake"), res.stderr


def test_profile_local_by_name_from_the_root(profiles_env):
    # --forceall: the job list whatever the checkout's results/ already holds (after `make demo`,
    # a plain dry run has nothing to do)
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--profile", "local"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=profiles_env,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "Using profiles local and workflow specific profile" in out and "rule table1_alignment" in out
