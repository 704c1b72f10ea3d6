"""Adaptive sampling replayed on a fixed-K run's stored draws (bench/adaptive.py ``--replay``).

An adaptive run's draws are the first K' of the fixed run's at every checkpoint (sample s keeps its
stream key; ``siaflow/generation/rounds.py``), so the stopping rule (``adaptive_stopping.stopping_k``)
applied to the fixed run's answers, in sample order, gives the adaptive run's draws, its entropy
tables and its sampled tokens without generating anything. What a replay cannot give: the decoded
tokens of shared rows (the trie of the K' draws of a batch) and the wall time; a real adaptive run
of the same setting checks the replay (its entropy tables must be the replay's).
"""

from __future__ import annotations

from glob import glob
from pathlib import Path

import polars as pl

KEYS = ["question_id", "trajectory", "k"]


def replay_draws(draws: pl.DataFrame, golds: dict, k_max: int, settings) -> pl.DataFrame:
    """The rows of ``draws`` (one checkpoint's K_max draws in sample order) an adaptive run keeps."""
    from siaflow.adaptive_stopping import stopping_k

    draws = draws.sort(*KEYS, "sample")
    stops = [
        (q, j, k, stopping_k(answers, golds.get(q), k_max, settings))
        for q, j, k, answers in draws.group_by(KEYS, maintain_order=True).agg("answer").iter_rows()
    ]
    stop = pl.DataFrame(stops, schema={**dict(draws.select(KEYS).schema), "K_stop": pl.Int64}, orient="row")
    return draws.join(stop, on=KEYS).filter(pl.col("sample") < pl.col("K_stop")).drop("K_stop")


def replay_run(fixed: str, out: Path, block: dict, cfg: dict) -> dict:
    """Entropy tables of the adaptive setting ``block`` replayed on the fixed run under ``fixed``,
    written under ``out`` as the workflow lays them out, and its ledger-like counts per model."""
    from siaflow import io, layout
    from siaflow.adaptive_stopping import AdaptiveSettings
    from siaflow.analysis.estimators import entropy_table, sia_trajectories, trajectory_columns

    K, alpha = cfg["sampling"]["n_continuations"], cfg["estimation"]["alpha"]
    settings = AdaptiveSettings.of(block, k_max=K, alpha=alpha)
    ledger: dict = {}
    for path in sorted(glob(layout.glob(layout.CONTINUATIONS, results=fixed))):
        prov = io.read_provenance(path)
        if prov.get("variant") not in ("original", "shuffled"):
            continue
        roll_path = layout.ROLLOUTS.format(
            results=fixed, model=prov["model"], dataset=prov["dataset"], shard=prov["shard"]
        )
        roll = pl.read_parquet(roll_path)
        golds = dict(roll.select("question_id", "gold").unique("question_id").iter_rows())
        draws = pl.read_parquet(path)
        kept = replay_draws(draws, golds, K, settings)
        dst = Path(path.replace(fixed, str(out), 1))
        dst.parent.mkdir(parents=True, exist_ok=True)
        shard = {
            "prefixes": draws.select(KEYS).unique().height,
            "continuations": kept.height,
            "generated_tokens": int(kept["n_generated"].sum()),
            "stopped_early": kept.group_by(KEYS).len().filter(pl.col("len") < K).height,
        }
        io.write_parquet(kept, dst, {**prov, "ledger": shard, "replayed": block})
        acc = ledger.setdefault(prov["model"], {})
        for key, v in shard.items():
            acc[key] = acc.get(key, 0) + v
    _entropy_tables(fixed, out, cfg, entropy_table, sia_trajectories, trajectory_columns)
    return ledger


def _entropy_tables(fixed: str, out: Path, cfg: dict, entropy_table, sia_trajectories, trajectory_columns) -> None:
    """The entropy stage on the replayed draws: one table per model, dataset, stride and variant."""
    from siaflow import layout

    groups: dict = {}
    for path in sorted(glob(layout.glob(layout.CONTINUATIONS, results=str(out)))):
        parts = Path(path).parts
        model, dataset, stride, variant = parts[-5], parts[-4], parts[-3].removeprefix("stride-"), parts[-2]
        groups.setdefault((model, dataset, stride, variant), []).append(path)
    for (model, dataset, stride, variant), paths in groups.items():
        rolls = glob(layout.ROLLOUTS.format(results=fixed, model=model, dataset=dataset, shard="*"))
        roll = trajectory_columns(sia_trajectories(pl.scan_parquet(rolls), cfg["sampling"]["n_trajectories"]), "r")
        samples = pl.scan_parquet(paths).select(*KEYS, "sample", "answer")
        k_ref = cfg["sampling"]["n_continuations"]
        table = entropy_table(samples, roll, alpha=cfg["estimation"]["alpha"], k_ref=k_ref).with_columns(
            model=pl.lit(model), dataset=pl.lit(dataset), stride=pl.lit(int(stride)), variant=pl.lit(variant)
        )
        dst = Path(
            layout.ENTROPY.format(results=str(out), model=model, dataset=dataset, stride=stride, variant=variant)
        )
        dst.parent.mkdir(parents=True, exist_ok=True)
        table.collect().write_parquet(dst)


def ablate_unseen_gold(mode: str) -> None:
    """Replace the rule's clause for a checkpoint whose gold is unseen (it runs to K_max), for the
    ablation docs/costs.md reports: ``posterior`` (no clause: the posterior alone decides) or
    ``k_min`` (an unseen gold stops at K_min whatever H is). Replays only; never in the workflow."""
    import siaflow.adaptive_stopping as rule

    the_rule = rule.settled

    def settled(answers, gold, k_max, settings):
        if gold in answers or not settings.k_min <= len(answers) < k_max:
            return the_rule(answers, gold, k_max, settings)  # not the clause's case
        return mode == "k_min" or rule.posterior_settled(answers, gold, k_max, settings)

    if mode != "rule":
        rule.settled = settled
