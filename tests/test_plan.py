"""The cost plan against a small config computed by hand."""

import polars as pl

from siaflow.plan import continuation_counts, cost_plan


def test_continuation_counts_by_hand():
    # Q = 10 questions, N = 2, K = 4, stride 10, traces of L = 25 tokens:
    # checkpoints k = 10, 20 and T = 25 per trajectory (m = 2), plus k = 0 once per question
    c = continuation_counts(Q=10, N=2, K=4, stride=10, L=25)
    assert c["checkpoints"] == 10 * 2 * 3 + 10 == 70
    assert c["continuations"] == 70 * 4
    # tokens per trajectory: (25-10+1) + (25-20+1) + 1 = 23; per question from k = 0: 26
    assert c["continuation_tokens"] == 4 * (10 * 2 * 23 + 10 * 26) == 2880


def test_cost_plan_by_hand():
    cfg = {
        "models": {"a": {}, "b": {}},
        "datasets": {"d": {"n_questions": 10}},
        "sampling": {"n_trajectories": 2, "n_continuations": 4, "strides": [10]},
        "edis": {"pool_size": 3},
        "mc_ablation": {"stride": 20, "n_continuations": 2},  # a sub-sample of stride 10: no extra run
        "plan": {"mean_trace_tokens": 25, "tokens_per_second": 100},
    }
    df = cost_plan(cfg)
    row = df.filter(pl.col("model") == "a").row(0, named=True)
    assert row["trajectories"] == 30 and row["sia_trajectories"] == 20
    assert row["rollout_tokens"] == 10 * 3 * 26 == 780
    assert row["continuations"] == 2 * 280  # original and shuffled
    assert row["continuation_tokens"] == 2 * 2880
    assert row["generated_tokens"] == 780 + 5760
    assert row["gpu_hours"] == (780 + 5760) / 100 / 3600
    total = df.filter(pl.col("model") == "TOTAL").row(0, named=True)
    assert total["generated_tokens"] == 2 * (780 + 5760)
    # a coarse stride that is not a multiple of a configured one is a run of its own
    cfg["mc_ablation"]["stride"] = 15
    row2 = cost_plan(cfg).filter(pl.col("model") == "a").row(0, named=True)
    extra = continuation_counts(Q=10, N=2, K=4, stride=15, L=25)
    assert row2["continuation_tokens"] == 2 * (2880 + extra["continuation_tokens"])
