"""The conda environments of the rules (envs/*.yaml) build on a cluster: conda-forge only,
pinned, siaflow taken from the checkout (no `-e ../`, which Snakemake would resolve against its own
copy of the file), every third-party module a rule's code imports installed, and the pip section
resolvable from PyPI (conda channels cannot be reached here; `pip install --dry-run` can)."""

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
# the engines each generation env loads through the backend registry (siaflow/generation/backends/__init__.py):
# a served model (backend: openai) runs in the torch env, whose transformers reads its tokenizer
BACKEND_OF_ENV = {
    "torch": ["siaflow.generation.backends.hf", "siaflow.generation.backends.served"],
    "vllm": ["siaflow.generation.backends.vllm_backend"],
}


def _env(name: str) -> dict:
    return yaml.safe_load((ENVS / f"{name}.yaml").read_text())


def _pip(name: str) -> list[str]:
    deps = _env(name)["dependencies"]
    return [x.split("#")[0].strip() for d in deps if isinstance(d, dict) for x in d["pip"]]


def _rule_envs() -> dict[str, set[str]]:
    """rule name -> the env(s) it may run in (a generation rule: torch or vllm, by its model)."""
    out = {}
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        for name, body in re.findall(r"^ *rule (\w+):\n((?: {4,}.*\n|\n)+)", smk.read_text(), flags=re.M):
            conda = re.search(r"conda:\n\s+(\S+)", body)
            if conda:
                envs = re.findall(r"envs/(\w+)\.yaml", conda.group(1))
                out[name] = set(envs) if envs else {"torch", "vllm"}  # generation_env
    return out


def _imports(module: str, seen: set[str]) -> set[str]:
    """Top-level names of every third-party module ``module`` imports, at module or function level,
    following siaflow modules."""
    if module in seen:
        return set()
    seen.add(module)
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module]
            if isinstance(node, ast.ImportFrom) and node.module and not node.level
            else []
        )
        for name in names:
            if name.split(".")[0] == "siaflow":
                out |= _imports(name, seen)
                if isinstance(node, ast.ImportFrom):  # `from siaflow import io`: a submodule
                    for a in node.names:
                        sub = f"{name}.{a.name}"
                        if (ROOT / (sub.replace(".", "/") + ".py")).exists():
                            out |= _imports(sub, seen)
            elif name.split(".")[0] not in sys.stdlib_module_names and name != "__future__":
                out.add(name.split(".")[0])
    return out


def _distributions(names: set[str]) -> set[str]:
    dists = importlib.metadata.packages_distributions()
    return {canonicalize_name(dists.get(n, [n])[0]) for n in names}


@pytest.mark.parametrize("name", ["analysis", "torch", "vllm"])
def test_env_is_conda_forge_only_pinned_and_does_not_install_siaflow(name):
    env = _env(name)
    assert env["channels"] == ["conda-forge", "nodefaults"]
    for req in _pip(name):
        assert not req.startswith("-"), f"{name}.yaml: {req!r} (siaflow comes from the checkout via PYTHONPATH)"
        assert len(Requirement(req).specifier) == 1 and "==" in str(Requirement(req).specifier), (
            f"{name}.yaml: {req!r} is not pinned"
        )


def test_every_module_a_rule_imports_is_in_its_env():
    from test_workflow_layout import _rules

    rules, envs = _rules(), _rule_envs()
    missing = []
    for rule, (stem, parent) in rules.items():
        for env in envs.get(parent or rule, ()):
            needed = _imports(f"siaflow.stages.{stem}", set())
            if stem == "generation":
                for backend in BACKEND_OF_ENV[env]:
                    needed |= _imports(backend, set())
            have = {canonicalize_name(Requirement(r).name) for r in _pip(env)}
            missing += [f"rule {rule} in {env}.yaml needs {d}" for d in sorted(_distributions(needed) - have)]
    assert not missing, "\n".join(missing)
    assert envs["rollouts"] == envs["continuations_both_variants"] == {"torch", "vllm"}
    assert envs["fig2_auc"] == {"analysis"} and set(envs) >= set(rules) - {
        "all",
        "fig4_cumulative_gain_nonaligned",
        "fig5_auc_nonaligned",
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["analysis", "torch", "vllm"])
def test_env_pip_section_resolves(name, tmp_path):
    """What conda's pip step would install: resolved by pip against PyPI (metadata only)."""
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("\n".join(_pip(name)) + "\n")
    report = tmp_path / "report.json"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "-r",
            str(reqs),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    got = {
        canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    for req in map(Requirement, _pip(name)):
        assert got[canonicalize_name(req.name)].split("+")[0] in req.specifier, (req, got[canonicalize_name(req.name)])
