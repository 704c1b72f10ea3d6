"""The cost plan against a small config computed by hand."""

import polars as pl
import pytest

from siaflow.generation.plan import continuation_counts, cost_plan


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
    # forced-answer probes: K' = 3 per prefix of the main stride (280 / 4 = 70), at most 8 + 1 tokens
    probed = cost_plan({**cfg, "probe": {"n_samples": 3, "max_new_tokens": 8}}).row(0, named=True)
    assert probed["probes"] == 70 * 3 and probed["probe_tokens"] == 70 * 3 * 9
    assert probed["generated_tokens"] == 780 + 5760 + 70 * 3 * 9
    # a coarse stride that is not a multiple of a configured one is a run of its own
    cfg["mc_ablation"]["stride"] = 15
    row2 = cost_plan(cfg).filter(pl.col("model") == "a").row(0, named=True)
    extra = continuation_counts(Q=10, N=2, K=4, stride=15, L=25)
    assert row2["continuation_tokens"] == 2 * (2880 + extra["continuation_tokens"])


def test_plan_is_calibrated_by_the_continuation_ledgers(tmp_path):
    from siaflow import io
    from siaflow.generation.plan import ledger_calibration

    def shard(model, name, decoded, naive):
        path = tmp_path / "continuations" / model / "d" / "stride-10" / "original" / f"shard-{name}.parquet"
        io.write_parquet(
            pl.DataFrame({"x": [1]}),
            path,
            io.provenance(model=model, ledger={"decoded_tokens": decoded, "naive_generated_tokens": naive}),
        )

    shard("a", 0, 100, 400)
    shard("a", 1, 50, 200)
    shard("c", 0, 300, 300)
    old = tmp_path / "continuations" / "a" / "d" / "stride-10" / "shuffled" / "shard-0.parquet"
    io.write_parquet(pl.DataFrame({"x": [1]}), old, io.provenance(ledger={"generated_tokens": 5}))  # no decoded count
    cal = ledger_calibration(tmp_path)
    assert cal["a"] == {"decoded_tokens": 150, "naive_generated_tokens": 600, "shards": 2, "ratio": 0.25}
    assert cal["*"]["ratio"] == 450 / 900 and cal["*"]["shards"] == 3
    assert ledger_calibration(tmp_path / "nothing-yet") == {}

    cfg = {
        "models": {"a": {}, "b": {}},
        "datasets": {"d": {"n_questions": 10}},
        "sampling": {"n_trajectories": 2, "n_continuations": 4, "strides": [10]},
        "plan": {"mean_trace_tokens": 25, "tokens_per_second": 100},
    }
    df = cost_plan(cfg, cal)
    a, b = (df.filter(pl.col("model") == m).row(0, named=True) for m in ("a", "b"))
    assert (a["calibrated_from"], a["ledger_ratio"]) == ("ledger of a", 0.25)
    assert a["calibrated_continuation_tokens"] == 2 * 2880 * 0.25
    assert a["calibrated_gpu_hours"] == (a["rollout_tokens"] + 2 * 2880 * 0.25) / 100 / 3600
    assert (b["calibrated_from"], b["ledger_ratio"]) == ("ledger of all models", 0.5)  # b has no shard yet
    total = df.filter(pl.col("model") == "TOTAL").row(0, named=True)
    assert total["calibrated_continuation_tokens"] == 2 * 2880 * (0.25 + 0.5)
    assert total["ledger_ratio"] == 0.375
    assert "calibrated_from" not in cost_plan(cfg).columns


def test_pilot_calibration_measures_lengths_and_throughput(tmp_path):
    """The pilot's shards calibrate the plan: L from the rollouts' mean T per model and dataset,
    tokens per second from the continuation ledgers' generation time."""
    from siaflow import io
    from siaflow.generation.plan import calibration_from, cost_plan

    roll = tmp_path / "r.parquet"
    io.write_parquet(pl.DataFrame({"T": [30, 50]}), roll, io.provenance(model="a", dataset="d"))
    cont = tmp_path / "c.parquet"
    io.write_parquet(
        pl.DataFrame({"x": [1]}),
        cont,
        io.provenance(model="a", ledger={"decoded_tokens": 400, "naive_generated_tokens": 1000, "seconds": 8.0}),
    )
    cal = calibration_from([cont], [roll])
    assert cal["trace_tokens"] == {"a/d": 40.0}
    assert cal["a"]["ratio"] == 0.4 and cal["a"]["tokens_per_second"] == 50.0
    cfg = {
        "models": {"a": {}},
        "datasets": {"d": {"n_questions": 10}},
        "sampling": {"n_trajectories": 2, "n_continuations": 4, "strides": [10]},
        "plan": {"mean_trace_tokens": 25, "tokens_per_second": 100},
    }
    row = cost_plan(cfg, cal).row(0, named=True)
    want = continuation_counts(10, 2, 4, 10, 40)["continuation_tokens"] * 2
    assert row["trace_tokens"] == 40 and row["continuation_tokens"] == want
    assert row["calibrated_gpu_hours"] == pytest.approx((10 * 2 * 41 + 0.4 * want) / 50 / 3600)


def test_plan_prices_adaptive_sampling_from_assumed_then_measured_draws(tmp_path):
    """With sampling.adaptive on, continuations and their tokens scale by plan.adaptive_mean_k / K
    (absent: no saving); adaptive shards replace that by their measured fraction of tokens: each
    checkpoint's tokens per draw times K is what a fixed-K run would have sampled there."""
    from siaflow import io
    from siaflow.generation.plan import calibration_from

    cfg = {
        "models": {"a": {}},
        "datasets": {"d": {"n_questions": 10}},
        "sampling": {"n_trajectories": 2, "n_continuations": 4, "strides": [10]},
        "plan": {"mean_trace_tokens": 25, "tokens_per_second": 100},
    }
    fixed = cost_plan(cfg).row(0, named=True)
    assert "adaptive_fraction" not in fixed
    on = {**cfg["sampling"], "adaptive": {"enabled": True, "k_min": 2}}
    row = cost_plan({**cfg, "sampling": on}).row(0, named=True)
    assert (row["adaptive_fraction"], row["continuation_tokens"]) == (1.0, fixed["continuation_tokens"])
    row = cost_plan({**cfg, "sampling": on, "plan": {**cfg["plan"], "adaptive_mean_k": 3}}).row(0, named=True)
    assert row["mean_K"] == 3 and row["continuations"] == fixed["continuations"] * 3 / 4
    assert row["continuation_tokens"] == fixed["continuation_tokens"] * 3 / 4
    assert row["gpu_hours"] < fixed["gpu_hours"]
    # a shard whose checkpoint A stopped at 2 draws (10 tokens each) and B ran to K = 4 (5 each):
    # it sampled 20 + 20 tokens where K draws everywhere would have sampled 40 + 20
    shard = tmp_path / "c.parquet"
    draws = pl.DataFrame(
        {"question_id": ["q"] * 6, "trajectory": [0] * 6, "k": [4, 4, 8, 8, 8, 8], "n_generated": [10, 10] + [5] * 4}
    )
    ledger = {"decoded_tokens": 20, "naive_generated_tokens": 40, "prefixes": 2, "continuations": 6, "rounds": 2}
    io.write_parquet(draws, shard, io.provenance(model="a", n_continuations=4, ledger=ledger))
    cal = calibration_from([shard])
    assert cal["a"]["adaptive_fraction"] == pytest.approx(40 / 60) and cal["a"]["mean_K"] == 3
    adaptive = cost_plan({**cfg, "sampling": on}, cal).row(0, named=True)
    assert adaptive["measured_adaptive_fraction"] == pytest.approx(2 / 3)
    assert adaptive["calibrated_continuation_tokens"] == pytest.approx(fixed["continuation_tokens"] * 2 / 3 * 0.5)
    # the same measurement prices a fixed-K plan at the ledger's ratio alone
    assert cost_plan(cfg, cal).row(0, named=True)["calibrated_continuation_tokens"] == pytest.approx(
        fixed["continuation_tokens"] * 0.5
    )
