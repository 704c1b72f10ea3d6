"""What generation and analysis both name: the key columns of the results tables, the
checkpoints k of a trajectory at which the answer entropy H_k is measured (docs/design.md §2), and
the tokens a stored draw generated."""

from __future__ import annotations

GROUP = ["model", "dataset"]  # one row of Tables 1-3 / one curve of a figure
TRAJ = [*GROUP, "question_id", "trajectory"]  # one trajectory
IN_SHARD = ["question_id", "trajectory"]  # one trajectory within a model x dataset table
# continuation variants: the trajectory's own prefix and its shuffled tokens (K full continuations
# each), and the forced-answer probe (K short answers after an answer cue; siaflow.generation.probes)
VARIANTS = ("original", "shuffled")
PROBE_VARIANT = "probe"


def draw_tokens():
    """A polars expression: the tokens one stored draw (a row of continuations or probes) generated,
    its text plus the stop token or the stop string's tokens (``Generation.n_sampled``)."""
    import polars as pl  # here, not at the top: the Snakefile imports this module

    return pl.col("n_generated") + (pl.col("finish_reason") == "stop").cast(pl.Int64) + pl.col("cut").cast(pl.Int64)


def checkpoint_positions(T: int, stride: int) -> list[int]:
    """``{0, s, 2s, ...} ∪ {T}``: token positions in the generated part of a trajectory."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return sorted(set(range(0, T, stride)) | {T})
