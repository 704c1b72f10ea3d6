import math

import pytest
import torch

from siaflow.generation.sampling import (
    sample_tokens,
    self_certainty,
    stream_key,
    token_confidence,
    token_entropy,
    uniforms,
)


def test_stream_key_is_stable_and_distinct():
    assert stream_key(0, "rollout", "q1", 3) == stream_key(0, "rollout", "q1", 3)
    assert stream_key(0, "rollout", "q1", 3) != stream_key(0, "rollout", "q1", 4)
    assert 0 <= stream_key("x") < 2**62


def test_uniforms_are_pure_and_uniform():
    keys = torch.tensor([stream_key(i) for i in range(20000)])
    u = uniforms(keys, 5)
    assert torch.equal(u, uniforms(keys, 5))
    assert not torch.equal(u, uniforms(keys, 6))
    assert (u > 0).all() and (u < 1).all()
    # mean and variance of U(0,1) are 1/2 and 1/12; with 20000 draws the standard errors are ~0.002
    assert abs(u.mean().item() - 0.5) < 0.01
    assert abs(u.var().item() - 1 / 12) < 0.005
    # a row's number does not depend on its neighbours
    assert uniforms(keys[7:8], 5).item() == u[7].item()


def test_sample_tokens_inverse_cdf_and_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    lp = probs.log()
    # inverse CDF on the natural order when top_p = 1
    for u, tok in [(0.1, 0), (0.49, 0), (0.51, 1), (0.79, 1), (0.81, 2), (0.96, 3)]:
        assert sample_tokens(lp, torch.tensor([u]), 1.0).item() == tok
    # nucleus 0.75 keeps {0, 1} (the smallest set with mass >= 0.75): renormalised CDF 0.625, 1.0
    many = torch.linspace(0.001, 0.999, 999)
    got = sample_tokens(lp.expand(999, 4), many, 0.75)
    assert set(got.tolist()) == {0, 1}
    assert abs((got == 0).float().mean().item() - 0.625) < 0.01


def test_token_entropy_full_vocabulary():
    probs = torch.tensor([[0.5, 0.25, 0.25, 0.0]])
    assert token_entropy(probs.log()).item() == pytest.approx(1.5 * math.log(2), rel=1e-6)


def test_self_certainty_is_kl_from_uniform():
    probs = torch.tensor([[0.5, 0.25, 0.25, 0.0 + 1e-12], [0.25, 0.25, 0.25, 0.25]])
    sc = self_certainty(probs.log())
    kl = [sum(0.25 * math.log(0.25 / p) for p in row) for row in probs.tolist()]
    assert sc.tolist() == pytest.approx(kl, rel=1e-5)
    assert sc[1].item() == pytest.approx(0.0, abs=1e-6)  # uniform: KL = 0


def test_token_confidence_is_minus_mean_top_k_logprob():
    """DeepConf by hand: -(log .5 + log .25) / 2 with k = 2 when the drawn token is among the top
    2; the drawn token joins them when it is not (k + 1 entries, as vLLM returns them)."""
    probs = torch.tensor([[0.5, 0.25, 0.125, 0.125], [0.75, 0.125, 0.0625, 0.0625]])
    c = token_confidence(probs.log(), 2, torch.tensor([1, 0]))
    assert c.tolist() == pytest.approx([-(math.log(0.5) + math.log(0.25)) / 2, -(math.log(0.75) + math.log(0.125)) / 2])
    out = token_confidence(probs.log(), 2, torch.tensor([3, 3]))
    assert out[1].item() == pytest.approx(-(math.log(0.75) + math.log(0.125) + math.log(0.0625)) / 3)
    # a drawn token from a shared model row: rows[i] names it
    shared = token_confidence(probs.log(), 2, torch.tensor([0, 3, 2]), rows=torch.tensor([1, 1, 0]))
    assert shared.tolist() == pytest.approx([c[1].item(), out[1].item(), -sum(map(math.log, (0.5, 0.25, 0.125))) / 3])
