"""Draws of checkpoint prefixes in rounds (issue 32): the full continuations and the forced-answer
probes both draw here, once, above every backend.

Without adaptive sampling a batch of prefixes draws its K samples in one call. With it
(``siaflow.adaptive_stopping``) the prefixes draw samples [0, K_min), then the next sample
indices of the prefixes still open, round by round up to K_max. Sample s of a prefix always has the
stream key it has in a fixed-K run (``stream_key(..., s)``), and every backend's draws are a pure
function of the keys, so the first K draws of an adaptive run are those of a fixed-K run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from siaflow.adaptive_stopping import AdaptiveSettings, settled

# draw_round(prefixes, [(first sample, end) per prefix]) -> (rows in sample order, generations, work)
DrawRound = Callable[[list, list[tuple[int, int]]], tuple[pl.DataFrame, list, dict]]


def draw_in_rounds(
    prefixes: list,
    draw_round: DrawRound,
    *,
    k_max: int,
    adaptive: AdaptiveSettings | None,
    golds: dict | None = None,
) -> tuple[pl.DataFrame, list, dict, dict]:
    """(the rows of every prefix, in prefix then sample order; each prefix's generations; the work
    summed over rounds; what the rounds did). ``golds``: the gold answer per question id (the rule
    reads S_k). The last is empty without ``adaptive``; with it: ``rounds`` (backend calls),
    ``stopped_early`` (prefixes stopped below K_max) and ``checkpoints_K<K>`` (prefixes per K)."""
    if adaptive is None or not prefixes:
        df, gens, work = draw_round(prefixes, [(0, k_max)] * len(prefixes))
        return df, gens, work, {}
    golds = golds or {}
    answers: list[list[str]] = [[] for _ in prefixes]
    gens_all: list[list] = [[] for _ in prefixes]
    frames, work, open_, lo, n_rounds = [], {}, list(range(len(prefixes))), 0, 0
    for hi in adaptive.rounds(k_max):
        if not open_:
            break
        df, gens, w = draw_round([prefixes[i] for i in open_], [(lo, hi)] * len(open_))
        frames.append(df.with_columns(_pos=pl.Series(np.repeat(open_, hi - lo), dtype=pl.Int64)))
        column = df["answer"].to_list()
        for n, i in enumerate(open_):
            gens_all[i].extend(gens[n])
            answers[i].extend(column[n * (hi - lo) : (n + 1) * (hi - lo)])
        for key, v in w.items():
            work[key] = work.get(key, 0) + v
        n_rounds += 1
        open_ = [i for i in open_ if not settled(answers[i], golds.get(prefixes[i][0]), k_max, adaptive)]
        lo = hi
    df = pl.concat(frames).sort("_pos", "sample", maintain_order=True).drop("_pos")
    work["prefixes"] = len(prefixes)
    info = {"rounds": n_rounds, "stopped_early": sum(len(a) < k_max for a in answers)}
    for K in sorted({len(a) for a in answers}):
        info[f"checkpoints_K{K}"] = sum(len(a) == K for a in answers)
    return df, gens_all, work, info
