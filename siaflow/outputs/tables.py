"""Writing result tables as CSV + Markdown (+ LaTeX where asked) with a provenance sidecar."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from siaflow import io


def _fmt(v, digits: int) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def to_markdown(df: pl.DataFrame, *, digits: int = 3) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---:" if df[c].dtype.is_numeric() else "---" for c in df.columns) + "|"
    rows = ["| " + " | ".join(_fmt(v, digits) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join([head, rule, *rows]) + "\n"


def _tex_escape(text: str) -> str:
    for a, b in [
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("$", r"\$"),
        ("#", r"\#"),
        ("_", r"\_"),
        ("{", r"\{"),
        ("}", r"\}"),
    ]:
        text = text.replace(a, b)
    return text


def to_latex(df: pl.DataFrame, *, caption: str, digits: int = 3) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    align = "".join("r" if df[c].dtype.is_numeric() else "l" for c in df.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption{{{_tex_escape(caption)}}}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(_tex_escape(c) for c in df.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_tex_escape(_fmt(v, digits)) for v in row) + r" \\" for row in df.iter_rows()]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(df: pl.DataFrame, *, csv, md, prov: dict, title: str, tex=None, digits: int = 3) -> None:
    io.write_text(df.write_csv(), csv)
    io.write_text(f"**{title}**\n\n" + to_markdown(df, digits=digits), md)
    if tex is not None:
        io.write_text(to_latex(df, caption=title, digits=digits), tex)
    io.write_json(prov, Path(csv).with_suffix(".provenance.json"))
