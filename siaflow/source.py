"""The workflow's own source when it runs from another directory: as a Snakemake module that a
project of its own declares (snakedeploy; docs/releases.md), or with ``--directory`` elsewhere.

The package comes from the source when the source is a local directory that holds it, else from an
installed siaflow of the source's version (a module fetched from GitHub). The files the demo configs
name under ``resources/`` (the toy models, the local benchmarks) are read from the source too: a
relative path that the working directory lacks is taken from the source when it is there.
"""

from __future__ import annotations

import os
from pathlib import Path


class ReleaseMismatch(RuntimeError):
    pass


def install_hint(version: str, repo: str | None) -> str:
    """How to install siaflow ``version`` where Snakemake runs (``repo``: the module's GitHub
    owner/name, when known)."""
    url = f"https://github.com/{repo or '<owner>/siaflow'}"
    return f'pip install "siaflow @ git+{url}@v{version}"'


def require_release(version: str, repo: str | None = None) -> Path:
    """The directory to put on PYTHONPATH for the installed siaflow, which must be ``version`` (the
    module's): a directory holding only a link to the package, so that a job's environment gets
    siaflow and nothing else of the environment Snakemake runs in."""
    try:
        import siaflow
    except ImportError:
        found = "none is installed"
    else:
        if siaflow.__version__ == version:
            return package_path(Path(siaflow.__file__).resolve().parent, version)
        found = f"siaflow {siaflow.__version__} is installed ({Path(siaflow.__file__).parent})"
    raise ReleaseMismatch(
        f"This workflow is siaflow {version}, deployed as a module whose source is not a local directory: "
        f"its rules need the siaflow package of the same version where Snakemake runs, and {found}. "
        f"Install it with\n    {install_hint(version, repo)}\n"
        "or declare the module with the Snakefile of a local clone at that tag (docs/releases.md)."
    )


def package_path(package: Path, version: str, root: str | Path = ".snakemake") -> Path:
    """``root``/siaflow-package/<version>/siaflow, a link to ``package``; returns its parent."""
    shim = Path(root) / "siaflow-package" / version
    link = shim / "siaflow"
    shim.mkdir(parents=True, exist_ok=True)
    if not (link.is_symlink() and link.resolve() == package):
        tmp = shim / f".siaflow.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(package, target_is_directory=True)
        os.replace(tmp, link)
    return shim.resolve()


def resolve_paths(config: dict, source: str | Path | None) -> dict[str, str]:
    """Point each relative ``models.<name>.path`` and local dataset ``path`` that does not exist in
    the working directory at the workflow's ``source`` directory, where it exists there (the toy
    models and benchmarks a deployed demo config names). Returns key -> new path. A path that
    exists in the working directory, a hub id and an absolute path stay as they are."""
    if source is None:
        return {}
    entries = [(f"models.{n}", m) for n, m in (config.get("models") or {}).items()]
    entries += [(f"datasets.{n}", d) for n, d in (config.get("datasets") or {}).items() if d.get("source") == "local"]
    changed = {}
    for key, spec in entries:
        path = spec.get("path")
        if not path or Path(path).is_absolute() or Path(path).exists():
            continue
        there = Path(source, path).resolve()
        if there.exists():
            spec["path"] = changed[f"{key}.path"] = str(there)
    return changed
