"""The per-token statistics a score reads from the rollouts, and a loud stop where they lack one.

A rollouts column (``siaflow.generation.rollouts.TOKEN_STATS``; what each is: docs/selection.md)
is missing when the rollouts were made before siaflow recorded it, and null in a row when its
backend could not record it: vLLM and a served model sample with ``processed_logprobs`` and leave
the whole-vocabulary entropy, self-certainty and DeepConf's confidence null unless the scoring
pass (``sampling.exact_token_stats``) fills them. A score is never computed from what is not there.
"""

from __future__ import annotations

import polars as pl

# column -> what it is, for the error
STAT_NAMES = {
    "token_entropy": "token entropy (of the top-p nucleus sampled)",
    "token_entropy_full": "whole-vocabulary token entropy",
    "token_self_certainty": "self-certainty",
    "token_confidence": "DeepConf's token confidence",
}
HOW = (
    "the transformers backend records it while sampling; rollouts sampled by vLLM or a served model "
    "(backend: vllm / openai) get it from the exact scoring pass, `sampling.exact_token_stats: true` "
    "(the default), then rerun them: snakemake --forcerun rollouts"
)


def require_token_stats(rollouts: pl.DataFrame, columns, *, needed_by: str, source: str | None = None) -> None:
    """Stop, naming the statistic, the model and dataset (and ``source``, the files read), what
    needs it and how to get it, when ``rollouts`` lack a per-token statistic of ``columns``: no such
    column, or a null list in a row with tokens (an empty response may have none)."""
    where = f"{source}: " if source else ""
    for column in columns:
        what = f"{STAT_NAMES.get(column, column)} ({column}), which {needed_by} needs"
        if column not in rollouts.columns:
            raise ValueError(
                f"{where}the rollouts have no {column} column: no {what}. Rollouts made before siaflow "
                f"recorded it: rerun them (snakemake --forcerun rollouts); {HOW}"
            )
        null = pl.col(column).is_null()
        if "token_ids" in rollouts.columns:
            null = null & (pl.col("token_ids").list.len() > 0)
        lacking = rollouts.filter(null)
        if lacking.height:
            r = lacking.row(0, named=True)
            models = sorted({f"{m}/{d}" for m, d in _model_dataset(lacking)})
            raise ValueError(
                f"{where}no {what}, in {lacking.height} of {rollouts.height} responses (model/dataset "
                f"{', '.join(models)}; e.g. question {r.get('question_id')} trajectory {r.get('trajectory')}): "
                f"their backend did not record it. {HOW}"
            )


def _model_dataset(df: pl.DataFrame):
    cols = [c if c in df.columns else None for c in ("model", "dataset")]
    for r in df.iter_rows(named=True):
        yield tuple(r[c] if c else "?" for c in cols)


def require_token_stats_in(paths, columns, *, needed_by: str) -> None:
    """``require_token_stats`` of each rollouts file in ``paths``, naming the file; reads only the
    columns it checks."""
    for p in paths:
        schema = pl.read_parquet_schema(p)
        keep = [c for c in ("model", "dataset", "question_id", "trajectory", "token_ids", *columns) if c in schema]
        require_token_stats(pl.read_parquet(p, columns=keep), columns, needed_by=needed_by, source=str(p))
