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


def write_table(df: pl.DataFrame, *, csv, md, prov: dict, title: str, digits: int = 3) -> None:
    io.write_text(df.write_csv(), csv)
    io.write_text(f"**{title}**\n\n" + to_markdown(df, digits=digits), md)
    io.write_json(prov, Path(csv).with_suffix(".provenance.json"))
