"""A release (docs/releases.md): one version, written in pyproject.toml, is siaflow.__version__ and
what every result's provenance records; the workflow catalog finds the module entry, the
configuration page and its usage file with the keys its standardized usage reads."""

import tomllib
from importlib import metadata
from pathlib import Path

import yaml

import siaflow
from siaflow.io import provenance
from siaflow.source import install_hint, resolve_paths

ROOT = Path(__file__).resolve().parents[1]


def test_one_version_from_pyproject_to_provenance():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert siaflow.__version__ == version
    assert provenance(model="m")["siaflow_version"] == version
    # the version is written once: the package reads it, it does not repeat it
    assert version not in (ROOT / "siaflow/__init__.py").read_text()
    try:
        installed = metadata.version("siaflow")
    except metadata.PackageNotFoundError:
        installed = version
    assert installed == version, "the installed siaflow is stale: pip install -e . again"


def test_the_changelog_has_this_version_and_an_unreleased_section():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text and f"## [{siaflow.__version__}]" in text


def test_the_catalog_finds_the_module_and_its_standardized_usage():
    assert (ROOT / "workflow/Snakefile").is_file() and (ROOT / "config/README.md").is_file()
    assert any(p.suffix == ".smk" for p in (ROOT / "workflow/rules").iterdir())
    usage = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert usage["mandatory-flags"]["desc"].strip() and "flags" in usage["mandatory-flags"]
    methods = usage["software-stack-deployment"]
    assert set(methods) <= {"conda", "singularity", "singularity+conda"} and methods["conda"] is True
    assert usage["report"] is True
    readme = (ROOT / "README.md").read_text().lower()
    assert "snakemake" in readme and "workflow" in readme


def test_paths_are_read_from_the_source_only_where_the_project_lacks_them(tmp_path, monkeypatch):
    source = tmp_path / "source"
    (source / "resources/toy").mkdir(parents=True)
    (source / "resources/bench").mkdir(parents=True)
    project = tmp_path / "project"
    (project / "mine").mkdir(parents=True)
    monkeypatch.chdir(project)
    cfg = {
        "models": {
            "toy": {"path": "resources/toy"},
            "own": {"path": "mine"},
            "hub": {"path": "Qwen/Qwen2.5-3B"},
            "elsewhere": {"path": "resources/missing"},
        },
        "datasets": {"b": {"source": "local", "path": "resources/bench"}, "h": {"source": "hub", "path": "x"}},
    }
    changed = resolve_paths(cfg, source)
    assert changed == {
        "models.toy.path": str(source / "resources/toy"),
        "datasets.b.path": str(source / "resources/bench"),
    }
    assert [cfg["models"][m]["path"] for m in ("own", "hub", "elsewhere")] == [
        "mine",
        "Qwen/Qwen2.5-3B",
        "resources/missing",
    ]
    assert resolve_paths(cfg, None) == {}
    assert install_hint("1.2.0", "me/siaflow") == 'pip install "siaflow @ git+https://github.com/me/siaflow@v1.2.0"'
