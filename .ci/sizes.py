"""Size limits of the code (issue 13): no module over 400 lines, no function over 60 lines, no
rule file over 150 lines. Run by `make lint`; exits 1 and names every offender."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE_LINES, FUNCTION_LINES, RULE_FILE_LINES = 400, 60, 150


def offenders():
    for path in sorted([*ROOT.glob("siaflow/**/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("bench/*.py")]):
        text = path.read_text()
        rel = path.relative_to(ROOT)
        if text.count("\n") > MODULE_LINES:
            yield f"{rel}: {text.count(chr(10))} lines (limit {MODULE_LINES})"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > FUNCTION_LINES:
                    yield f"{rel}:{node.lineno}: function {node.name} has {n} lines (limit {FUNCTION_LINES})"
    for path in sorted([*ROOT.glob("workflow/rules/*.smk"), ROOT / "Snakefile", ROOT / "workflow/Snakefile"]):
        n = path.read_text().count("\n")
        if n > RULE_FILE_LINES:
            yield f"{path.relative_to(ROOT)}: {n} lines (limit {RULE_FILE_LINES})"


if __name__ == "__main__":
    found = list(offenders())
    print("\n".join(found) or "sizes: every module, function and rule file within its limit")
    sys.exit(1 if found else 0)
