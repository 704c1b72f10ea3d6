"""The path from a target to its code: rule x (in workflow/rules/<file>.smk) runs
scripts/x.py, which calls the function x of siaflow/stages/<file>.py; a rule derived with
`use rule y as x` runs y's script. Stages read their rule's params, never the global config, and
only the generation stages import torch."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "workflow/rules"
HELPER_FILES = {"common", "params"}  # rule files that define helpers, not rules


def _rules() -> dict[str, tuple[str, str | None]]:
    """rule name -> (rule file stem, the rule it is derived from with `use rule`, or None)."""
    out = {}
    for smk in [*sorted(RULES.glob("*.smk")), ROOT / "workflow/Snakefile"]:
        text = smk.read_text()
        for name in re.findall(r"^\s*rule (\w+):", text, flags=re.M):
            out[name] = (smk.stem, None)
        for parent, name in re.findall(r"^use rule (\w+) as (\w+) with:", text, flags=re.M):
            out[name] = (smk.stem, parent)
    return out


def _script_call(path: Path) -> tuple[str, str]:
    """(module, function) that a rule script imports and calls with `snakemake`, after job_setup."""
    tree = ast.parse(path.read_text())
    # the calls, or the calls under `if __name__ == "__main__":` (generation scripts: vLLM's spawned
    # engine process runs the file again)
    body = [n for stmt in tree.body for n in (stmt.body if isinstance(stmt, ast.If) else [stmt])]
    imports = {a.asname or a.name: node.module for node in body if isinstance(node, ast.ImportFrom) for a in node.names}
    calls = [n.value.func.id for n in body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    assert calls[0] == "job_setup" and imports["job_setup"] == "siaflow.stages", f"{path}: job_setup comes first"
    stage_import = next(i for i, n in enumerate(body) if isinstance(n, ast.ImportFrom) and n.module != "siaflow.stages")
    setup_call = next(i for i, n in enumerate(body) if isinstance(n, ast.Expr))
    assert setup_call < stage_import, f"{path}: the stage is imported after job_setup"
    assert len(calls) == 2, f"{path}: a rule script makes exactly one call besides job_setup"
    return imports[calls[1]], calls[1]


def test_every_rule_reaches_a_stage_function_of_its_own_name():
    rules = _rules()
    assert {"rollouts", "fig2_auc", "table2_shuffle", "fig_edis_separation", "fig5_auc_nonaligned"} <= set(rules)
    shell_rules: set[str] = set()  # a shell rule would have no Python of its own
    plain_rules = {"all"}  # the default target: inputs only
    for name, (stem, parent) in rules.items():
        if name in shell_rules | plain_rules:
            continue
        own = parent or name
        script = ROOT / "scripts" / f"{own}.py"
        assert script.exists(), f"rule {name}: no {script.relative_to(ROOT)}"
        module, function = _script_call(script)
        assert function == own, f"{script.name} calls {function}, not {own}"
        assert module == f"siaflow.stages.{rules[own][0]}", f"{script.name} imports from {module}"
        source = ROOT / "siaflow/stages" / f"{rules[own][0]}.py"
        assert re.search(rf"^def {own}\(sm\)", source.read_text(), flags=re.M), f"{source}: no def {own}(sm)"
        rule_text = (RULES / f"{stem}.smk").read_text()
        assert f'"../../scripts/{own}.py"' in rule_text or parent, f"rule {name} does not run its own script"


def test_every_stage_module_has_its_rule_file():
    stages = {p.stem for p in (ROOT / "siaflow/stages").glob("*.py")} - {"__init__", "common"}
    rule_files = {p.stem for p in RULES.glob("*.smk")} - HELPER_FILES
    assert stages == rule_files


def test_stages_read_params_not_the_global_config():
    for path in (ROOT / "siaflow/stages").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "config":
                raise AssertionError(f"{path.name}:{node.lineno} reads .config; pass what it needs as params")


def test_analysis_stages_do_not_import_torch():
    analysis = ["data", "entropy", "tables", "figures", "edis", "report"]
    code = (
        "import sys\n"
        + "".join(f"import siaflow.stages.{m}\n" for m in analysis)
        + "heavy = sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules)\n"
        + "assert not heavy, heavy\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_only_generation_and_toy_training_are_cluster_jobs(tmp_path):
    """Every other rule runs on the submit host (`localrule: True`), rules derived with `use rule`
    included (they do not inherit it)."""
    probe = tmp_path / "Snakefile"
    probe.write_text(f'include: "{ROOT / "Snakefile"}"\nprint("LOCAL", sorted(workflow._localrules))\n')
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(probe), "-d", str(ROOT), "--cores", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next(x for x in res.stdout.splitlines() if x.startswith("LOCAL"))
    local = set(ast.literal_eval(line.split(" ", 1)[1]))
    jobs = {
        "train_toy_model",
        "train_toy_checkpoints",
        "train_toy_rl",
        "rollouts",
        "continuations",
        "continuations_both_variants",
        "probes",
    }
    assert local == set(_rules()) - jobs


def test_a_rule_script_bounds_polars_to_the_rules_threads():
    """polars reads its thread limit once, at import, and would take every core of a login node:
    a rule's script calls job_setup before it imports its stage."""
    code = (
        "import types\nsnakemake = types.SimpleNamespace(threads=1)\n"
        "from siaflow.stages import job_setup\njob_setup(snakemake)\n"
        "import siaflow.stages.tables\nimport polars as pl\nfrom siaflow.analysis.stats import _workers\n"
        "print(pl.thread_pool_size(), _workers())\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={k: v for k, v in __import__("os").environ.items() if k != "POLARS_MAX_THREADS"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["1", "1"]


def test_importing_a_stage_module_changes_no_process_state():
    """No stage module sets environment variables when imported: job_setup, called by the rule's
    script, is the one place that does (thread pools, the hub offline)."""
    stages = sorted(p.stem for p in (ROOT / "siaflow/stages").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, os\nbefore = dict(os.environ)\n"
        + "".join(f"importlib.import_module('siaflow.stages.{m}')\n" for m in stages)
        + "print(sorted(k for k in {*before, *os.environ} if before.get(k) != os.environ.get(k)))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if "OFFLINE" not in k and "THREADS" not in k}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    changed = ast.literal_eval(res.stdout.strip().splitlines()[-1])
    assert not [k for k in changed if "OFFLINE" in k or "THREADS" in k], changed


# What each part of the package may import (besides itself): the pipeline's order, one way.
CORE = {"adaptive_stopping", "answers", "answer_text", "config", "io", "keys", "layout", "profiles", "source"}
MAY_IMPORT = {
    "core": set(),
    "inputs": {"core"},
    "generation": {"core", "inputs"},
    "analysis": {"core"},
    "selection": {"core", "analysis"},
    "outputs": {"core"},
    "stages": {"core", "inputs", "generation", "analysis", "selection", "outputs"},
}


def _part(module: str) -> str:
    """siaflow.analysis.metrics -> analysis; siaflow.io -> core."""
    name = module.split(".")[1] if "." in module else ""
    return "core" if name in CORE or name == "" else name


def test_the_package_imports_point_one_way():
    parts = {p.name for p in (ROOT / "siaflow").iterdir() if (p / "__init__.py").exists()}
    assert parts == set(MAY_IMPORT) - {"core"}, "a new subpackage needs its place in MAY_IMPORT"
    assert {p.stem for p in (ROOT / "siaflow").glob("*.py")} - {"__init__"} == CORE
    bad = []
    for path in (ROOT / "siaflow").rglob("*.py"):
        own = _part(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module]
                if isinstance(node, ast.ImportFrom) and node.module
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                if name.startswith("siaflow."):
                    # `from siaflow import io` names a core module; `from siaflow.analysis import x` a part
                    other = _part(name) if name != "siaflow" else "core"
                    if other != own and other not in MAY_IMPORT[own]:
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} ({own}) imports {name} ({other})")
    assert not bad, "\n".join(bad)
