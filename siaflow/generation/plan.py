"""The cost plan: what a config will generate, before anything is submitted.

Per (model, dataset), with Q questions, N trajectories with continuations, R = max(N, EDIS pool)
rollouts per question, K continuations, stride s, and an expected trace length of L generated
tokens (``plan.mean_trace_tokens``):

* checkpoints per trajectory besides k = 0: m + 1 with m = floor((L - 1) / s)  (k = s..ms, and T)
* prefixes per variant: Q * N * (m + 1) + Q   (k = 0 once per question)
* generated tokens per continuation from checkpoint k: L - k + 1 (the rest of the trace and its
  stop token), so per trajectory sum_{j=1..m} (L - j s + 1) + 1, and L + 1 from k = 0
* two variants (original, shuffled) per stride; Table 3's stride only when it is not a sub-sample
* rollouts: Q * R * (L + 1) tokens;  GPU-hours = tokens / plan.tokens_per_second / 3600.
* forced-answer probes (``probe``, main stride): K' per prefix of one variant, each at most its
  budget plus a stop token: prefixes * K' * (probe.max_new_tokens + 1), an upper bound.

That counts every continuation run to its end, at the config's guess of L and throughput. Once
some shards exist (the ``pilot`` target runs one per model and dataset), they calibrate it
(``calibration_from``): L becomes the measured mean response length of each model on each dataset,
a model's continuation tokens are multiplied by its measured ratio of decoded to naive tokens
(early stop and shared rows; the ratio over all models for a model with no ledger yet), and the
GPU-hours use its measured generation throughput where its shards timed it.

With ``sampling.adaptive`` enabled (docs/costs.md#adaptive-sampling) a checkpoint draws K_min to K
continuations, so continuations and their tokens are multiplied by the adaptive fraction: before a
measurement, ``plan.adaptive_mean_k`` / K (absent: 1, no saving assumed); once adaptive shards
exist, their measured fraction (``adaptive_fraction``: the tokens they sampled over what K draws at
each of their checkpoints would have sampled, at each checkpoint's measured tokens per draw), the
model's own or all models'. The probes stay at K' each (an upper bound).
"""

from __future__ import annotations

import polars as pl

from siaflow.config import mc_source_stride


def continuation_counts(Q: int, N: int, K: int, stride: int, L: int) -> dict:
    m = (L - 1) // stride
    per_traj_ckpts = m + 1
    prefixes = Q * N * per_traj_ckpts + Q
    tokens_per_traj = sum(L - j * stride + 1 for j in range(1, m + 1)) + 1
    tokens = K * (Q * N * tokens_per_traj + Q * (L + 1))
    return {
        "checkpoints": Q * N * per_traj_ckpts + Q,
        "prefixes": prefixes,
        "continuations": prefixes * K,
        "continuation_tokens": tokens,
    }


def adaptive_draws(path: str, k_max: int) -> tuple[int, float]:
    """(tokens an adaptive continuation shard sampled, what K_max draws at each of its checkpoints
    would have sampled at the checkpoint's own mean tokens per draw)."""
    df = pl.read_parquet(path, columns=["question_id", "trajectory", "k", "n_generated"])
    per = df.group_by("question_id", "trajectory", "k").agg(t=pl.col("n_generated").sum(), n=pl.len())
    return int(per["t"].sum()), float((per["t"] / per["n"] * k_max).sum())


def _add_adaptive(acc: dict, path: str, prov: dict, ledger: dict) -> None:
    """An adaptive shard's draws (``adaptive_draws``) and checkpoints, added to ``acc``."""
    sampled, full = adaptive_draws(path, int(prov.get("n_continuations") or 0))
    for key, v in (("sampled", sampled), ("full", full)):
        acc[f"adaptive_{key}"] = acc.get(f"adaptive_{key}", 0) + v
    acc["adaptive_draws"] = acc.get("adaptive_draws", 0) + ledger["continuations"]
    acc["adaptive_prefixes"] = acc.get("adaptive_prefixes", 0) + ledger["prefixes"]


def calibration_from(continuations, rollouts=()) -> dict[str, dict]:
    """Per model (and ``"*"`` for all models): the summed ``decoded_tokens`` and
    ``naive_generated_tokens`` of these continuation shards and their ratio; where every shard of a
    model timed its generation, its measured ``tokens_per_second``; where shards drew adaptively
    (their ledger counts ``rounds``), the ``adaptive_fraction`` of tokens they sampled
    (``adaptive_draws``) and their ``mean_K`` per checkpoint. Under ``"trace_tokens"``: the mean
    response length T of these rollout shards per ``"model/dataset"``."""
    import polars as pl

    from siaflow.io import read_provenance

    sums: dict[str, dict] = {}
    for path in sorted(map(str, continuations)):
        prov = read_provenance(path)
        ledger = prov.get("ledger") or {}
        if not ledger.get("naive_generated_tokens") or "decoded_tokens" not in ledger:
            continue  # a shard from before the ledger recorded decoded tokens
        for key in (prov["model"], "*"):
            acc = sums.setdefault(
                key, {"decoded_tokens": 0, "naive_generated_tokens": 0, "shards": 0, "seconds": 0.0, "timed": 0}
            )
            acc["decoded_tokens"] += ledger["decoded_tokens"]
            acc["naive_generated_tokens"] += ledger["naive_generated_tokens"]
            acc["shards"] += 1
            if ledger.get("seconds"):
                acc["seconds"] += ledger["seconds"]
                acc["timed"] += 1
            if "rounds" in ledger and "continuations" in ledger:  # adaptive continuations (not probes)
                _add_adaptive(acc, path, prov, ledger)
    for acc in sums.values():
        if "adaptive_full" in acc:
            acc["adaptive_fraction"] = acc.pop("adaptive_sampled") / acc.pop("adaptive_full")
            acc["mean_K"] = acc.pop("adaptive_draws") / acc.pop("adaptive_prefixes")
        acc["ratio"] = acc["decoded_tokens"] / acc["naive_generated_tokens"]
        timed = acc.pop("timed") == acc["shards"] and acc["seconds"] > 0
        seconds = acc.pop("seconds")
        if timed:
            acc["tokens_per_second"] = acc["decoded_tokens"] / seconds
    lengths: dict[str, list] = {}
    for path in sorted(map(str, rollouts)):
        prov = read_provenance(path)
        lengths.setdefault(f"{prov['model']}/{prov['dataset']}", []).extend(pl.read_parquet(path, columns=["T"])["T"])
    if lengths:
        sums["trace_tokens"] = {k: sum(v) / len(v) for k, v in lengths.items() if v}
    return sums


def ledger_calibration(results) -> dict[str, dict]:
    """``calibration_from`` every continuation and rollout shard already under ``results``."""
    from glob import glob

    from siaflow import layout

    return calibration_from(
        glob(layout.glob(layout.CONTINUATIONS, results=str(results))),
        glob(layout.glob(layout.ROLLOUTS, results=str(results))),
    )


def _calibrated(row: dict, model: str, calibration: dict, tps: float) -> dict:
    """A plan row's calibrated columns: continuation tokens scaled by the ledger's ratio (the
    model's own, else all models'), and by the measured adaptive fraction instead of the assumed one
    where the plan is adaptive and adaptive shards measured it; GPU-hours at the measured throughput
    where there is one."""
    key = model if model in calibration else "*"
    ratio = calibration[key]["ratio"]
    rate = calibration[key].get("tokens_per_second", tps)
    out = {"calibrated_from": f"ledger of {model}" if key == model else "ledger of all models", "ledger_ratio": ratio}
    tokens = row["continuation_tokens"]
    if "adaptive_fraction" in row:
        fkey = next((k for k in (model, "*") if "adaptive_fraction" in calibration.get(k, {})), None)
        if fkey is not None:
            tokens = tokens / row["adaptive_fraction"] * calibration[fkey]["adaptive_fraction"]
            out["measured_adaptive_fraction"] = calibration[fkey]["adaptive_fraction"]
            out["measured_mean_K"] = calibration[fkey]["mean_K"]
    out["calibrated_continuation_tokens"] = tokens * ratio
    out["tokens_per_second"] = rate
    out["calibrated_gpu_hours"] = (row["rollout_tokens"] + out["calibrated_continuation_tokens"]) / rate / 3600
    return out


# rates, lengths and fractions of a row, which the TOTAL row does not sum
PER_ROW = (
    "tokens_per_second",
    "trace_tokens",
    "mean_K",
    "adaptive_fraction",
    "measured_mean_K",
    "measured_adaptive_fraction",
)


def _total_row(df: pl.DataFrame) -> pl.DataFrame:
    """The TOTAL row: sums, the overall ratio of calibrated to planned continuation tokens, and no
    per-row rates, trace lengths or adaptive fractions."""

    def total(c: str) -> pl.Expr:
        if c == "calibrated_from":
            return pl.lit("").alias(c)
        if c == "ledger_ratio":
            return (pl.col("calibrated_continuation_tokens").sum() / pl.col("continuation_tokens").sum()).alias(c)
        if c in PER_ROW:
            return pl.lit(None, dtype=pl.Float64).alias(c)
        return pl.col(c).sum()

    rest = [total(c) for c in df.columns if c not in ("model", "dataset")]
    return df.select(pl.lit("TOTAL").alias("model"), pl.lit("").alias("dataset"), *rest)


def adaptive_fraction(config: dict) -> float | None:
    """None without adaptive sampling; else the assumed fraction of K a checkpoint draws:
    ``plan.adaptive_mean_k`` / K (at most 1), or 1 where the config assumes nothing."""
    s = config["sampling"]
    if not (s.get("adaptive") or {}).get("enabled"):
        return None
    mean_k = config["plan"].get("adaptive_mean_k")
    return 1.0 if mean_k is None else min(1.0, mean_k / s["n_continuations"])


def cost_plan(config: dict, calibration: dict[str, dict] | None = None) -> pl.DataFrame:
    """The plan per model x dataset and in total; with ``calibration`` (``calibration_from``) also
    the calibrated continuation tokens, their source, and the GPU-hours from them: at the measured
    trace length and throughput where the calibration has them, else at the config's."""
    s, plan = config["sampling"], config["plan"]
    tps = plan["tokens_per_second"]
    N, K = s["n_trajectories"], s["n_continuations"]
    R = max(N, config.get("edis", {}).get("pool_size", 0))
    strides = list(s["strides"])
    mc = config.get("mc_ablation")
    if mc and mc_source_stride(strides, mc["stride"]) is None:
        strides.append(mc["stride"])
    fraction = adaptive_fraction(config)
    calibration = dict(calibration or {})
    measured_T = calibration.pop("trace_tokens", {})
    rows = []
    for model in config["models"]:
        for dataset, d in config["datasets"].items():
            L = max(1, round(measured_T.get(f"{model}/{dataset}", plan["mean_trace_tokens"])))
            Q = d["n_questions"]
            row = {
                "model": model,
                "dataset": dataset,
                "questions": Q,
                "trajectories": Q * R,
                "sia_trajectories": Q * N,
                "trace_tokens": L,
                "checkpoints": 0,
                "continuations": 0,
                "rollout_tokens": Q * R * (L + 1),
                "continuation_tokens": 0,
                "probes": 0,
                "probe_tokens": 0,
            }
            for stride in strides:
                c = continuation_counts(Q, N, K, stride, L)
                row["checkpoints"] += c["checkpoints"]
                row["continuations"] += 2 * c["continuations"]  # original and shuffled
                row["continuation_tokens"] += 2 * c["continuation_tokens"]
            if fraction is not None:  # adaptive sampling: draws and their tokens at the assumed mean K
                row |= {"mean_K": fraction * K, "adaptive_fraction": fraction}
                row["continuations"] = round(row["continuations"] * fraction)
                row["continuation_tokens"] = round(row["continuation_tokens"] * fraction)
            probe = config.get("probe")
            if probe:
                prefixes = continuation_counts(Q, N, K, strides[0], L)["prefixes"]
                row["probes"] = prefixes * (probe.get("n_samples") or K)
                row["probe_tokens"] = row["probes"] * (probe["max_new_tokens"] + 1)
            row["generated_tokens"] = row["rollout_tokens"] + row["continuation_tokens"] + row["probe_tokens"]
            row["gpu_hours"] = row["generated_tokens"] / tps / 3600
            if calibration:
                row.update(_calibrated(row, model, calibration, tps))
            rows.append(row)
    df = pl.DataFrame(rows)
    total = _total_row(df)
    return pl.concat([df, total], how="vertical_relaxed")
