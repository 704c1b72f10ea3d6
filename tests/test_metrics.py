"""Aggregations behind tables and figures, against independent computations."""

import math

import numpy as np
import polars as pl
import polars.testing
import pytest

from siaflow.analysis import curves, fano, metrics, stats
from siaflow.config import mc_source_stride


def test_roc_auc_hand_computed_with_ties():
    # positives {0.9, 0.5}, negatives {0.5, 0.1}: pairs (0.9>0.5, 0.9>0.1, 0.5=0.5 -> .5, 0.5>0.1) = 3.5/4
    assert stats.roc_auc([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == 0.875
    assert stats.roc_auc([1, 1, 1], [True, False, True]) == 0.5
    assert math.isnan(stats.roc_auc([0.1, 0.2], [True, True]))  # a single class
    assert math.isnan(stats.roc_auc([], []))


def test_roc_auc_matches_sklearn_and_weights_mean_duplication():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    s = rng.integers(0, 6, 300).astype(float)  # many ties
    y = rng.random(300) < 0.4
    assert stats.roc_auc(s, y) == pytest.approx(sklearn.roc_auc_score(y, s))
    w = rng.integers(0, 4, 300)
    assert stats.roc_auc(s, y, w) == pytest.approx(stats.roc_auc(np.repeat(s, w), np.repeat(y, w)))
    assert stats.roc_auc(s, y, w) == pytest.approx(sklearn.roc_auc_score(y, s, sample_weight=w))


def test_bootstrap_is_seeded_and_covers_a_known_mean():
    rng = np.random.default_rng(1)
    hits, trials = 0, 200
    for t in range(trials):
        x = rng.normal(2.0, 1.0, size=(40, 1))
        mean, lo, hi = stats.bootstrap_mean_ci(x, n_boot=400, ci=0.95, seed=t)
        hits += lo[0] <= 2.0 <= hi[0]
    # nominal 95%; the percentile bootstrap at n=40 is a little narrow. 200 trials: sd ~1.6 points
    assert 0.88 <= hits / trials <= 0.99
    a = stats.bootstrap_mean_ci(np.arange(10.0), n_boot=100, ci=0.9, seed=3)
    b = stats.bootstrap_mean_ci(np.arange(10.0), n_boot=100, ci=0.9, seed=3)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    m, lo, hi = stats.bootstrap_mean_ci(np.array([[1.0, np.nan], [3.0, np.nan]]), n_boot=50, ci=0.95, seed=0)
    assert m[0] == 2.0 and np.isnan(m[1])


def _traj_frame(rows):
    return pl.DataFrame(rows).with_columns(model=pl.lit("m"), dataset=pl.lit("d"))


def test_interpolate_to_grid():
    df = _traj_frame(
        [
            {"question_id": "q", "trajectory": 0, "rel_pos": 0.0, "H": 1.0},
            {"question_id": "q", "trajectory": 0, "rel_pos": 0.4, "H": 0.6},
            {"question_id": "q", "trajectory": 0, "rel_pos": 1.0, "H": 0.0},
        ]
    )
    out = curves.interpolate_to_grid(df.lazy(), "H", np.array([0.0, 0.2, 0.4, 0.7, 1.0])).collect().sort("rel_pos")
    assert out["H"].to_list() == pytest.approx([1.0, 0.8, 0.6, 0.3, 0.0])


def test_table1_counts_and_means():
    nan = float("nan")
    traj = pl.DataFrame(
        {
            "model": ["m"] * 6,
            "dataset": ["d"] * 6,
            "question_id": list("abcdef"),
            "trajectory": [0] * 6,
            "rho": [0.9, 0.7, -0.5, nan, nan, nan],
            "rho_reason": ["ok", "ok", "ok", "constant_H", "too_few_checkpoints", "gold_unseen"],
            "rho_pre": [0.4, nan, -0.2, nan, nan, nan],
            "rho_pre_reason": ["ok", "gold_unseen", "ok", "constant_H", "too_few_checkpoints", "gold_unseen"],
            "rho_split": [0.5, nan, -0.1, 0.2, nan, nan],
            "rho_split_pre": [nan, nan, 0.3, 0.1, nan, nan],
            "correct": [True, True, False, True, False, False],
        }
    )
    boot = dict(n_boot=400, ci=0.9, seed=5)
    t = metrics.table1_alignment(traj.lazy(), **boot).row(0, named=True)
    assert (t["n_total"], t["n_defined"], t["n_pre_defined"]) == (6, 3, 2)
    assert t["mean_rho"] == pytest.approx(1.1 / 3)
    assert t["mean_rho_correct"] == pytest.approx(0.8) and t["n_correct_defined"] == 2
    assert t["mean_rho_incorrect"] == pytest.approx(-0.5) and t["n_incorrect_defined"] == 1
    assert t["mean_rho_pre"] == pytest.approx(0.1)
    assert t["mean_rho_pre_correct"] == pytest.approx(0.4) and t["n_pre_incorrect_defined"] == 1
    assert t["mean_rho_split"] == pytest.approx(0.2) and t["n_split_defined"] == 3
    assert t["mean_rho_split_pre"] == pytest.approx(0.2) and t["n_split_pre_defined"] == 2
    assert t["accuracy"] == pytest.approx(0.5)
    assert (t["n_constant_H"], t["n_too_few_checkpoints"], t["n_constant_S"], t["n_gold_unseen"]) == (1, 1, 0, 1)
    assert (t["n_pre_gold_unseen"], t["n_pre_constant_H"]) == (2, 1)
    # the interval and standard error are a bootstrap over questions, recomputed here by a loop
    draws = stats.resample_counts(6, 400, 5)  # questions a..f in sorted order
    rho = np.array([0.9, 0.7, -0.5, nan, nan, nan])
    boots = [np.nansum(np.repeat(rho, d)) / np.sum(~np.isnan(np.repeat(rho, d))) for d in draws if d[:3].sum()]
    assert (t["rho_lo"], t["rho_hi"]) == pytest.approx((np.quantile(boots, 0.05), np.quantile(boots, 0.95)))
    assert t["se_rho"] == pytest.approx(np.std(boots, ddof=1))


def test_table1_bootstrap_resamples_questions_not_trajectories():
    """Two trajectories of one question move together in every resample: with identical values
    per question, the interval is that of the question means (n = 3), not of 6 independent values."""
    traj = pl.DataFrame(
        {
            "model": ["m"] * 6,
            "dataset": ["d"] * 6,
            "question_id": list("aabbcc"),
            "trajectory": [0, 1] * 3,
            "rho": [0.9, 0.9, 0.1, 0.1, -0.4, -0.4],
            "rho_reason": ["ok"] * 6,
            "rho_pre": [0.9, 0.9, 0.1, 0.1, -0.4, -0.4],
            "rho_pre_reason": ["ok"] * 6,
            "rho_split": [0.0] * 6,
            "rho_split_pre": [0.0] * 6,
            "correct": [True] * 6,
        }
    )
    t = metrics.table1_alignment(traj.lazy(), n_boot=300, ci=0.95, seed=1).row(0, named=True)
    per_q = stats.bootstrap_cluster_mean(np.array([0.9, 0.1, -0.4]), np.array(list("abc")), n_boot=300, ci=0.95, seed=1)
    assert (t["rho_lo"], t["rho_hi"], t["se_rho"]) == pytest.approx((per_q.lo, per_q.hi, per_q.se))


def test_paired_difference_cancels_what_both_sides_share():
    """Table 2/3's difference: each resample of questions serves both sides, so a constant shift
    between the sides has a zero-width interval, however much the questions differ."""
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 40)
    q = np.repeat(np.arange(20), 2)
    d = stats.bootstrap_cluster_difference(a, a + 0.3, q, n_boot=200, ci=0.95, seed=0)
    assert (d.mean, d.lo, d.hi) == pytest.approx((0.3, 0.3, 0.3))
    unpaired = stats.bootstrap_cluster_mean(a, q, n_boot=200, ci=0.95, seed=0)
    assert unpaired.hi - unpaired.lo > 0.3
    # undefined values drop out of their own side's mean only
    b = a + 0.3
    b[:4] = np.nan
    d = stats.bootstrap_cluster_difference(a, b, q, n_boot=200, ci=0.95, seed=0)
    assert d.mean == pytest.approx(np.mean(b[4:]) - np.mean(a))


def test_normalised_gain_and_exclusion():
    df = _traj_frame(
        [
            {"question_id": "q", "trajectory": 0, "k": 0, "H": 1.0, "S": 2.0, "correct": True},
            {"question_id": "q", "trajectory": 0, "k": 4, "H": 0.25, "S": 1.0, "correct": True},
            {"question_id": "q", "trajectory": 0, "k": 8, "H": 0.0, "S": 0.0, "correct": True},
            {"question_id": "q", "trajectory": 1, "k": 0, "H": 0.5, "S": 1.0, "correct": False},
            {"question_id": "q", "trajectory": 1, "k": 4, "H": 0.7, "S": 0.5, "correct": False},
        ]
    )
    g = curves.normalised_gain(df.lazy(), gain="entropy").collect().sort("trajectory", "k")
    assert g["G_hat"].to_list()[:3] == pytest.approx([0.0, 0.75, 1.0])
    assert g.filter(pl.col("trajectory") == 1)["excluded"].all()  # G_T = -0.2 <= 0
    # the paper's Def. 11: per trace from the gold surprisal, G_k = S_0 - S_k
    g = curves.normalised_gain(df.lazy()).collect().sort("trajectory", "k")
    assert g["G"].to_list() == pytest.approx([0.0, 1.0, 2.0, 0.0, 0.5])
    assert g["G_hat"].to_list()[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert not g.filter(pl.col("trajectory") == 1)["excluded"].any()  # S fell: G_T = 0.5
    with pytest.raises(ValueError, match="gain"):
        curves.normalised_gain(df.lazy(), gain="H")


def test_cumulative_gain_curves_hold_both_bases_and_count_exclusions():
    df = _synthetic_entropy()
    out = curves.cumulative_gain_curves(df.lazy(), h="H", grid=curves.relative_grid(5), n_boot=20, ci=0.9, seed=0)
    assert set(out["gain"]) == {"surprisal", "entropy"}
    for gain in ("surprisal", "entropy"):
        g = curves.normalised_gain(df.lazy(), gain=gain).collect()
        per_traj = g.group_by("question_id", "trajectory").agg(pl.col("excluded").first(), pl.col("correct").first())
        want = per_traj.group_by("correct").agg(pl.col("excluded").sum()).sort("correct")
        got = out.filter(pl.col("gain") == gain).group_by("correct").agg(pl.col("n_excluded").first()).sort("correct")
        assert got["n_excluded"].to_list() == want["excluded"].to_list()
    # a selection whose every trajectory is excluded (H and S flat) keeps its counts, with no curve
    flat = df.with_columns(pl.lit(0.5).alias("H"), pl.lit(1.0).alias("S"))
    out = curves.cumulative_gain_curves(flat.lazy(), h="H", grid=curves.relative_grid(5), n_boot=20, ci=0.9, seed=0)
    assert out.height == 4 and out["rel_pos"].is_null().all()  # 2 bases x correct / incorrect
    assert out["n_excluded"].to_list() == out["n_trajectories"].to_list()


def test_values_at_absolute_k_carry_the_final_value():
    df = _traj_frame(
        [
            {"question_id": "q", "trajectory": 0, "k": 0, "score": -1.0, "correct": True},
            {"question_id": "q", "trajectory": 0, "k": 4, "score": -0.5, "correct": True},
            {"question_id": "q", "trajectory": 0, "k": 6, "score": -0.1, "correct": True},
        ]
    )
    out = curves.values_at_absolute_k(df.lazy(), "score", np.array([0, 4, 8, 12])).collect().sort("at_k")
    assert out["score"].to_list() == [-1.0, -0.5, -0.1, -0.1]


def test_rebound_flags():
    rows = []
    for j, hs in enumerate([[1.0, 0.5, 0.2, 0.6], [1.0, 0.8, 0.6, 0.5], [1.0, 0.1, 0.3, 0.0]]):
        for i, h in enumerate(hs):
            rows.append({"question_id": "q", "trajectory": j, "k": i, "rel_pos": i / 3, "H": h, "correct": True})
    got = (
        curves.rebound_flags(_traj_frame(rows).lazy(), h="H", late_from=0.5, threshold=0.1).collect().sort("trajectory")
    )
    # 0: rises 0.4 above its minimum 0.2 at rel 1.0; 1: monotone; 2: rises 0.2 at rel 0.67
    assert got["late_rebound"].to_list() == [True, False, True]


def test_fano_lower_bound_hand_computed():
    # |A| = 5: (H - log 2) / log 4; H = log 4 -> (log 4 - log 2) / log 4 = 1/2; below log 2 -> 0
    assert fano.fano_lower_bound(math.log(4), 5) == pytest.approx(0.5)
    assert fano.fano_lower_bound(0.3, 5) == 0.0
    with pytest.raises(ValueError):
        fano.fano_lower_bound(1.0, 2)


def test_split_by_alignment():
    t1 = pl.DataFrame({"model": ["a", "b", "c"], "dataset": ["d"] * 3, "mean_rho": [0.5, 0.1, float("nan")]})
    aligned, non = metrics.split_by_alignment(t1, 0.3)
    assert aligned == {("a", "d")} and non == {("b", "d"), ("c", "d")}
    df = pl.DataFrame({"model": ["a", "b"], "dataset": ["d", "d"], "x": [1, 2]})
    assert metrics.restrict(df.lazy(), aligned).collect()["x"].to_list() == [1]
    assert metrics.restrict(df.lazy(), set()).collect().height == 0


def test_mc_source_stride():
    assert mc_source_stride([4, 6], 8) == 4
    assert mc_source_stride([4, 2], 8) == 2
    assert mc_source_stride([3], 8) is None


def test_subsample_keeps_coarse_checkpoints_and_first_draws():
    samples = pl.DataFrame(
        [
            {"question_id": "q", "trajectory": j, "k": k, "sample": s, "answer": "1"}
            for j, ks in ((-1, [0]), (0, [4, 8, 10]))
            for k in ks
            for s in range(4)
        ]
    )
    traj = pl.DataFrame({"question_id": ["q"], "trajectory": [0], "T": [10]})
    out = metrics.subsample_continuations(samples.lazy(), traj.lazy(), stride=8, n_continuations=2).collect()
    # k = 0 (shared), 8 (multiple of 8) and T = 10; k = 4 dropped; samples 0 and 1 only
    assert sorted(set(zip(out["trajectory"], out["k"]))) == [(-1, 0), (0, 8), (0, 10)]
    assert sorted(set(out["sample"])) == [0, 1]


def test_shuffle_prefix_is_a_seeded_permutation():
    from siaflow.generation.rollouts import shuffle_prefix

    ids = list(range(30))
    a = shuffle_prefix(ids, seed=0, question_id="q", trajectory=1, k=30)
    assert sorted(a) == ids and a != ids
    assert a == shuffle_prefix(ids, seed=0, question_id="q", trajectory=1, k=30)
    assert a != shuffle_prefix(ids, seed=0, question_id="q", trajectory=2, k=30)
    assert shuffle_prefix([], seed=0, question_id="q", trajectory=1, k=0) == []


def _synthetic_entropy(n_q=12, n_traj=3, seed=0):
    """An entropy table shaped like the `entropy` rule's output, with random H and correctness."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_q):
        for t in range(n_traj):
            T = int(rng.integers(8, 20))
            correct = bool(rng.random() < 0.6)
            for k in (*range(0, T, 4), T):
                h = float(rng.choice([0.0, 0.5, 1.0, 1.5])) * (1 - k / T)
                rows.append(
                    {
                        "model": "m",
                        "dataset": "d",
                        "question_id": f"q{q:02d}",
                        "trajectory": t,
                        "k": k,
                        "T": T,
                        "rel_pos": k / T,
                        "H": h,
                        "S": h + float(rng.random()),
                        "c_gold": int(rng.integers(0, 3)),
                        "H_a": h * float(rng.random()),
                        "S_b": float(rng.random()),
                        "c_gold_b": int(rng.integers(0, 3)),
                        "before_answer": k < T - 2,
                        "correct": correct,
                        "map_correct": bool(rng.random() < 0.5),
                    }
                )
    return pl.DataFrame(rows)


def test_every_bootstrapped_result_ignores_the_input_row_order():
    """Shards arrive in any order: the same rows must give the same CIs (a group_by without an
    order once fed questions to the bootstrap in hash order, so Fano's CI changed between runs)."""
    df = _synthetic_entropy()
    shuffled = df.sample(fraction=1.0, shuffle=True, seed=1)
    boot = dict(n_boot=50, ci=0.95, seed=0)
    grid = curves.relative_grid(11)

    def results(frame):
        lf = frame.lazy()
        return [
            fano.fano_data(lf, h="H", answer_space={"d": 100}, n_bins=4, **boot),
            curves.cumulative_gain_curves(lf, h="H", grid=grid, **boot),
            *curves.auc_curves(lf, h="H", stride=4, grid=grid, **boot),
            *curves.saturation_summary(
                lf, h="H", grid=grid, plateau_fraction=0.2, late_from=0.6, rebound_threshold=0.2, **boot
            ),
            metrics.table1_alignment(metrics.trajectory_alignment(lf), **boot),
        ]

    for a, b in zip(results(df), results(shuffled), strict=True):
        assert a.height > 0
        sort_by = [c for c in ("model", "dataset", "correct", "bin", "rel_pos", "k") if c in a.columns]
        pl.testing.assert_frame_equal(a.sort(sort_by), b.sort(sort_by), rel_tol=1e-12, abs_tol=1e-15)


# --- the vectorised kernels against the plain definitions they replace ---------------------


def test_bootstrap_roc_auc_equals_weighted_roc_auc_for_every_resample():
    rng = np.random.default_rng(7)
    for trial in range(60):
        n, n_groups = int(rng.integers(1, 80)), int(rng.integers(1, 20))
        # coarse scores make ties; some trials drop scores to NaN; some have one class only
        scores = np.round(rng.random(n) * 3, 1 if trial % 2 else 9)
        scores[rng.random(n) < (0.2 if trial % 3 == 0 else 0.0)] = np.nan
        labels = rng.random(n) < (0.5 if trial % 7 else 1.1)
        groups = rng.integers(0, n_groups, n)
        counts = rng.multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=25)
        fast = stats.bootstrap_roc_auc(scores, labels, groups, counts, chunk=7)
        slow = np.array([stats.roc_auc(scores, labels, counts[b, groups]) for b in range(len(counts))])
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12, equal_nan=True)


def test_bootstrap_mean_ci_equals_nanmean_of_the_resampled_rows():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(30, 4))
    values[rng.random(values.shape) < 0.2] = np.nan
    values[:, 3] = np.nan
    mean, lo, hi = stats.bootstrap_mean_ci(values, n_boot=300, ci=0.9, seed=11, chunk=64)
    draws = np.random.default_rng(11)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        boots = np.concatenate(
            [np.nanmean(values[draws.integers(0, 30, size=(min(64, 300 - s), 30))], axis=1) for s in range(0, 300, 64)]
        )
        want_lo, want_hi = np.nanquantile(boots, 0.05, axis=0), np.nanquantile(boots, 0.95, axis=0)
    np.testing.assert_allclose(mean, np.nanmean(values[:, :3], axis=0).tolist() + [np.nan], equal_nan=True)
    np.testing.assert_allclose(lo, want_lo, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(hi, want_hi, rtol=1e-12, equal_nan=True)


def _random_trajectories(rng, n_traj=40):
    rows = []
    for t in range(n_traj):
        T = int(rng.integers(3, 40))
        ks = np.unique(
            np.r_[0, rng.choice(np.arange(1, T), size=min(T - 1, int(rng.integers(0, 8))), replace=False), T]
        )
        for k in ks:
            rows.append(
                {
                    "question_id": f"q{t % 7}",
                    "trajectory": t,
                    "k": int(k),
                    "T": T,
                    "rel_pos": k / T,
                    "H": float(rng.random()),
                    "correct": bool(t % 3),
                }
            )
    df = _traj_frame(rows)
    return df.sample(fraction=1.0, shuffle=True, seed=int(rng.integers(1 << 30)))  # rows in no order


def test_interpolation_and_lookup_equal_per_trajectory_numpy():
    rng = np.random.default_rng(5)
    df = _random_trajectories(rng)
    grid = curves.relative_grid(11)
    ks = np.array([0, 3, 7, 20, 45])
    interp = curves.interpolate_to_grid(df.lazy(), "H", grid).collect()
    at_k = curves.values_at_absolute_k(df.lazy(), "H", ks).collect()
    assert interp.height == 40 * len(grid) and at_k.height == 40 * len(ks)
    for (t,), part in df.sort("k").group_by("trajectory"):
        x, h, k = part["rel_pos"].to_numpy(), part["H"].to_numpy(), part["k"].to_numpy()
        got = interp.filter(pl.col("trajectory") == t).sort("rel_pos")
        np.testing.assert_allclose(got["H"].to_numpy(), np.interp(grid, x, h), rtol=1e-12, atol=1e-15)
        got = at_k.filter(pl.col("trajectory") == t).sort("at_k")
        last = np.searchsorted(k, ks, side="right") - 1
        assert got["k_used"].to_list() == k[last].tolist()
        assert got["H"].to_list() == h[last].tolist()


def test_tables_do_not_depend_on_the_order_of_their_rows():
    """Table 1 and Table 2 are bit-identical whatever order the entropy rows arrive in (a rerun's
    lazy joins and group_bys do not fix it)."""
    import numpy as np

    from siaflow.analysis.metrics import shuffle_comparison, table1_alignment, trajectory_alignment

    rng = np.random.default_rng(0)
    rows = []
    for m in ("a", "b"):
        for q in range(40):
            for j in range(4):
                T = int(rng.integers(20, 60))
                correct = bool(rng.random() < 0.5)
                for k in list(range(0, T, 8)) + [T]:
                    h = float(rng.random() * 2)
                    rows.append(
                        {
                            "model": m,
                            "dataset": "d",
                            "question_id": f"q{q}",
                            "trajectory": j,
                            "k": k,
                            "T": T,
                            "H": h,
                            "S": h + float(rng.random()),
                            "c_gold": int(rng.integers(0, 3)),
                            "H_a": float(rng.random()),
                            "S_b": float(rng.random()),
                            "c_gold_b": int(rng.integers(0, 3)),
                            "before_answer": k < T - 8,
                            "correct": correct,
                        }
                    )
    ent = pl.DataFrame(rows)
    shuffled = ent.with_columns(pl.col("H") * 1.1 + 0.01, pl.col("S") * 0.9)
    boot = dict(n_boot=50, ci=0.95, seed=0)
    t1 = table1_alignment(trajectory_alignment(ent.lazy()).collect().lazy(), **boot)
    t2 = shuffle_comparison(ent.lazy(), shuffled.lazy(), **boot)
    for seed in range(5):
        perm = np.random.default_rng(seed + 1).permutation(ent.height)
        e, s = ent[perm], shuffled[np.random.default_rng(seed + 100).permutation(ent.height)]
        assert table1_alignment(trajectory_alignment(e.lazy()).collect().lazy(), **boot).equals(t1)
        assert shuffle_comparison(e.lazy(), s.lazy(), **boot).equals(t2)


def test_cluster_bootstrap_resamples_questions_not_values():
    """The mean of the defined values, and each resample's mean weighting a question's values by
    how often the question is drawn (checked against a plain loop over the same draws)."""
    from siaflow.analysis.stats import bootstrap_cluster_mean_ci, resample_counts

    values = np.array([1.0, 3.0, np.nan, 10.0, 0.0])
    groups = np.array(["a", "a", "b", "c", "c"])
    mean, lo, hi = bootstrap_cluster_mean_ci(values, groups, n_boot=200, ci=0.9, seed=3)
    assert mean == pytest.approx(14 / 4)
    draws = resample_counts(3, 200, 3)  # groups in sorted order: a, b, c
    sums, counts = np.array([4.0, 0.0, 10.0]), np.array([2.0, 0.0, 2.0])
    boots = [(d @ sums) / (d @ counts) for d in draws if d @ counts > 0]
    assert (lo, hi) == pytest.approx((np.quantile(boots, 0.05), np.quantile(boots, 0.95)))
    same = bootstrap_cluster_mean_ci(np.array([2.0, 2.0]), np.array(["a", "b"]), n_boot=50, ci=0.95, seed=0)
    assert same == pytest.approx((2.0, 2.0, 2.0))
    assert all(np.isnan(bootstrap_cluster_mean_ci(np.array([np.nan]), np.array(["a"]), n_boot=10, ci=0.95, seed=0)))
