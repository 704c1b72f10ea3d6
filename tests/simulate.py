"""A simulator of SIA trajectories whose answer distribution at every checkpoint is known (issue 29,
item 6), for the calibration tests (tests/test_calibration.py).

Per question: a gold answer among ten digits and an answer space of the ten digits and ``NULL``; an
empty-prefix distribution p_0 (k = 0, shared by the question's trajectories) that spreads its mass,
the gold's share drawn from ``q0``. Per trajectory, checkpoints ``checkpoint_positions(T, stride)``
and a true distribution p_k at each, of one of three kinds:

* ``aligned``: p_k = (1 - w_k) p_0 + w_k delta(gold) before the answer begins, w_k rising from 0 to
  w_max < 1; correct, and every checkpoint from the answer on is a point mass on the gold;
* ``wrong`` (confidently wrong): the same towards one wrong digit b, w_max close to 1, so p_k(gold)
  is small but non-zero early and about 0 late; incorrect, and the settled checkpoints are
  (1 - EPS) delta(b) + EPS p_0 (EPS keeps the true S_k finite);
* ``uninformative``: p_k = p_0 before the answer; its answer is drawn from p_0 (NULL possible: then
  it has no answer_start) and the settled checkpoints are settled on it as above.

A checkpoint is before the answer when k < T and k <= answer_start (``estimators.before_answer``).
From the truth this module computes H_k, S_k, rho (all checkpoints and before the answer), the
surprisal-based normalised gain and the exact expectations of the plug-in estimators; ``draw``
samples K answers per checkpoint into the tables ``entropy_table`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import binom, rankdata

from siaflow.answers import NULL
from siaflow.keys import checkpoint_positions

ANSWERS = np.array([*(str(d) for d in range(10)), NULL])
N_ANSWERS = len(ANSWERS)
KINDS = ("aligned", "wrong", "uninformative")
EPS = 1e-3


@dataclass
class Design:
    """The true distributions. ``traj``: one row per trajectory (question_id, trajectory, kind,
    gold, answer, correct, T, answer_start); the arrays are (trajectories x checkpoints), padded
    where ``valid`` is false; ``p`` adds the answer axis; ``gold`` is the gold's index."""

    traj: pl.DataFrame
    k: np.ndarray
    valid: np.ndarray
    pre: np.ndarray
    p: np.ndarray
    gold: np.ndarray

    @property
    def n(self) -> int:
        return self.traj.height

    def trajectories(self) -> pl.DataFrame:
        """The trajectories table ``entropy_table`` reads."""
        return self.traj.select("question_id", "trajectory", "T", "correct", "gold", "answer_start")


def _question(rng, q0, gold_in_support: bool):
    g = int(rng.integers(10))
    p0 = np.zeros(N_ANSWERS)
    others = [a for a in range(N_ANSWERS) if a != g]
    share = rng.uniform(*q0) if gold_in_support else 0.0
    p0[others] = (1 - share) * rng.dirichlet(np.full(len(others), 2.0))
    p0[g] = share
    return g, p0


def _settled(final: int, g: int, p0: np.ndarray) -> np.ndarray:
    point = np.eye(N_ANSWERS)[final]
    return point if final == g else (1 - EPS) * point + EPS * p0


def _trajectory(rng, kind, g, p0, ks, T):
    """(final answer, answer_start or None, pre mask, p per checkpoint) of one trajectory."""
    if kind == "aligned":
        final, target, w_max, gamma = g, g, rng.uniform(0.6, 0.95), rng.uniform(0.4, 1.2)
    elif kind == "wrong":
        final = int(rng.choice([d for d in range(10) if d != g]))
        target, w_max, gamma = final, rng.uniform(0.95, 0.999), rng.uniform(0.7, 2.0)
    else:
        final, target, w_max, gamma = int(rng.choice(N_ANSWERS, p=p0)), g, 0.0, 1.0
    start = None if ANSWERS[final] == NULL else T - int(rng.integers(3, 41))
    pre = (ks < T) & ((ks <= start) if start is not None else True)
    w = w_max * (ks / (start if start is not None else T)) ** gamma
    p = (1 - w)[:, None] * p0 + w[:, None] * np.eye(N_ANSWERS)[target]
    p[~pre] = _settled(final, g, p0)
    return final, start, pre, p


def simulate(
    rng: np.random.Generator,
    *,
    n_questions: int,
    per_question: int,
    mix=(0.4, 0.3, 0.3),
    stride: int = 32,
    T_range=(4 * 32 + 1, 14 * 32),
    q0=(0.02, 0.35),
    gold_in_support: bool = True,
    kinds: tuple[str, ...] | None = None,
    prefix: str = "q",
) -> Design:
    """``n_questions`` x ``per_question`` trajectories, kinds drawn with probabilities ``mix``
    (aligned, wrong, uninformative), or trajectory j of every question of kind ``kinds[j]``;
    question ids ``{prefix}{i:04d}``."""
    rows, ks, pres, ps, golds = [], [], [], [], []
    for qi in range(n_questions):
        g, p0 = _question(rng, q0, gold_in_support)
        for j in range(per_question):
            kind = kinds[j] if kinds else KINDS[int(rng.choice(3, p=mix))]
            T = int(rng.integers(T_range[0], T_range[1] + 1))
            k = np.array(checkpoint_positions(T, stride))
            final, start, pre, p = _trajectory(rng, kind, g, p0, k, T)
            rows.append((f"{prefix}{qi:04d}", j, kind, ANSWERS[g], ANSWERS[final], final == g, T, start))
            for store, value in ((ks, k), (pres, pre), (ps, p), (golds, g)):
                store.append(value)
    L = max(len(k) for k in ks)
    valid = np.array([np.arange(L) < len(k) for k in ks])
    k_arr, pre_arr = np.zeros((len(ks), L), dtype=np.int64), np.zeros((len(ks), L), dtype=bool)
    p_arr = np.full((len(ks), L, N_ANSWERS), 1.0 / N_ANSWERS)
    for i, (k, pre, p) in enumerate(zip(ks, pres, ps)):
        k_arr[i, : len(k)], pre_arr[i, : len(k)], p_arr[i, : len(k)] = k, pre, p
    cols = ["question_id", "trajectory", "kind", "gold", "answer", "correct", "T", "answer_start"]
    traj = pl.DataFrame(rows, schema=cols, orient="row", schema_overrides={"answer_start": pl.Int64})
    return Design(traj, k_arr, valid, pre_arr, p_arr, np.array(golds))


def replicate(design: Design, times: int) -> Design:
    """The same true distributions ``times`` over, question ``q`` of copy r renamed ``q-r``: many
    independent draws of one design."""
    n = design.n
    copy = np.repeat(np.arange(times), n)
    traj = pl.concat([design.traj] * times).with_columns(
        question_id=pl.col("question_id") + "-" + pl.Series(copy).cast(pl.String), copy=pl.Series(copy)
    )
    arrays = (design.k, design.valid, design.pre, design.p, design.gold)
    return Design(traj, *(np.concatenate([a] * times) for a in arrays))


def draw(design: Design, K: int, rng: np.random.Generator) -> pl.DataFrame:
    """K answers per checkpoint from its true distribution, in ``entropy_table``'s samples table:
    the empty prefix (k = 0) once per question, as trajectory -1, from the question's p_0."""
    first = design.traj.with_row_index("i").group_by("question_id", maintain_order=True).agg(pl.col("i").first())
    own = design.valid.copy()
    own[:, 0] = False
    ti, ci = np.nonzero(own)
    q0 = first["i"].to_numpy()
    ti = np.concatenate([q0, ti])
    ci = np.concatenate([np.zeros(len(q0), dtype=np.int64), ci])
    probs = design.p[ti, ci]
    # inverse-CDF draws for every (checkpoint, sample) at once: row r's CDF shifted by r is one sorted array
    cdf = np.cumsum(probs, axis=1)
    cdf[:, -1] = 1.0
    r = np.arange(len(ti))
    u = rng.random((len(ti), K)) + r[:, None]
    idx = np.searchsorted((cdf + r[:, None]).ravel(), u.ravel(), side="right").reshape(len(ti), K)
    idx = np.minimum(idx - (r * N_ANSWERS)[:, None], N_ANSWERS - 1)
    traj_id = design.traj["trajectory"].to_numpy()[ti]
    traj_id[: len(q0)] = -1
    return pl.DataFrame(
        {
            "question_id": np.repeat(design.traj["question_id"].to_numpy()[ti], K),
            "trajectory": np.repeat(traj_id, K),
            "k": np.repeat(design.k[ti, ci], K),
            "sample": np.tile(np.arange(K), len(ti)),
            "answer": ANSWERS[idx.ravel()],
        }
    )


# --------------------------------------------------------------------------------------------
# The truth
# --------------------------------------------------------------------------------------------


def entropy(p: np.ndarray) -> np.ndarray:
    """H = -sum p log p over the last axis (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


def true_series(design: Design) -> tuple[np.ndarray, np.ndarray]:
    """(H_k, S_k = -log p_k(gold)) per trajectory and checkpoint; NaN where not a checkpoint."""
    h = np.where(design.valid, entropy(design.p), np.nan)
    pg = np.take_along_axis(design.p, design.gold[:, None, None], axis=2)[..., 0]
    with np.errstate(divide="ignore"):
        s = np.where(design.valid, -np.log(pg), np.nan)
    return h, s


def masked_pearson(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pearson correlation per row over the entries where ``mask`` holds; NaN with fewer than 3
    or a constant series (as ``alignment_coefficient``)."""
    n = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # an infinite S (p(gold) = 0) gives NaN
        x0, y0 = np.where(mask, x, 0.0), np.where(mask, y, 0.0)
        xc = np.where(mask, x0 - (x0.sum(axis=1) / np.maximum(n, 1))[:, None], 0.0)
        yc = np.where(mask, y0 - (y0.sum(axis=1) / np.maximum(n, 1))[:, None], 0.0)
        sxx, syy = (xc * xc).sum(axis=1), (yc * yc).sum(axis=1)
        ok = (n >= 3) & (sxx > 1e-20) & (syy > 1e-20)
        return np.where(ok, (xc * yc).sum(axis=1) / np.sqrt(sxx * syy), np.nan)


def rel_pos(design: Design) -> np.ndarray:
    return np.where(design.valid, design.k / design.traj["T"].to_numpy()[:, None], np.nan)


def interpolate(design: Design, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Each trajectory's ``values`` linearly interpolated against k / T at each of ``at``."""
    x = rel_pos(design)
    return np.array([np.interp(at, x[i, design.valid[i]], values[i, design.valid[i]]) for i in range(design.n)])


def true_gain(design: Design) -> np.ndarray:
    """The surprisal-based normalised gain (S_0 - S_k) / (S_0 - S_T) per checkpoint."""
    _, s = true_series(design)
    last = design.valid.sum(axis=1) - 1
    s_T = s[np.arange(design.n), last]
    return (s[:, :1] - s) / (s[:, :1] - s_T[:, None])


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counting one half."""
    labels = np.asarray(labels, dtype=bool)
    ranks = rankdata(scores)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --------------------------------------------------------------------------------------------
# Exact expectations of the estimators at one true distribution
# --------------------------------------------------------------------------------------------


def expected_plugin_entropy(p: np.ndarray, K: int) -> np.ndarray:
    """E[H^] for K draws from p (last axis): H^ is a sum over answers of -(c/K) log(c/K), each
    answer's count c ~ Binomial(K, p_a)."""
    c = np.arange(K + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(c > 0, -(c / K) * np.log(c / K), 0.0)
    return (binom.pmf(c, K, p[..., None]) * term).sum(axis=(-1, -2))


def expected_distinct(p: np.ndarray, K: int) -> np.ndarray:
    """E[m^], the expected number of distinct answers among K draws."""
    return (1 - (1 - p) ** K).sum(axis=-1)


def expected_surprisal(p_gold: np.ndarray, K: int, alpha: float) -> np.ndarray:
    """E[S^] with S^ = -log((c + alpha) / (K + 2 alpha)), c ~ Binomial(K, p_gold)."""
    c = np.arange(K + 1)
    return (binom.pmf(c, K, np.asarray(p_gold)[..., None]) * -np.log((c + alpha) / (K + 2 * alpha))).sum(axis=-1)


def sd_surprisal(p_gold: np.ndarray, K: int, alpha: float) -> np.ndarray:
    """The exact standard deviation of S^ over K draws."""
    c = np.arange(K + 1)
    w = binom.pmf(c, K, np.asarray(p_gold)[..., None])
    s = -np.log((c + alpha) / (K + 2 * alpha))
    mean = (w * s).sum(axis=-1)
    return np.sqrt(np.maximum((w * (s - mean[..., None]) ** 2).sum(axis=-1), 0.0))


def sd_plugin_entropy(p: np.ndarray, K: int, rng: np.random.Generator, n: int = 20_000) -> np.ndarray:
    """The standard deviation of H^ over K draws, from ``n`` multinomial count vectors per
    distribution (p: (..., answers)): a reference independent of the pipeline's code."""
    flat = p.reshape(-1, p.shape[-1])
    counts = rng.multinomial(K, flat, size=(n, len(flat))) / K
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(counts > 0, counts * np.log(counts), 0.0).sum(axis=-1)
    return h.std(axis=0).reshape(p.shape[:-1])


def coupling(p: np.ndarray, gold: np.ndarray, K: int, alpha: float, rng: np.random.Generator, n: int = 4000):
    """Per distribution (rows of p, gold index per row): the correlation of the plug-in H^ and the
    smoothed S^ computed from the same K draws, from ``n`` multinomial count vectors of numpy's own."""
    counts = rng.multinomial(K, p, size=(n, len(p)))
    f = counts / K
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(counts > 0, f * np.log(f), 0.0).sum(axis=-1)
    s = -np.log((np.take_along_axis(counts, gold[None, :, None], axis=2)[..., 0] + alpha) / (K + 2 * alpha))
    hc, sc = h - h.mean(axis=0), s - s.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (hc * sc).sum(axis=0) / np.sqrt((hc * hc).sum(axis=0) * (sc * sc).sum(axis=0))


# --------------------------------------------------------------------------------------------
# Adaptive sampling (issue 32): the rows an adaptive run keeps, and a null with H and S independent
# --------------------------------------------------------------------------------------------


def adaptive_rows(samples: pl.DataFrame, golds: dict, k_max: int, settings) -> pl.DataFrame:
    """The rows of K_max draws per checkpoint (``draw``) that an adaptive run keeps: its first K
    draws, K where ``adaptive_stopping.stopping_k`` stops (the first K of an adaptive run are the
    first K of a fixed run: the same streams)."""
    from siaflow.adaptive_stopping import stopping_k

    keys = ["question_id", "trajectory", "k"]
    per = samples.group_by(keys, maintain_order=True).agg(pl.col("answer"))
    stop = [stopping_k(a, golds[q], k_max, settings) for q, a in zip(per["question_id"], per["answer"])]
    per = per.select(keys).with_columns(_K=pl.Series(stop, dtype=pl.Int64))
    return samples.join(per, on=keys, how="left").filter(pl.col("sample") < pl.col("_K")).drop("_K")


def _mix_for_entropy(pg: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The weight w on one wrong answer (the rest of the non-gold mass uniform over 9 others) that
    gives H(p) = target with p(gold) = pg, by bisection on w in [0.3, 1] (H falls as w grows)."""
    lo, hi = np.full_like(pg, 0.3), np.ones_like(pg)
    for _ in range(60):
        w = (lo + hi) / 2
        h = entropy(_null_p(pg, w))
        lo, hi = np.where(h > target, w, lo), np.where(h > target, hi, w)
    return (lo + hi) / 2


def _null_p(pg: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Gold = answer 0, the wrong answer = 1, the other 9 share the rest evenly."""
    p = np.zeros((*pg.shape, N_ANSWERS))
    p[..., 0], p[..., 1] = pg, (1 - pg) * w
    p[..., 2:] = ((1 - pg) * (1 - w) / (N_ANSWERS - 2))[..., None]
    return p


def null_design(rng, *, n: int, checkpoints: int, h_levels, pg_levels, stride: int = 8) -> Design:
    """``n`` trajectories (one per question) of ``checkpoints`` checkpoints, none of which holds
    the answer, where each checkpoint draws its true H from ``h_levels`` and its true p(gold) from
    ``pg_levels`` independently: H_k and S_k are independent by construction (true rho has mean 0)."""
    h = rng.choice(np.asarray(h_levels, dtype=float), size=(n, checkpoints))
    pg = rng.choice(np.asarray(pg_levels, dtype=float), size=(n, checkpoints))
    p = _null_p(pg, _mix_for_entropy(pg, h))
    T = stride * checkpoints
    k = np.tile(np.arange(checkpoints) * stride, (n, 1))
    rows = [(f"n{i:04d}", 0, "null", ANSWERS[0], ANSWERS[0], True, T, T) for i in range(n)]
    cols = ["question_id", "trajectory", "kind", "gold", "answer", "correct", "T", "answer_start"]
    traj = pl.DataFrame(rows, schema=cols, orient="row", schema_overrides={"answer_start": pl.Int64})
    ones = np.ones((n, checkpoints), dtype=bool)
    return Design(traj, k, ones, ones, p, np.zeros(n, dtype=np.int64))
