"""siaflow: how a language model's uncertainty about its final answer evolves while it reasons."""


def _version() -> str:
    """The version written in one place, pyproject.toml: read from the checkout this package lies in
    (a clone, a deployed module's source, a job that imports it through PYTHONPATH), else from the
    installed distribution's metadata (``pip install`` of a release: docs/releases.md)."""
    import tomllib
    from importlib import metadata
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "siaflow":
            return project["version"]
    return metadata.version("siaflow")


__version__ = _version()
