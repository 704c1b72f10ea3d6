"""Calibration of the SIA estimators (issue 29, item 6): trajectories whose answer distribution at
every checkpoint is known (tests/simulate.py), K draws per checkpoint, the real pipeline functions
on the draws, and their bias and coverage against the truth the test computes from the known
distributions.

K: the demo's and the paper grid's (config/config.yaml and config/paper.yaml, 16 both), and 64 to
show what more draws change. Tolerances come from running the computations of this file on 30-31
seeds (the comments give the range over seeds, then the bound with its margin); every expectation
is computed here, from the known distributions. About 10 s on two cores."""

import math
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import simulate as sim
import yaml

from siaflow.analysis.curves import early_auc, interpolate_to_grid, normalised_gain
from siaflow.analysis.estimators import alignment_coefficient, entropy_table
from siaflow.analysis.metrics import table1_alignment, trajectory_alignment
from siaflow.keys import TRAJ

ROOT = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((ROOT / "config/config.yaml").read_text())
PAPER = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
ALPHA = DEMO["estimation"]["alpha"]
THRESHOLD = DEMO["analysis"]["aligned_threshold"]
CI = DEMO["analysis"]["ci"]
# the demo's K and the paper grid's (both 16 today), and 64 to show what more draws buy
KS = sorted({DEMO["sampling"]["n_continuations"], PAPER["sampling"]["n_continuations"], 64})
K_DEMO = DEMO["sampling"]["n_continuations"]
SEED = 0

# --------------------------------------------------------------------------------------------
# Running the pipeline on simulated draws
# --------------------------------------------------------------------------------------------


def pipeline(design: sim.Design, K: int, seed: int, per_dataset: int | None = None) -> pl.DataFrame:
    """The entropy table of K draws per checkpoint, with model and dataset columns: the dataset is
    a replicate of ``per_dataset`` consecutive questions (question ids q0000, q0001, ...)."""
    samples = sim.draw(design, K, np.random.default_rng(seed))
    ent = entropy_table(samples.lazy(), design.trajectories().lazy(), alpha=ALPHA).collect()
    q = pl.col("question_id").str.slice(1, 4).cast(pl.Int64)
    dataset = (q // per_dataset).cast(pl.String) if per_dataset else pl.lit("all")
    return ent.with_columns(model=pl.lit("sim"), dataset=dataset)


def alignment_rows(design: sim.Design, ent: pl.DataFrame) -> pl.DataFrame:
    """``trajectory_alignment`` rows with each trajectory's kind, its true rho and rho_pre, how many
    of its draws were the gold, and at how many of its checkpoints (all / before the answer)."""
    h, s = sim.true_series(design)
    truth = design.traj.select("question_id", "trajectory", "kind").with_columns(
        true_rho=sim.masked_pearson(h, s, design.valid),
        true_rho_pre=sim.masked_pearson(h, s, design.valid & design.pre),
    )
    seen = ent.group_by(TRAJ).agg(
        gold_draws=pl.col("c_gold").sum(),
        gold_checkpoints=(pl.col("c_gold") > 0).sum(),
        gold_checkpoints_pre=((pl.col("c_gold") > 0) & pl.col("before_answer")).sum(),
    )
    traj = trajectory_alignment(ent.lazy()).collect().join(seen, on=TRAJ, how="left")
    return traj.join(truth, on=["question_id", "trajectory"], how="left")


def defined(frame: pl.DataFrame, col: str) -> np.ndarray:
    v = frame[col].to_numpy().astype(float)
    return v[~np.isnan(v)]


# --------------------------------------------------------------------------------------------
# (a) Bias of H_k and S_k, against their exact expectations
# --------------------------------------------------------------------------------------------

BIAS_COPIES = 400  # independent draws of each checkpoint


@cache
def bias_design(seed: int = SEED) -> sim.Design:
    """One question, one trajectory of each kind, 11 checkpoints each."""
    rng = np.random.default_rng(seed)
    return sim.simulate(rng, n_questions=1, per_question=3, kinds=sim.KINDS, T_range=(320, 320), q0=(0.15, 0.3))


@cache
def bias_study(K: int, seed: int = SEED) -> dict:
    """Per checkpoint of ``bias_design``: the truth, the exact expectations of the plug-in H and
    the smoothed S at K draws, and the pipeline's mean and standard error over BIAS_COPIES draws."""
    design = bias_design(seed)
    ent = pipeline(sim.replicate(design, BIAS_COPIES), K, seed + 1)
    stats = (
        ent.group_by("trajectory", "k")
        .agg(*(f(c).alias(f"{n}_{c}") for c in ("H", "S", "H_mm") for n, f in (("mean", pl.mean), ("sd", pl.std))))
        .sort("trajectory", "k")
    )
    h, s = sim.true_series(design)
    pg = np.exp(-s)
    out = {"true_H": h[design.valid], "true_S": s[design.valid], "m": (design.p > 0).sum(axis=-1)[design.valid]}
    out["exact_H"] = sim.expected_plugin_entropy(design.p, K)[design.valid]
    out["exact_S"] = sim.expected_surprisal(pg, K, ALPHA)[design.valid]
    out["exact_m"] = sim.expected_distinct(design.p, K)[design.valid]
    for c in ("H", "S", "H_mm"):
        out[f"mean_{c}"] = stats[f"mean_{c}"].to_numpy()
        out[f"sd_{c}"] = stats[f"sd_{c}"].to_numpy()
    # the standard errors of the means from the known distributions, not from the draws: exact for S,
    # from 20,000 multinomial draws of numpy's own for H
    out["se_S"] = sim.sd_surprisal(pg, K, ALPHA)[design.valid] / math.sqrt(BIAS_COPIES)
    ref = sim.sd_plugin_entropy(design.p[design.valid], K, np.random.default_rng(seed + 2))
    out["se_H"] = ref / math.sqrt(BIAS_COPIES)
    out["p_gold"] = pg[design.valid]
    out["kind"] = np.repeat(design.traj["kind"].to_numpy(), design.valid.sum(axis=1))
    return out


# --------------------------------------------------------------------------------------------
# (b, c, e) Many replicates of a mixed design at the demo's K: Table 1's CI, Fig 1's gain, Fig 2's AUC
# --------------------------------------------------------------------------------------------

REPLICATES, QUESTIONS, PER_QUESTION = 100, 30, 4  # a replicate: one model x dataset of 30 questions, N = 4
N_BOOT = 400
EARLY = 0.25  # the early relative position of Fig 2's AUC
GRID = np.round(np.linspace(0.0, 1.0, DEMO["analysis"]["grid_points"]), 10)


@cache
def main_study(seed: int = SEED, K: int = K_DEMO) -> dict:
    """REPLICATES independent model x dataset tables of the mixed design (40 % aligned, 30 %
    confidently wrong, 30 % uninformative), K draws per checkpoint."""
    design = sim.simulate(np.random.default_rng(seed), n_questions=REPLICATES * QUESTIONS, per_question=PER_QUESTION)
    ent = pipeline(design, K, seed + 1, per_dataset=QUESTIONS)
    traj = alignment_rows(design, ent)
    table1 = table1_alignment(traj.lazy(), n_boot=N_BOOT, ci=CI, seed=seed).sort("dataset")
    return {"design": design, "ent": ent, "traj": traj, "table1": table1}


def early_aucs(study: dict, seed: int) -> dict:
    """Fig 2's AUC of -H_k at relative position EARLY: per replicate from the pipeline (with its CI),
    the population truth from the true H (every replicate pooled) and the estimator's own
    population value (the estimated H, pooled: what the CI's centre converges to)."""
    design, ent = study["design"], study["ent"]
    rows = [
        early_auc(part.lazy(), h="H", at=EARLY, n_boot=N_BOOT, ci=CI, seed=seed)
        for _, part in ent.sort("dataset").group_by("dataset", maintain_order=True)
    ]
    h, _ = sim.true_series(design)
    correct = design.traj["correct"].to_numpy()
    truth = sim.auc(-sim.interpolate(design, h, np.array([EARLY]))[:, 0], correct)
    est = interpolate_to_grid(ent.lazy().with_columns(score=-pl.col("H")), "score", np.array([EARLY])).collect()
    est = est.join(design.traj.select("question_id", "trajectory", "correct"), on=["question_id", "trajectory"])
    return {"per_replicate": pl.DataFrame(rows), "truth": truth, "estimand": sim.auc(est["score"], est["correct"])}


def gain_curves(study: dict) -> dict:
    """The surprisal-based normalised gain of the aligned trajectories on GRID: estimated
    (``normalised_gain``, the non-excluded trajectories, interpolated as Fig 1 does) and true, per
    trajectory (rows in the design's order), with the replicate of each."""
    design, ent = study["design"], study["ent"]
    g = normalised_gain(ent.lazy(), h="H", gain="surprisal").collect()
    excluded = g.group_by(TRAJ).agg(pl.col("excluded").first())
    g = interpolate_to_grid(g.filter(~pl.col("excluded")).lazy(), "G_hat", GRID).collect()
    wide = g.pivot(on="rel_pos", index=TRAJ, values="G_hat")
    points = sorted((c for c in wide.columns if c not in TRAJ), key=float)
    order = design.traj.select("question_id", "trajectory", "kind")
    wide = order.join(excluded.join(wide, on=TRAJ, how="left"), on=["question_id", "trajectory"], how="left")
    aligned = (wide["kind"] == "aligned").to_numpy()
    est = wide.select(points).to_numpy().astype(float)
    truth = sim.interpolate(design, sim.true_gain(design), GRID)
    return {
        "est": est[aligned],
        "truth": truth[aligned],
        "excluded": wide["excluded"].to_numpy()[aligned],
        "replicate": wide["dataset"].cast(pl.Int64).to_numpy()[aligned],
    }


# --------------------------------------------------------------------------------------------
# (c) Confidently wrong traces; (d) uninformative traces
# --------------------------------------------------------------------------------------------


@cache
def wrong_study(K: int, seed: int = SEED, n_questions: int = 300) -> pl.DataFrame:
    """Confidently wrong trajectories only (4 per question): their trajectory_alignment rows."""
    design = sim.simulate(np.random.default_rng(seed), n_questions=n_questions, per_question=4, mix=(0, 1, 0))
    return alignment_rows(design, pipeline(design, K, seed + 1))


def old_smoothing_rho(ent: pl.DataFrame, K: int, *, before_answer: bool = True) -> np.ndarray:
    """rho (before the answer, or over every checkpoint) with the old support-size smoothing
    p~(a*) = (c + alpha) / (K + alpha |supp ∪ {a*}|), from the pipeline's own columns (m, the
    distinct answers drawn)."""
    ent = (ent.filter(pl.col("before_answer")) if before_answer else ent).sort(TRAJ + ["k"])
    unseen = (pl.col("c_gold") == 0).cast(pl.Int64)
    s_old = -((pl.col("c_gold") + ALPHA) / (K + ALPHA * (pl.col("m") + unseen))).log()
    per = ent.group_by(TRAJ, maintain_order=True).agg(pl.corr(pl.col("H"), s_old).alias("r"))
    return per["r"].to_numpy().astype(float)


@cache
def uninformative_study(seed: int = SEED, gold_in_support: bool = True, n_questions: int = 200) -> dict:
    """Uninformative trajectories only (4 per question), K_DEMO draws: their trajectory_alignment
    rows, and per trajectory the within-checkpoint correlation of H^ and S^ at its distribution
    (numpy's own multinomial draws), which is what rho before the answer estimates when nothing moves."""
    design = sim.simulate(
        np.random.default_rng(seed),
        n_questions=n_questions,
        per_question=4,
        mix=(0, 0, 1),
        gold_in_support=gold_in_support,
    )
    ent = pipeline(design, K_DEMO, seed + 1)
    traj = alignment_rows(design, ent)  # rho_split_pre: Table 1's split-sample rho before the answer
    first = np.arange(0, design.n, 4)  # every trajectory of a question has its distribution before the answer
    rng = np.random.default_rng(seed + 2)
    coupling = sim.coupling(design.p[first, 0], design.gold[first], K_DEMO, ALPHA, rng)
    return {"traj": traj, "coupling": np.repeat(coupling, 4), "old_rho_pre": old_smoothing_rho(ent, K_DEMO)}


# --------------------------------------------------------------------------------------------
# What the tests assert on (also what the tolerances were measured on)
# --------------------------------------------------------------------------------------------


def coverage(study: dict, col: str) -> dict:
    """Table 1's mean ``col`` and its CI per replicate against (i) the estimand the CI targets, the
    population value of the mean over defined trajectories of the *estimated* rho (every replicate
    pooled), and (ii) the truth, the population mean of the true rho over the trajectories where it
    is defined (an uninformative trace has no true rho before its answer: nothing moves)."""
    traj, t1 = study["traj"], study["table1"]
    estimand, truth = defined(traj, col).mean(), defined(traj, f"true_{col}").mean()
    lo, hi = t1[f"{col}_lo"].to_numpy(), t1[f"{col}_hi"].to_numpy()
    return {
        "estimand": estimand,
        "truth": truth,
        "covers_estimand": np.mean((lo <= estimand) & (estimand <= hi)),
        "covers_truth": np.mean((lo <= truth) & (truth <= hi)),
    }


def wrong_traces(traj: pl.DataFrame) -> dict:
    """The confidently wrong trajectories' rho: how many come out aligned (>= THRESHOLD) and how
    often their gold was drawn, the share aligned before the answer, the means."""
    w = traj.filter(pl.col("kind") == "wrong")
    rho, pre = w["rho"].to_numpy().astype(float), w["rho_pre"].to_numpy().astype(float)
    aligned = rho >= THRESHOLD
    return {
        "n": w.height,
        "undefined_reasons": set(w.filter(pl.col("rho").is_nan())["rho_reason"]),
        "n_aligned": int(aligned.sum()),
        "gold_draws_of_aligned": w["gold_draws"].to_numpy()[aligned],
        "share_aligned_pre": float((pre >= THRESHOLD).sum() / w.height),
        "mean_rho": np.nanmean(rho),
        "mean_rho_pre": np.nanmean(pre),
    }


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------

# (a) measured: over 30 seeds x K in {16, 64} x 33 checkpoints x (H, S) the largest |pipeline mean -
# exact expectation| was 3.56 standard errors (median of the per-run maxima 2.3); bound 5
Z_TOL = 5.0
# measured: the exact plug-in bias at the spread k = 0 distribution (11 answers) over -(m - 1)/(2K),
# over 30 designs: 1.004-1.156 at K = 16, 1.026-1.085 at K = 64; bound [0.95, 1.25]
MM_RATIO = (0.95, 1.25)
# measured: at a wrong trace's settled checkpoint (all 11 answers possible, 10 of them with mass
# 1e-3 p_0) the same ratio is 0.016-0.019 at K = 16, 0.05-0.06 at K = 64; bound 0.1
MM_RATIO_SETTLED = 0.1


def _point_mass(b: dict) -> np.ndarray:
    return b["true_H"] <= 1e-12


@pytest.mark.parametrize("K", KS)
def test_pipeline_means_equal_the_exact_expectations_of_the_estimators(K):
    """The entropy table's H_k and S_k, averaged over 400 independent draws of each checkpoint,
    equal E[H^] and E[S^] computed exactly from the known distribution (binomial counts per answer):
    the pipeline computes the plug-in and the smoothed estimator, nothing else."""
    b = bias_study(K)
    for c in ("H", "S"):
        diff, se = b[f"mean_{c}"] - b[f"exact_{c}"], b[f"se_{c}"]
        assert np.all(np.abs(diff[se == 0]) < 1e-12), c  # a point mass: every draw gives the expectation
        assert np.all(np.abs(diff[se > 0]) <= Z_TOL * se[se > 0]), (c, np.max(np.abs(diff[se > 0] / se[se > 0])))


def test_plugin_entropy_bias_is_negative_about_minus_m_minus_1_over_2K_and_shrinks_with_K():
    """E[H^] - H, exact: negative wherever p is not a point mass; about -(m - 1)/(2K) for a spread
    distribution but far smaller where most answers carry little mass; smaller at every checkpoint
    with more draws. Miller-Madow (H_mm) leaves a negative bias, smaller than the plug-in's."""
    bias = {}
    for K in KS:
        b = bias_study(K)
        bias[K] = b["exact_H"] - b["true_H"]
        spread = ~_point_mass(b)
        assert np.all(bias[K][~spread] == 0) and np.all(bias[K][spread] < 0)
        mm = -(b["m"] - 1) / (2 * K)  # m: the answers with non-zero probability
        assert MM_RATIO[0] <= bias[K][0] / mm[0] <= MM_RATIO[1]  # k = 0: p_0, every answer likely
        settled = np.flatnonzero((b["kind"] == "wrong") & spread)[-1]  # the wrong trace's k = T
        assert b["m"][settled] == sim.N_ANSWERS and bias[K][settled] / mm[settled] < MM_RATIO_SETTLED
        mm_bias = b["exact_H"] + (b["exact_m"] - 1) / (2 * K) - b["true_H"]  # E[H_mm] - H
        assert np.all(mm_bias <= 1e-12) and np.all(np.abs(mm_bias) <= np.abs(bias[K]) + 1e-12)
    small, large = min(KS), max(KS)
    spread = ~_point_mass(bias_study(small))
    assert np.all(np.abs(bias[large][spread]) < np.abs(bias[small][spread]))


def test_surprisal_bias_its_floor_and_its_ceiling():
    """E[S^] - S, exact. S^ lies between log((K + 2a)/(K + a)) (every draw gold; 0.030 at K = 16
    where the truth is 0) and log((K + 2a)/a) (no draw gold; 3.53 at K = 16): a trace whose p(gold)
    falls below about a/K keeps S^ at the ceiling whatever the truth (8.57 at the wrong trace's
    last checkpoint). The bias shrinks with K on average and at its worst, not at every checkpoint."""
    mean_abs, worst = {}, {}
    for K in KS:
        b = bias_study(K)
        floor, ceiling = math.log((K + 2 * ALPHA) / (K + ALPHA)), math.log((K + 2 * ALPHA) / ALPHA)
        bias = b["exact_S"] - b["true_S"]
        gold_sure = b["p_gold"] == 1.0
        assert np.allclose(bias[gold_sure], floor) and np.allclose(b["mean_S"][gold_sure], floor)
        assert np.all(b["exact_S"] <= ceiling + 1e-12) and np.all(b["exact_S"] >= floor - 1e-12)
        settled = np.flatnonzero(b["kind"] == "wrong")[-1]
        # S^ < ceiling needs a gold draw, P <= K p(gold): E[S^] >= (1 - K p(gold)) ceiling
        assert b["true_S"][settled] > ceiling and b["exact_S"][settled] >= (1 - K * b["p_gold"][settled]) * ceiling
        mean_abs[K], worst[K] = np.abs(bias).mean(), np.abs(bias).max()
    small, large = min(KS), max(KS)
    assert mean_abs[large] < mean_abs[small] and worst[large] < worst[small]


# (b) measured over 31 seeds (100 replicates each, 30 questions x N = 4, K = 16, 400 resamples):
# the share of 95 % CIs holding the estimand 0.90-0.97 for rho (mean 0.929) and 0.87-0.97 for
# rho_pre (0.936): bound 0.83. Holding the truth: 0.48-0.60 and 0.32-0.55: bound 0.7. The estimand
# (rho 0.013 on average, rho_pre 0.229) minus the truth (-0.117, 0.096): +0.124 to +0.134 for rho
# and +0.120 to +0.147 for rho_pre: band [0.09, 0.18]
COVERS_ESTIMAND = 0.83
COVERS_TRUTH_BELOW = 0.7
GAP = (0.09, 0.18)


@pytest.mark.parametrize("col", ["rho", "rho_pre"])
def test_table1_ci_covers_the_estimators_expectation_not_the_true_rho(col):
    """Table 1's bootstrap CI over questions covers what the estimator converges to (the population
    mean of the estimated rho over defined trajectories), close to its nominal 95 %. That is not
    the mean true rho: the wrong and the uninformative traces' rho come out nearer 0 than the truth
    (S^ capped at log((K + 2 alpha)/alpha) flattens a wrong trace's rising S), the wrong traces
    whose gold is never drawn leave the mean, and before the answer the uninformative traces, which
    have no true rho, add the shared-draw coupling (test_uninformative_traces_rho_pre_...). The CI
    misses the true population mean in about half the replicates."""
    c = coverage(main_study(), col)
    assert c["covers_estimand"] >= COVERS_ESTIMAND
    assert GAP[0] <= c["estimand"] - c["truth"] <= GAP[1]
    assert c["covers_truth"] <= COVERS_TRUTH_BELOW
    # the design does what it says: the aligned traces' true rho is clearly positive, the wrong ones' negative
    traj = main_study()["traj"]
    assert defined(traj.filter(pl.col("kind") == "aligned"), f"true_{col}").min() > 0.4  # measured >= 0.538
    assert defined(traj.filter(pl.col("kind") == "wrong"), f"true_{col}").max() < -0.7  # measured <= -0.824


# (c) measured over 31 seeds. Main design, K = 16 (3,447-3,705 wrong traces a seed): rho >= 0.3 in
# 0-5 traces a seed (29 of 111,215 in all, the largest 0.547): bound 10; wrong-only design at K = 16
# (1,200 traces a seed): 0-2 (11 of 37,200, the largest 0.473). Each of those 40 had the gold drawn
# 1-6 times in all, of its 100-250 draws: bound 8. rho_pre >= 0.3 in 0.58-1.28 % of the traces a
# seed (the largest 1.000): bound 2 %. Mean rho -0.730 to -0.715, mean rho_pre -0.605 to -0.590:
# bounds -0.6 and -0.45. Wrong-only design at K = 64: rho never >= 0.3 (the largest 0.166 over
# 37,200 traces); rho_pre >= 0.3 in 0-0.42 % a seed (the largest 0.960): bound 1 %
N_ALIGNED_K16, GOLD_DRAWS_OF_ALIGNED = 10, 8
SHARE_ALIGNED_PRE = {16: 0.02, 64: 0.01}
MEAN_WRONG = {"mean_rho": -0.6, "mean_rho_pre": -0.45}


def test_confidently_wrong_traces_do_not_come_out_aligned():
    """A trace whose mass moves onto a wrong answer has a true rho near -1 (below -0.8 here). Its
    estimated rho (every checkpoint, the paper's) is undefined only because the gold was never
    drawn (gold_unseen), is -0.72 on average at K = 16 and never reaches the aligned threshold at
    K = 64. At K = 16 it does, rarely (about 1 trace in 4,000): a trace whose gold was drawn a few
    times in all, at late checkpoints where H^ is already low. Before the answer (rho_pre: no
    settled k = T point to anchor it) short traces do so about 1 time in 100 at K = 16."""
    traj = main_study()["traj"]
    assert defined(traj.filter(pl.col("kind") == "wrong"), "true_rho").max() < -0.5
    w = wrong_traces(traj)
    assert w["n"] > 3000 and w["undefined_reasons"] <= {"gold_unseen"}
    assert w["n_aligned"] <= N_ALIGNED_K16 and np.all(w["gold_draws_of_aligned"] <= GOLD_DRAWS_OF_ALIGNED)
    assert w["share_aligned_pre"] <= SHARE_ALIGNED_PRE[K_DEMO]
    for key, bound in MEAN_WRONG.items():
        assert w[key] <= bound
    w64 = wrong_traces(wrong_study(max(KS)))
    assert w64["n_aligned"] == 0 and w64["undefined_reasons"] <= {"gold_unseen"}
    assert w64["share_aligned_pre"] <= SHARE_ALIGNED_PRE[max(KS)]


def test_the_issues_wrong_committing_trace_gets_gold_unseen():
    """Issue 29's trace: K = 16, H_k 2.22 -> 2.01 -> 1.33 -> 0.46 -> 0 as the draws converge on one
    wrong answer, the gold never drawn. The support-size smoothing gave rho = +0.995; the pipeline
    now gives no rho, with its own reason, for every variant of rho."""
    gold, others = "7", [a for a in sim.ANSWERS if a != "7"]  # the 9 other digits and NULL
    spreads = [[3, 2, 2, 2, 2, 1, 1, 1, 1, 1], [3, 3, 2, 2, 2, 2, 1, 1], [9, 3, 1, 1, 1, 1], [14, 1, 1], [16]]
    ks = [0, 32, 64, 96, 128]
    rows = []
    for k, spread in zip(ks, spreads):
        draws = [a for a, c in zip(others, spread) for _ in range(c)]  # others[0] is the one converged on
        rows += [("issue", -1 if k == 0 else 0, k, i, a) for i, a in enumerate(draws)]
    samples = pl.DataFrame(rows, schema=["question_id", "trajectory", "k", "sample", "answer"], orient="row")
    trajs = pl.DataFrame(
        {"question_id": ["issue"], "trajectory": [0], "T": [128], "correct": [False], "gold": [gold]}
        | {"answer_start": [120]}
    )
    ent = entropy_table(samples.lazy(), trajs.lazy(), alpha=ALPHA).collect()
    assert ent["H"].to_list() == pytest.approx([2.22, 2.01, 1.33, 0.46, 0.0], abs=0.005)
    assert ent["c_gold"].sum() == 0
    ent = ent.with_columns(model=pl.lit("sim"), dataset=pl.lit("issue"))
    row = trajectory_alignment(ent.lazy()).collect().row(0, named=True)
    for col in ("rho", "rho_pre", "rho_split"):
        assert math.isnan(row[col]) and row[f"{col}_reason"] == "gold_unseen"
    # what the support-size smoothing made of the same draws, computed here
    assert old_smoothing_rho(ent, 16, before_answer=False)[0] > 0.99


# (d) measured over 31 seeds (200 questions x 4 uninformative traces, K = 16): mean rho_pre 0.163 to
# 0.258; the mean coupling predicted 0.150 to 0.226; their difference +0.001 to +0.051: band
# [-0.03, 0.09]. The split-sample rho before the answer: -0.021 to +0.023: band 0.05. Traces whose
# gold is a leading answer (coupling >= 0.3): mean rho_pre 0.50-0.59, 76-85 % of them >= 0.3.
# The gold never drawn: old smoothing mean rho_pre 0.890-0.907: bound 0.8
COUPLING_GAP = (-0.03, 0.09)
SPLIT_BAND = 0.05
OLD_SMOOTHING_BELOW = 0.8


def test_uninformative_traces_rho_pre_is_the_shared_draw_coupling_and_split_sample_is_zero():
    """Nothing moves before the answer: the true H_k and S_k are constant and have no correlation.
    The split-sample rho (H^ from one half of the draws, S^ from the other) has expectation exactly
    0 there (the halves are independent and the checkpoints exchangeable) and comes out near 0.
    rho_pre (H^ and S^ from the same draws) comes out as the correlation of H^ and S^ *within one
    checkpoint*, computed here from numpy's own multinomial draws: positive when the gold is a
    leading answer (more gold draws -> lower H^ and lower S^), negative when it is a minor one. So
    an uninformative trace whose gold is the model's favourite answer comes out 'aligned'."""
    u = uninformative_study()
    traj, coupling = u["traj"], u["coupling"]
    pre = traj["rho_pre"].to_numpy().astype(float)
    ok = ~np.isnan(pre)
    assert ok.mean() > 0.95 and np.isnan(traj["true_rho_pre"].to_numpy()).all()
    assert COUPLING_GAP[0] <= pre[ok].mean() - coupling[ok].mean() <= COUPLING_GAP[1]
    assert abs(defined(traj, "rho_split_pre").mean()) <= SPLIT_BAND
    lead = ok & (coupling >= THRESHOLD)
    assert lead.sum() > 100 and pre[lead].mean() >= THRESHOLD
    minor = ok & (coupling <= -0.1)
    assert minor.sum() > 100 and pre[minor].mean() < 0


def test_uninformative_traces_whose_gold_is_never_drawn_get_no_rho():
    """The issue's 0.94: traces with no trend and the gold never drawn. Every one is gold_unseen
    now; the support-size smoothing, computed here from the same entropy table, gives them a mean
    rho_pre near +0.9."""
    u = uninformative_study(gold_in_support=False)
    for col in ("rho", "rho_pre", "rho_split", "rho_split_pre"):
        assert (u["traj"][f"{col}_reason"] == "gold_unseen").all()
    assert np.nanmean(u["old_rho_pre"]) >= OLD_SMOOTHING_BELOW


# (e) measured over 31 seeds. Normalised gain of the aligned traces (about 4,800 a seed, none
# excluded): the pooled mean curve lies below the true one by at most 0.056-0.078 (never above):
# bound 0.11; one replicate's mean curve (about 48 traces) is within 0.18-0.36 of the truth at every
# grid point: bound 0.45; per trace and grid point the mean |error| is 0.107-0.114: bound 0.14.
# Early AUC (rel_pos 0.25): the CI holds the estimator's population AUC in 0.88-0.97 of replicates
# (bound 0.83) and the true AUC in 0.36-0.56 (bound 0.7); the estimator's AUC is 0.085-0.100 below
# the truth (band [0.06, 0.13])
GAIN_POOLED, GAIN_REPLICATE, GAIN_TRACE = 0.11, 0.45, 0.14
AUC_COVERS_ESTIMAND, AUC_COVERS_TRUTH_BELOW, AUC_GAP = 0.83, 0.7, (0.06, 0.13)


def test_normalised_surprisal_gain_of_aligned_traces_tracks_the_truth():
    """G^_k = (S^_0 - S^_k) / (S^_0 - S^_T) per trace against the true (S_0 - S_k) / (S_0 - S_T),
    both interpolated on Fig 1's grid: equal at 0 and 1 by construction, and in between the mean
    estimated curve runs a little below the true one, never above (a mean of ratios of noisy,
    smoothed and capped S^ differences)."""
    g = gain_curves(main_study())
    assert not g["excluded"].any() and not np.isnan(g["est"]).any()
    assert np.allclose(g["est"][:, [0, -1]], [0.0, 1.0]) and np.allclose(g["truth"][:, [0, -1]], [0.0, 1.0])
    pooled = g["est"].mean(axis=0) - g["truth"].mean(axis=0)
    assert np.all(pooled <= 1e-12) and np.abs(pooled).max() <= GAIN_POOLED
    for rep in np.unique(g["replicate"]):
        one = g["replicate"] == rep
        assert np.abs(g["est"][one].mean(axis=0) - g["truth"][one].mean(axis=0)).max() <= GAIN_REPLICATE
    assert np.abs(g["est"] - g["truth"]).mean() <= GAIN_TRACE


def test_early_auc_ci_covers_the_estimators_auc_not_the_true_one():
    """Fig 2's AUC of -H^_k at an early relative position: noise in H^ pulls it towards 0.5, so its
    CI over questions covers the estimator's own population AUC at about the nominal rate and the
    true AUC (from the true H_k) in about half the replicates."""
    a = early_aucs(main_study(), SEED)
    per = a["per_replicate"]
    lo, hi = per["lo"].to_numpy(), per["hi"].to_numpy()
    assert np.mean((lo <= a["estimand"]) & (a["estimand"] <= hi)) >= AUC_COVERS_ESTIMAND
    assert np.mean((lo <= a["truth"]) & (a["truth"] <= hi)) <= AUC_COVERS_TRUTH_BELOW
    assert AUC_GAP[0] <= a["truth"] - a["estimand"] <= AUC_GAP[1]


def test_the_last_checkpoint_pulls_rho_towards_correctness_and_rho_pre_does_not():
    """The issue's second effect: H_k and S_k independent noise at every checkpoint before the
    answer, then k = T, where the prefix holds the answer (H_T = 0; S_T = 0 if correct, the ceiling
    log((K + 2 alpha) / alpha) if not). That one point alone gives the paper's rho a mean near
    +0.6 / -0.6 at 5 checkpoints, shrinking with more; rho_pre (without it) has mean 0."""
    K, rng = K_DEMO, np.random.default_rng(SEED)
    ceiling = math.log((K + 2 * ALPHA) / ALPHA)
    means = {}
    for n_checkpoints in (5, 10, 19):
        for correct in (True, False):
            rhos, pres = [], []
            for _ in range(2000):
                h = rng.uniform(0.3, 2.0, n_checkpoints - 1)
                s = rng.uniform(0.3, 3.0, n_checkpoints - 1)
                rhos.append(alignment_coefficient([*h, 0.0], [*s, 0.0 if correct else ceiling])[0])
                pres.append(alignment_coefficient(h, s)[0])
            means[n_checkpoints, correct] = np.mean(rhos)
            assert abs(np.mean(pres)) < 0.03  # 2,000 traces: the mean's sd is about 0.01-0.013
    assert means[5, True] > 0.5 and means[5, False] < -0.5
    assert means[5, True] > means[10, True] > means[19, True] > 0.15
    assert means[5, False] < means[10, False] < means[19, False] < -0.15
