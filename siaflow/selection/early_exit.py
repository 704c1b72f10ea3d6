"""Early exit, evaluated after the fact (table_early_exit, fig_early_exit; docs/early-exit.md).

Every rule is applied to the stored trajectories and draws: a trajectory is read checkpoint by
checkpoint (k = 0, s, 2s, ... before its end T) as if it were being generated, and a rule that
exits at checkpoint k answers there. What a rule spends is the trajectory's tokens up to the exit
**plus** every draw (probe or full continuation) it made to decide, the empty prefix's included;
a trajectory that reaches its end answers with its own answer and has paid for every draw before
it. Nothing is drawn at k = T: a finished response needs no probe.

Per-trajectory rules (on each question's N trajectories with continuations):

* ``entropy`` (siaflow's): exit at the first checkpoint whose answer entropy (``source``: the
  full continuations, or the K probes) is at most tau, with the checkpoint's most frequent answer;
* ``consecutive`` (siaflow's): exit once that most frequent answer (not NULL) is the same at m
  consecutive checkpoints;
* ``dynasor``: Dynasor's rule as its code runs it (``dynasor/core/cot.py``,
  ``dynasor/cli/vllm_server.py``): one probe every ``interval`` tokens (the first of the stored K
  probe samples), exit once the last m probe answers are equal, not NULL, and their texts hold
  none of its hedge words (``uncertain_words``, matched as substrings of the lower-cased text);
  it pays for the one probe it makes at each of its checkpoints;
* ``budget``: a fixed token budget B: a trajectory longer than B is stopped at B and answers with
  the probes' most frequent answer there (budget forcing); the rest run to their end;
* ``full``: the full trajectory (the baseline: accuracy of one response, tokens 1).

Per-question rules (on each question's whole pool of responses, ``edis.pool_size``):

* ``deepconf``: DeepConf's online rule (``deepconf/wrapper.py``: ``_deepthink_online``,
  ``_perform_basic_voting``): the first ``warmup`` traces run in full and set the threshold s, the
  ``1 - eta`` quantile of their lowest group confidences (keep the top eta); every later trace
  stops at the first window whose group confidence falls below s and is discarded; the warm-up
  traces whose lowest group confidence is at least s and the survivors vote, weighted by it;
* ``majority``: every trace in full, majority vote (the baseline of ``deepconf``).

Tokens are relative to the full trajectories the rule replaces (the sum of its costs over the sum
of their lengths T), accuracy is over trajectories (per-trajectory rules) or questions
(per-question rules), and each has a percentile bootstrap CI over questions.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl

from siaflow.analysis.probes import CHECKPOINT
from siaflow.analysis.stats import resample_counts
from siaflow.answers import NULL
from siaflow.keys import GROUP, TRAJ, draw_tokens
from siaflow.selection.selectors import group_confidences

SOURCES = ("full", "probe")
HEDGE_WORDS = ("wait", "hold", "but", "okay", "no", "hmm")  # dynasor/core/entropy.py: uncertain_words


def first_probes(draws: pl.LazyFrame) -> pl.LazyFrame:
    """Per probed checkpoint (the empty prefix once per question, trajectory = -1): its first probe
    sample's answer, text and tokens, the one probe Dynasor would make there."""
    return draws.filter(pl.col("sample") == 0).select(
        *GROUP,
        "question_id",
        pl.col("trajectory").cast(pl.Int64),
        pl.col("k").cast(pl.Int64),
        dyn_answer="answer",
        dyn_text="text",
        dyn_tok=draw_tokens().cast(pl.Int64),
    )


def exit_checkpoints(
    paired: pl.DataFrame, tokens: dict[str, pl.LazyFrame], first: pl.LazyFrame | None = None
) -> pl.DataFrame:
    """``analysis.probes.paired_checkpoints`` rows with ``tok_full`` / ``tok_probe``: the tokens each
    estimator's draws at that checkpoint generated (the empty prefix's shared draws count for every
    trajectory that reads them), and with ``first`` (``first_probes``) the first probe's
    ``dyn_answer``, ``dyn_text`` and ``dyn_tok``."""
    on = [*GROUP, "question_id", "_src", "k"]
    out = paired.lazy().with_columns(_src=pl.when(pl.col("k") == 0).then(-1).otherwise(pl.col("trajectory")))
    for tag, t in tokens.items():
        t = t.select(
            *GROUP, "question_id", pl.col("trajectory").alias("_src"), "k", pl.col("tokens").alias(f"tok_{tag}")
        )
        out = out.join(t, on=on, how="left")
    if first is not None:
        out = out.join(first.rename({"trajectory": "_src"}), on=on, how="left")
    return out.drop("_src").with_columns(pl.col(f"tok_{t}").fill_null(0) for t in tokens).sort(CHECKPOINT).collect()


def _trajectories(cp: pl.DataFrame) -> pl.DataFrame:
    """One row per trajectory of ``cp``: its length T and whether its own answer is right."""
    return cp.group_by(TRAJ, maintain_order=True).agg(pl.col("T").first(), pl.col("correct").first())


def _before_end(cp: pl.DataFrame) -> pl.DataFrame:
    return cp.filter(pl.col("k") < pl.col("T")).sort(CHECKPOINT)


def _exit_where(cp: pl.DataFrame, hit: pl.Expr, source: str) -> pl.DataFrame:
    """Per trajectory: the first checkpoint before the end where ``hit`` holds, else its end."""
    rows = _before_end(cp).with_columns(_cum=pl.col(f"tok_{source}").cum_sum().over(TRAJ), _hit=hit)
    spent = rows.group_by(TRAJ).agg(_all=pl.col(f"tok_{source}").sum())
    first = rows.filter("_hit").group_by(TRAJ, maintain_order=True).first()
    out = (
        _trajectories(cp)
        .join(spent, on=TRAJ, how="left")
        .join(first.select(*TRAJ, "k", "_cum", pl.col(f"map_{source}").alias("_answer"), "gold"), on=TRAJ, how="left")
    )
    exited = pl.col("k").is_not_null()
    return out.select(
        *GROUP,
        "question_id",
        pl.col("trajectory").alias("unit"),
        correct=pl.when(exited).then(pl.col("_answer") == pl.col("gold")).otherwise(pl.col("correct")),
        cost=pl.when(exited).then(pl.col("k") + pl.col("_cum")).otherwise(pl.col("T") + pl.col("_all").fill_null(0)),
        draws=pl.when(exited).then(pl.col("_cum")).otherwise(pl.col("_all").fill_null(0)),
        full=pl.col("T"),
        exited=exited,
    )


def entropy_exit(cp: pl.DataFrame, source: str, tau: float) -> pl.DataFrame:
    return _exit_where(cp, pl.col(f"H_{source}") <= tau + 1e-12, source)


def consecutive_exit(cp: pl.DataFrame, source: str, m: int) -> pl.DataFrame:
    a = pl.col(f"map_{source}")
    run = (a != a.shift(1)).fill_null(True).cum_sum().over(TRAJ)
    run_len = pl.int_range(1, pl.len() + 1).over([*TRAJ, run])
    return _exit_where(cp, (run_len >= m) & (a != NULL), source)


def dynasor_exit(cp: pl.DataFrame, interval: int, m: int = 2) -> pl.DataFrame:
    """Dynasor (``dynasor/core/cot.py``: ``openai_chat_completion_stream``): one probe (the
    checkpoint's first probe sample) every ``interval`` tokens, k = interval, 2 interval, ... before
    the end; exit at the first probe whose last ``m`` probe answers are equal, not NULL, and whose
    texts contain none of ``HEDGE_WORDS`` (substrings of the lower-cased text, as
    ``is_certain_answer``), answering with that probe's answer. Pays k plus every probe made."""
    missing = {"dyn_answer", "dyn_text", "dyn_tok"} - set(cp.columns)
    if missing:
        raise ValueError(f"dynasor: no first-probe columns {sorted(missing)} (exit_checkpoints with first_probes)")
    k = pl.col("k")
    probes = cp.filter(((k > 0) & (k % interval == 0)) | (k >= pl.col("T"))).with_columns(
        map_dynasor=pl.col("dyn_answer"), tok_dynasor=pl.col("dyn_tok").fill_null(0)
    )
    a = pl.col("dyn_answer")
    hedged = pl.col("dyn_text").fill_null("").str.to_lowercase().str.contains("|".join(HEDGE_WORDS))
    ok = ((a != NULL) & ~hedged).fill_null(False)
    probes = probes.with_columns(_ok=ok)
    hit = pl.all_horizontal(
        pl.col("_ok"), *[(pl.col("_ok").shift(i) & (a.shift(i) == a)).over(TRAJ) for i in range(1, m)]
    ).fill_null(False)
    return _exit_where(probes, hit, "dynasor")


def budget_exit(cp: pl.DataFrame, budget: int) -> pl.DataFrame:
    """Stop at B, answer with the probes' most frequent answer there (only that checkpoint's probes
    are paid for); a trajectory of at most B tokens runs to its end."""
    at_b = cp.filter((pl.col("k") == budget) & (pl.col("T") > budget))
    out = _trajectories(cp).join(at_b.select(*TRAJ, "map_probe", "gold", "tok_probe"), on=TRAJ, how="left")
    cut = pl.col("T") > budget
    if out.filter(cut & pl.col("map_probe").is_null()).height:
        raise ValueError(f"budget {budget}: some trajectories longer than it have no checkpoint at k = {budget}")
    return out.select(
        *GROUP,
        "question_id",
        pl.col("trajectory").alias("unit"),
        correct=pl.when(cut).then(pl.col("map_probe") == pl.col("gold")).otherwise(pl.col("correct")),
        cost=pl.when(cut).then(budget + pl.col("tok_probe")).otherwise(pl.col("T")),
        draws=pl.when(cut).then(pl.col("tok_probe")).otherwise(0),
        full=pl.col("T"),
        exited=cut,
    )


def full_trajectory(cp: pl.DataFrame) -> pl.DataFrame:
    return (
        _trajectories(cp)
        .select(
            *GROUP, "question_id", pl.col("trajectory").alias("unit"), "correct", cost="T", draws=pl.lit(0), full="T"
        )
        .with_columns(exited=pl.lit(False))
    )


def vote(answers, weights=None) -> str:
    """The answer with the largest total weight (NULL only when nothing else was answered); ties go
    to the smallest answer text, so the result never depends on trace order."""
    tally = Counter()
    for a, w in zip(answers, weights if weights is not None else [1.0] * len(answers)):
        tally[a] += float(w)
    if len(tally) > 1:
        tally.pop(NULL, None)
    return min(tally, key=lambda a: (-tally[a], a)) if tally else NULL


def stop_position(conf, window: int, threshold: float) -> int | None:
    """Where DeepConf's online rule stops a trace: the number of tokens generated when the first
    window's group confidence falls below ``threshold`` (None: it never does)."""
    g = group_confidences(conf, window)
    below = np.flatnonzero(g < threshold)
    if not below.size:
        return None
    return int(min(len(conf), below[0] + window))


def _questions(pool: pl.DataFrame):
    """(model, dataset, question, its responses in trajectory order) of every question of ``pool``."""
    for (model, dataset, q), part in pool.sort("trajectory").group_by(*GROUP, "question_id", maintain_order=True):
        yield model, dataset, q, part


def _question_row(model, dataset, q, part, answer: str, cost: int, stopped: int) -> dict:
    """A per-question unit: the pool's answer against gold, what it spent, its full length."""
    correct = answer == part["gold"][0]
    return dict(model=model, dataset=dataset, question_id=q, unit=-1, correct=correct, cost=cost, draws=0) | {
        "full": int(part["T"].sum()),
        "exited": stopped > 0,
    }


def deepconf_online(pool: pl.DataFrame, *, window: int, warmup: int, keep: float) -> pl.DataFrame:
    """One row per question: DeepConf online (module docstring) on its pool of responses
    (``trajectory`` order; columns question_id, trajectory, T, answer, gold, token_confidence)."""
    rows = []
    for model, dataset, q, part in _questions(pool):
        confs = [np.asarray(c, dtype=float) for c in part["token_confidence"].to_list()]
        lowest = np.array([group_confidences(c, window).min() if len(c) else np.nan for c in confs])
        s = float(np.nanquantile(lowest[:warmup], 1 - keep))
        cost, voters, stopped = 0, [], 0
        for i, (c, t) in enumerate(zip(confs, part["T"])):
            at = None if i < warmup else stop_position(c, window, s)
            cost += t if at is None else at
            stopped += at is not None
            if at is None and (i >= warmup or lowest[i] >= s):  # a warm-up trace votes only at or above s
                voters.append(i)
        answer = vote([part["answer"][i] for i in voters], [lowest[i] for i in voters])
        rows.append(_question_row(model, dataset, q, part, answer, cost, stopped))
    return pl.DataFrame(rows)


def majority_vote(pool: pl.DataFrame) -> pl.DataFrame:
    """One row per question: the majority answer of its whole pool, every trace run in full."""
    rows = [
        _question_row(model, dataset, q, part, vote(part["answer"].to_list()), int(part["T"].sum()), 0)
        for model, dataset, q, part in _questions(pool)
    ]
    return pl.DataFrame(rows)


def summarise(units: pl.DataFrame, *, n_boot: int, ci: float, seed: int) -> dict:
    """Accuracy and relative tokens of one rule's units, with bootstrap CIs over questions, the
    fraction of units that exited early and the share of the tokens spent on draws."""
    per_q = (
        units.group_by("question_id")
        .agg(
            c=pl.col("correct").cast(pl.Float64).sum(),
            n=pl.len(),
            cost=pl.col("cost").cast(pl.Float64).sum(),
            full=pl.col("full").cast(pl.Float64).sum(),
        )
        .sort("question_id")
    )
    counts = resample_counts(per_q.height, n_boot, seed).astype(float)
    c, n, cost, full = (per_q[x].to_numpy().astype(float) for x in ("c", "n", "cost", "full"))
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_b, tok_b = (counts @ c) / (counts @ n), (counts @ cost) / (counts @ full)
    a = (1 - ci) / 2
    spent = float(units["cost"].sum())
    return {
        "n": units.height,
        "accuracy": c.sum() / n.sum(),
        "accuracy_lo": float(np.nanquantile(acc_b, a)),
        "accuracy_hi": float(np.nanquantile(acc_b, 1 - a)),
        "rel_tokens": cost.sum() / full.sum(),
        "rel_tokens_lo": float(np.nanquantile(tok_b, a)),
        "rel_tokens_hi": float(np.nanquantile(tok_b, 1 - a)),
        "exited": float(units["exited"].mean()),
        "draw_share": float(units["draws"].sum()) / spent if spent else 0.0,
    }


def verdict(rel_tokens: float) -> str:
    """What exiting does to the token bill, in words."""
    if rel_tokens > 1:
        return f"costs {rel_tokens - 1:.0%} more than it saves"
    if rel_tokens < 1:
        return f"saves {1 - rel_tokens:.0%}"
    return "no change"


def rules_of(cp: pl.DataFrame, pool: pl.DataFrame, settings: dict):
    """(rule, source, setting, units) of every rule and threshold (``settings``: the
    ``early_exit`` block with ``budgets`` and ``dynasor_interval`` resolved, DeepConf's ``window``
    and ``keep_fractions``)."""
    yield "full", "-", "-", full_trajectory(cp)
    for source in SOURCES:
        for tau in settings["entropy_thresholds"]:
            yield "entropy", source, f"tau={tau:g}", entropy_exit(cp, source, tau)
        for m in settings["consecutive"]:
            yield "consecutive", source, f"m={m}", consecutive_exit(cp, source, m)
    for m in settings["dynasor_windows"]:
        interval = settings["dynasor_interval"]
        yield "dynasor", "probe", f"m={m},every={interval}", dynasor_exit(cp, interval, m)
    for b in settings["budgets"]:
        yield "budget", "probe", f"B={b}", budget_exit(cp, b)
    yield "majority", "-", "-", majority_vote(pool)
    for eta in settings["keep_fractions"]:
        units = deepconf_online(pool, window=settings["window"], warmup=settings["deepconf_warmup"], keep=eta)
        yield "deepconf", "confidence", f"eta={eta:g}", units


def early_exit_table(cp: pl.DataFrame, pool, settings: dict, *, n_boot: int, ci: float, seed: int):
    """table_early_exit: one row per model x dataset x rule x setting (``rules_of``), and the units
    (trajectories or questions) behind each row, for the figure and for tests. ``pool``: the
    rollouts (lazy or not), read one model x dataset at a time (their token confidences are the
    bulk of the data)."""
    rows, all_units = [], []
    for (model, dataset), part in cp.group_by(GROUP, maintain_order=True):
        mine = pool.lazy().filter((pl.col("model") == model) & (pl.col("dataset") == dataset)).collect()
        for rule, source, setting, units in rules_of(part, mine, settings):
            stats = summarise(units, n_boot=n_boot, ci=ci, seed=seed)
            unit = "question" if rule in ("majority", "deepconf") else "trajectory"
            rows.append(
                dict(model=model, dataset=dataset, rule=rule, source=source, setting=setting, unit=unit) | stats
            )
            all_units.append(units.with_columns(rule=pl.lit(rule), source=pl.lit(source), setting=pl.lit(setting)))
    table = pl.DataFrame(rows).with_columns(
        verdict=pl.when(pl.col("rule").is_in(["full", "majority"]))
        .then(pl.lit("baseline"))
        .otherwise(pl.col("rel_tokens").map_elements(verdict, return_dtype=pl.String))
    )
    return table.sort(GROUP, maintain_order=True), pl.concat(all_units, how="vertical_relaxed")
