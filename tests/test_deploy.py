"""siaflow deployed as a Snakemake module into a project of its own, as snakedeploy and the
workflow catalog do it (docs/releases.md): a git repository of this tree, tagged with its version,
declared with the module syntax snakedeploy writes; the project has only its own config/ and
profiles/ (snakedeploy copies both). The toy demo, shrunk as in the end-to-end test, runs there to
its tables, with the package and the toy models taken from the module's source."""

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import ROOT, tiny_config

import siaflow
from siaflow.io import read_provenance

pytestmark = pytest.mark.slow
TAG = f"v{siaflow.__version__}"
MODULE = """configfile: "config/config.yaml"


module siaflow:
    snakefile:
        {snakefile}
    config:
        config


use rule * from siaflow
"""
TABLES = ["table1_alignment", "table2_shuffle", "table3_mc_ablation", "table_edis_bestofn"]


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A git repository of this working tree (its tracked and untracked, not ignored, files), its
    one commit tagged v<version>: what a release of this tree would be."""
    repo = tmp_path_factory.mktemp("release") / "siaflow"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "release")
    _git(repo, "tag", TAG)
    return repo


def _project(tmp: Path, release: Path, snakefile: str, cfg: dict | None = None) -> Path:
    """An empty directory with the module declaration, its own config/ (the tiny toy config, its
    results inside the project) and the release's profiles/, as snakedeploy lays it out."""
    project = tmp / "project"
    (project / "workflow").mkdir(parents=True)
    (project / "workflow/Snakefile").write_text(MODULE.format(snakefile=snakefile))
    if cfg is None:
        cfg, _ = tiny_config(tmp)
        cfg["results"] = "results"
    (project / "config").mkdir()
    (project / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    shutil.copytree(release / "profiles", project / "profiles")
    return project


def _snakemake(project: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=timeout)


def test_the_release_has_the_module_entry_and_the_catalog_file(release):
    assert (release / "workflow/Snakefile").is_file() and (release / ".snakemake-workflow-catalog.yml").is_file()
    assert (release / "config/README.md").is_file()


def test_a_deployed_module_runs_the_toy_demo_to_its_tables(release, tmp_path):
    project = _project(tmp_path, release, f'"{release}/workflow/Snakefile"')
    res = _snakemake(project, *TABLES)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    # the committed toy models of the module's source, not trained again in the project
    assert "train_toy_model" not in out and not (project / "resources").exists()
    for t in TABLES:
        assert (project / f"results/tables/{t}.csv").is_file(), t
    table1 = pl.read_csv(project / "results/tables/table1_alignment.csv")
    assert set(table1["model"]) == {"toy-base", "toy-sft"}
    # every job imported siaflow from the module's source: its provenance says which release
    prov = read_provenance(project / "results/entropy/toy-sft/toy-arith/stride-8/original.parquet")
    assert prov["siaflow_version"] == siaflow.__version__
    assert prov["model_path"] == str(release / "resources/toy_models/informative")


def test_a_module_from_a_git_tag_needs_siaflow_of_its_version_installed(release, tmp_path):
    """A module whose source is not a local directory (GitHub's github(), here gitfile() of the
    tagged repository): the installed siaflow is used when it is the module's version, and a
    mismatch stops the run before anything is computed, naming the version and how to install it.
    Parsing only (--list-rules): Snakemake 9.27 cannot dry-run a gitfile() module whose rules have
    scripts (LocalGitFile.join of the script's path fails; GitHub's files join it)."""
    project = _project(tmp_path, release, f'gitfile("{release}", path="workflow/Snakefile", tag="{TAG}")')
    res = _snakemake(project, "--list-rules", timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    shim = project / f".snakemake/siaflow-package/{siaflow.__version__}/siaflow"
    assert shim.resolve() == Path(siaflow.__file__).resolve().parent

    pyproject = release / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace(f'version = "{siaflow.__version__}"', 'version = "99.0.0"'))
    try:
        _git(release, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "99.0.0")
        _git(release, "tag", "v99.0.0")
    finally:
        pyproject.write_text(text)
    other = _project(tmp_path / "other", release, f'gitfile("{release}", path="workflow/Snakefile", tag="v99.0.0")')
    res = _snakemake(other, "--list-rules", timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "siaflow 99.0.0" in out and "git+https://github.com/<owner>/siaflow@v99.0.0" in out, out[-3000:]
