"""What every stage shares: its rule's log, an error that names the rule, and the provenance of
analysis outputs."""

from __future__ import annotations

import contextlib
import functools
import sys
import traceback
from pathlib import Path

import polars as pl

from siaflow import io
from siaflow.outputs.tables import write_table

# what an analysis output records of each entropy table it read
_ENTROPY_PROVENANCE = (
    "model",
    "model_path",
    "revision",
    "regime",
    "dataset",
    "prompt_template",
    "decoding",
    "seed",
    "n_trajectories",
    "n_continuations",
    "stride",
    "variant",
    "alpha",
    "entropy_kind",
    "siaflow_version",
    "software",
    "siaflow_commit",
    "ledger_total",
)


@contextlib.contextmanager
def _logging_to(sm):
    """Send stdout/stderr of a rule to its ``log:`` file (appending, so resumed jobs keep history)."""
    logs = list(getattr(sm, "log", []) or [])
    if not logs:
        yield
        return
    Path(logs[0]).parent.mkdir(parents=True, exist_ok=True)
    with open(logs[0], "a", buffering=1) as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            yield
        except Exception:
            traceback.print_exc(file=fh)  # the log says why the job failed, not only Snakemake's stderr
            raise


def stage(fn):
    """Run a stage function with its output going to the rule's log; when it fails, say which rule
    failed and why on stderr (the traceback is in the log)."""

    @functools.wraps(fn)
    def run(sm):
        try:
            with _logging_to(sm):
                return fn(sm)
        except Exception as exc:
            rule = getattr(sm, "rule", None) or fn.__name__
            print(f"siaflow: rule {rule} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            raise

    return run


def params(sm) -> dict:
    """The rule's params as a plain dict (for provenance)."""
    return {k: v for k, v in sm.params.items()}


def load_entropy(paths) -> pl.LazyFrame:
    return pl.concat([pl.scan_parquet(p) for p in paths], how="vertical_relaxed")


def tagged(paths, columns: list[str]) -> pl.LazyFrame:
    """The files' rows (rollouts or draws) with the model and dataset their provenance names."""
    frames = []
    for p in paths:
        prov = io.read_provenance(p)
        frames.append(
            pl.scan_parquet(p)
            .select(columns)
            .with_columns(model=pl.lit(prov["model"]), dataset=pl.lit(prov["dataset"]))
        )
    return pl.concat(frames, how="vertical_relaxed")


def analysis_provenance(sm, entropy_paths, **extra) -> dict:
    """Provenance of a table or figure: the rule, its params, and what made each entropy table."""
    inputs = {}
    for p in map(str, entropy_paths):
        prov = io.read_provenance(p)
        inputs[p] = {k: prov.get(k) for k in _ENTROPY_PROVENANCE}
    return io.provenance(step=sm.rule, params=params(sm), inputs=inputs, **extra)


def figure_provenance(sm, prov: dict) -> None:
    """A figure's provenance sits beside its data: <figure>.data.provenance.json."""
    io.write_json(prov, Path(sm.output.data).with_suffix(".provenance.json"))


def write_model_table(sm, df: pl.DataFrame, title: str, prov: dict) -> None:
    """A table of model x dataset rows, each model's regime and family after its name, as the
    rule's CSV, Markdown and LaTeX outputs with ``prov`` beside them; printed to the rule's log."""
    df = with_model_info(df, sm.params.models)
    write_table(df, csv=sm.output.csv, md=sm.output.md, tex=sm.output.tex, title=title, prov=prov)
    print(df)


def with_model_info(df: pl.DataFrame, models: dict[str, dict]) -> pl.DataFrame:
    """``df`` with each model's regime and family after its name, models in config order."""
    info = pl.DataFrame(
        {
            "model": list(models),
            "regime": [m["regime"] for m in models.values()],
            "family": [m.get("family", "") for m in models.values()],
        }
    )
    return info.join(df, on="model", how="inner", maintain_order="right").select(
        "model", "regime", "family", *[c for c in df.columns if c != "model"]
    )
