"""What a draw needs, gathered in named settings: ``DrawSettings`` (how to sample) here, and
``siaflow.answers.ResponseRules`` (how a response is read and where it ends). The stages, the
backends' callers and the benchmarks build them once and pass them whole; each says what resumable
parts made with it depend on (``as_identity``) and what provenance records (``as_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass

from siaflow.adaptive_stopping import AdaptiveSettings
from siaflow.generation.backends.base import Decoding


@dataclass(frozen=True)
class DrawSettings:
    """How the draws of one table are sampled: the decoding, the seed of every random stream, the
    samples per unit (N trajectories per question for rollouts; K per checkpoint prefix for
    continuations and probes), and, for draws at checkpoints, the stride and the prefix variant.
    ``adaptive``: draw in rounds and stop a checkpoint once its estimates are settled
    (``siaflow.adaptive_stopping``; n_samples is then K_max); None: K draws everywhere."""

    decoding: Decoding
    seed: int
    n_samples: int
    stride: int | None = None
    variant: str = "original"
    adaptive: AdaptiveSettings | None = None

    @classmethod
    def of(cls, decoding: dict, sampling: dict, *, n_samples: int, **checkpoints) -> DrawSettings:
        """From the config's ``decoding`` block and ``sampling`` settings (``seed``, and for draws
        at checkpoints ``adaptive``: the params carry it only when enabled, with ``alpha``)."""
        block = sampling.get("adaptive") if checkpoints else None
        adaptive = AdaptiveSettings.of(block, k_max=int(n_samples), alpha=(block or {}).get("alpha", 0.5))
        return cls(Decoding(**decoding), int(sampling["seed"]), int(n_samples), **checkpoints, adaptive=adaptive)

    def as_identity(self) -> dict:
        """What resumable parts of draws at checkpoints depend on (the keys their parts were saved with)."""
        out = {"stride": self.stride, "K": self.n_samples, "seed": self.seed, "variant": self.variant}
        if self.adaptive is not None:  # absent when off: parts drawn before adaptive sampling resume
            out["adaptive"] = self.adaptive.as_dict()
        return out | {"decoding": self.decoding.as_dict()}

    def rollout_identity(self) -> dict:
        """What resumable parts of rollouts depend on (the keys their parts were saved with)."""
        return {"decoding": self.decoding.as_dict(), "seed": self.seed, "n_rollouts": self.n_samples}

    def as_dict(self) -> dict:
        """Every setting, for provenance."""
        out = {"decoding": self.decoding.as_dict(), "seed": self.seed, "n_samples": self.n_samples}
        if self.adaptive is not None:
            out["adaptive"] = self.adaptive.as_dict()
        return out | {"stride": self.stride, "variant": self.variant}
