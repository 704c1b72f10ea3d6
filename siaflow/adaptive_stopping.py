"""Adaptive Monte-Carlo sampling per checkpoint (issue 32; docs/costs.md#adaptive-sampling): when a
checkpoint has drawn enough continuations, for what SIA estimates (H_k and S_k), not for the mode.

Draws come in rounds: K_min, then doubling (or ``step`` more) up to K_max. After a round with K
draws a checkpoint stops when its **posterior predictive** says that drawing on to K_max would
move neither estimate by more than ``epsilon`` nats, with probability at least 1 - ``delta``:

* posterior Dirichlet(c_a + beta) over the answers seen, the gold (its own bucket, seen or not) and
  one bucket for every answer not seen yet (``beta`` = ``prior``, Jeffreys' 1/2);
* per posterior draw p, the K_max - K draws still to come ~ Multinomial(p) (a draw of the unseen
  bucket is a new answer each time: the largest change of H it can make);
* stop iff P(|H^_Kmax - H^_K| <= eps and |S^_Kmax - S^_K| <= eps) >= 1 - delta, by ``draws``
  posterior draws from a generator seeded by the counts (the rule is a pure function).

It is Adaptive-Consistency's Dirichlet stopping (Aggarwal et al. 2023) turned from "the majority
will not change" to "the estimates will not change". S^ is smoothed at K_max whatever K a
checkpoint stopped at (``estimators.gold_surprisal``'s ``k_ref``, as the entropy table does), so
its floor (every draw on the gold) and its ceiling (gold unseen, log((K_max + 2a)/a)) are the fixed
run's: a K that follows H cannot make S follow H through the smoothing
(docs/design.md#what-the-estimator-itself-made). **A checkpoint whose gold is unseen runs to
K_max**: there S^ is the ceiling or, after one sighting, 1.1 nats lower (K_max 16), so whether the
gold is ever seen depends on how many draws the checkpoint makes; the posterior puts P(still
unseen) near 0.7 whatever the other answers are, so at a loose delta the other answers (H) alone
would decide K, and S would follow H through the sightings a stopped checkpoint misses (replayed on
the toy demo at delta 0.3: toy-base's rho_pre -0.04 -> -0.70). The decision depends on the counts
only through (the gold's count, the sorted other counts, K), and is cached.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from siaflow.keys import smoothed_gold_probability


@dataclass(frozen=True)
class AdaptiveSettings:
    """``sampling.adaptive``: K_min, the rounds' growth (``step`` draws more per round; None:
    doubling), the tolerance ``epsilon`` (nats) and ``delta``, the posterior draws of the rule, the
    Dirichlet ``prior`` and S's smoothing ``alpha`` (``estimation.alpha``). K_max is the draw's K."""

    k_min: int = 8
    step: int | None = None
    epsilon: float = 0.25
    delta: float = 0.2
    draws: int = 400
    prior: float = 0.5
    alpha: float = 0.5

    @classmethod
    def of(cls, block: dict | None, *, k_max: int, alpha: float = 0.5) -> AdaptiveSettings | None:
        """From the config's ``sampling.adaptive`` block: None when absent or not enabled; a
        setting that makes the rule impossible stops the run, naming its key (``ConfigError``)."""
        if not block or not block.get("enabled"):
            return None
        keys = ("k_min", "step", "epsilon", "delta", "draws", "prior")
        out = cls(**{k: block[k] for k in keys if k in block}, alpha=float(alpha))
        out.check(k_max)
        return out

    def check(self, k_max: int) -> None:
        from siaflow.config import ConfigError

        key = "sampling.adaptive"
        if not 1 <= self.k_min <= k_max:
            raise ConfigError(f"{key}.k_min: {self.k_min} must be in [1, K_max = {k_max}] (the draws' K)")
        if self.step is not None and self.step < 1:
            raise ConfigError(f"{key}.step: {self.step} must be >= 1 (or null: doubling)")
        if not self.epsilon > 0:
            raise ConfigError(f"{key}.epsilon: {self.epsilon} must be > 0 nats")
        if not 0 < self.delta < 1:
            raise ConfigError(f"{key}.delta: {self.delta} must be in (0, 1)")
        if self.draws < 1 or not self.prior > 0:
            raise ConfigError(f"{key}.draws / prior: need draws >= 1 and prior > 0, got {self.draws}, {self.prior}")

    def rounds(self, k_max: int) -> list[int]:
        """K after each round: K_min, then doubled (or + step), the last one K_max."""
        out = [min(self.k_min, k_max)]
        while out[-1] < k_max:
            out.append(min(k_max, out[-1] * 2 if self.step is None else out[-1] + self.step))
        return out

    def as_dict(self) -> dict:
        return asdict(self)


def settled(answers: Sequence[str], gold: str, k_max: int, settings: AdaptiveSettings) -> bool:
    """Whether a checkpoint with these draws stops (the module's rule): always at K_max, never
    below K_min."""
    K = len(answers)
    if K >= k_max:
        return True
    if K < settings.k_min:
        return False
    if gold not in answers:  # the gold unseen: to K_max (the module's docstring)
        return False
    return posterior_settled(answers, gold, k_max, settings)


def posterior_settled(answers: Sequence[str], gold: str, k_max: int, settings: AdaptiveSettings) -> bool:
    """The posterior predictive's half of the rule: P(H^ and S^ at K_max within epsilon) >= 1 - delta."""
    c = Counter(answers)
    c_gold = c.pop(gold, 0)
    return predictive_agreement(c_gold, tuple(sorted(c.values())), k_max, settings) >= 1 - settings.delta


def stopping_k(answers: Sequence[str], gold: str, k_max: int, settings: AdaptiveSettings) -> int:
    """The K at which an adaptive run of these draws (in sample order, K_max of them) stops."""
    return next(K for K in settings.rounds(k_max) if settled(answers[:K], gold, k_max, settings))


def _plugin(counts: np.ndarray, n: int) -> np.ndarray:
    """Plug-in H of count rows summing to n (singletons outside ``counts`` add nothing to the sum)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(counts > 0, counts * np.log(np.maximum(counts, 1)), 0.0).sum(axis=-1)
    return np.log(n) - t / n


@lru_cache(maxsize=1 << 16)
def predictive_agreement(c_gold: int, others: tuple[int, ...], k_max: int, settings: AdaptiveSettings) -> float:
    """P(H^ and S^ at K_max both within epsilon of their values now), under the posterior predictive."""
    K = c_gold + sum(others)
    seed = int.from_bytes(hashlib.sha256(repr((c_gold, others, k_max, settings)).encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    counts = np.array([c_gold, *others, 0], dtype=float)  # gold, the others seen, the unseen bucket
    p = rng.dirichlet(counts + settings.prior, size=settings.draws)
    more = rng.multinomial(k_max - K, p)
    full = counts[:-1] + more[:, :-1]  # the unseen bucket's draws are singletons
    a, eps = settings.alpha, settings.epsilon
    h_now, h_full = _plugin(counts[None, :-1], K)[0], _plugin(full, k_max)
    s_now = -np.log(smoothed_gold_probability(c_gold, K, alpha=a, k_ref=k_max))  # at K_max, as the tables
    s_full = -np.log(smoothed_gold_probability(full[:, 0], k_max, alpha=a))
    ok = (np.abs(h_full - h_now) <= eps) & (np.abs(s_full - s_now) <= eps)
    return float(ok.mean())


def check_adaptive(config: dict) -> int:
    """Check ``sampling.adaptive`` against the K it caps (``sampling.n_continuations``, and the
    probes' K), naming the key at fault (``ConfigError``); return the smallest K a checkpoint can
    have (K_min when enabled, else K): the entropy resolution the rebound threshold must exceed."""
    sampling = config["sampling"]
    K, block = sampling["n_continuations"], sampling.get("adaptive") or {}
    if not block.get("enabled"):
        return K
    AdaptiveSettings.of(block, k_max=K)
    shared = [n for n, m in (config.get("models") or {}).items() if m.get("backend", "transformers") == "transformers"]
    if shared and sampling.get("share_rows", True):  # once per process (the warnings module's default)
        warnings.warn(
            f"sampling.adaptive with transformers' shared rows (models {', '.join(shared)}): the draws it saves "
            f"are those rows already share, and its rounds cost decode steps (measured 1.26x on the toy demo; "
            f"docs/costs.md#adaptive-sampling); it is for vLLM or a served model",
            UserWarning,
            stacklevel=2,
        )
    probe_k = (config.get("probe") or {}).get("n_samples") or K
    if block["k_min"] > probe_k:
        from siaflow.config import ConfigError

        raise ConfigError(
            f"sampling.adaptive.k_min: {block['k_min']} exceeds the probes' K (probe.n_samples, {probe_k})"
        )
    return min(block["k_min"], K)


def adaptive_params(config: dict) -> dict:
    """What a continuation or probe job reads of ``sampling.adaptive``: nothing when it is off (its
    params, hence Snakemake's rerun decision, are as before), else the block with S's ``alpha``."""
    block = config["sampling"].get("adaptive") or {}
    if not block.get("enabled"):
        return {}
    return {"adaptive": {**block, "alpha": config.get("estimation", {}).get("alpha", 0.5)}}
