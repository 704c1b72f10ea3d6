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
"""

from __future__ import annotations

import polars as pl

from siaflow.metrics import mc_source_stride


def continuation_counts(Q: int, N: int, K: int, stride: int, L: int) -> dict:
    m = (L - 1) // stride
    per_traj_ckpts = m + 1
    prefixes = Q * N * per_traj_ckpts + Q
    tokens_per_traj = sum(L - j * stride + 1 for j in range(1, m + 1)) + 1
    tokens = K * (Q * N * tokens_per_traj + Q * (L + 1))
    return {"checkpoints": Q * N * per_traj_ckpts + Q, "prefixes": prefixes, "continuations": prefixes * K,
            "continuation_tokens": tokens}


def cost_plan(config: dict) -> pl.DataFrame:
    s, plan = config["sampling"], config["plan"]
    L, tps = plan["mean_trace_tokens"], plan["tokens_per_second"]
    N, K = s["n_trajectories"], s["n_continuations"]
    R = max(N, config.get("edis", {}).get("pool_size", 0))
    strides = list(s["strides"])
    mc = config.get("mc_ablation")
    if mc and mc_source_stride(strides, mc["stride"]) is None:
        strides.append(mc["stride"])
    rows = []
    for model in config["models"]:
        for dataset, d in config["datasets"].items():
            Q = d["n_questions"]
            row = {"model": model, "dataset": dataset, "questions": Q, "trajectories": Q * R,
                   "sia_trajectories": Q * N, "checkpoints": 0, "continuations": 0,
                   "rollout_tokens": Q * R * (L + 1), "continuation_tokens": 0}
            for stride in strides:
                c = continuation_counts(Q, N, K, stride, L)
                row["checkpoints"] += c["checkpoints"]
                row["continuations"] += 2 * c["continuations"]  # original and shuffled
                row["continuation_tokens"] += 2 * c["continuation_tokens"]
            row["generated_tokens"] = row["rollout_tokens"] + row["continuation_tokens"]
            row["gpu_hours"] = row["generated_tokens"] / tps / 3600
            rows.append(row)
    df = pl.DataFrame(rows)
    total = df.select(pl.lit("TOTAL").alias("model"), pl.lit("").alias("dataset"),
                      *[pl.col(c).sum() for c in df.columns if c not in ("model", "dataset")])
    return pl.concat([df, total])
