"""The evaluation bounds against log p(x) computed exactly by enumerating every latent state.

For a tiny model (N=2 variables of K=3 classes: 9 states) we know exactly
log p(x) = logsumexp_z [log p(x|z) + log p(z)] and the ELBO = E_q[log p(x|z) + log p(z) - log q(z)].
Then, in expectation, ELBO = E[L_1] <= E[L_m] <= log p(x) (Burda et al., arXiv:1509.00519).
"""

from __future__ import annotations

import math

import pytest
import torch

from gumbel_softmax.diagnostics import all_states
from gumbel_softmax.lab.evaluation import evaluate, iw_log_weights_bound
from gumbel_softmax.lab.models import DiscreteVAE

Z = 4.42  # two-sided normal quantile for a false-alarm rate of 1e-5 per comparison


@pytest.fixture
def tiny():
    torch.manual_seed(0)  # the weights only; every sample below uses its own generator
    m = DiscreteVAE(n_latent=2, n_classes=3, hidden=(6,), prior="learned", image_dim=5)
    with torch.no_grad():
        m.prior_logits.copy_(torch.tensor([[0.5, -0.2, 0.0], [1.0, 0.0, -1.0]]))
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]])
    return m, x


def exact(m: DiscreteVAE, x: torch.Tensor) -> tuple[float, float]:
    """(log p(x), ELBO) by enumeration."""
    with torch.no_grad():
        z = all_states(2, 3).unsqueeze(1)  # (9, 1, N, K)
        logits = m.encode(x)
        log_joint = -m.reconstruction_nll(z, x) + (z * m.prior_log_probs()).sum((-2, -1))
        log_q = (z * torch.log_softmax(logits, -1)).sum((-2, -1))
        log_px = torch.logsumexp(log_joint, 0)
        elbo = (log_q.exp() * (log_joint - log_q)).sum(0)
    return float(log_px), float(elbo)


def test_enumeration_is_consistent(tiny):
    m, x = tiny
    log_px, elbo = exact(m, x)
    assert elbo < log_px  # the gap is KL(q(z|x) || p(z|x)) > 0 for a random encoder


def test_iw_bound_sits_between_elbo_and_log_likelihood(tiny):
    m, x = tiny
    log_px, elbo = exact(m, x)
    g = torch.Generator().manual_seed(1)
    n = 4000  # independent replicates of each bound
    xs = x.expand(n, -1)
    means = {}
    for k in (1, 10):
        vals = iw_log_weights_bound(m, xs, m=k, chunk=4, generator=g)
        mean, se = float(vals.mean()), float(vals.std()) / math.sqrt(n)
        means[k] = mean
        # E[L_1] is the ELBO exactly; E[L_m] <= log p(x). False-alarm rate 1e-5 each.
        if k == 1:
            assert abs(mean - elbo) <= Z * se
        assert mean <= log_px + Z * se
        assert mean >= elbo - Z * se
    # The gap between L_1 and L_10 here is ~18 standard errors (measured: 0.195 vs se 0.011),
    # so this ordering is a real check, not a tie.
    assert means[10] > means[1]
    # A large m converges to log p(x) (the 9 states are covered many times over).
    big = iw_log_weights_bound(m, x.expand(50, -1), m=2000, chunk=500, generator=g)
    assert float(big.mean()) == pytest.approx(log_px, abs=0.02)


def test_evaluate_neg_elbo_is_unbiased(tiny):
    m, x = tiny
    _, elbo = exact(m, x)
    n = 4000
    xs = x.expand(n, -1).contiguous()
    b = evaluate(m, xs, m=1, batch_size=1000, generator=torch.Generator().manual_seed(2))
    # One-sample -ELBO per image; its std from a separate replicate set bounds the error.
    g = torch.Generator().manual_seed(3)
    spread = float(iw_log_weights_bound(m, xs, m=1, generator=g).std())
    assert abs(b.neg_elbo - (-elbo)) <= Z * spread / math.sqrt(n)  # false-alarm rate 1e-5
    assert b.iw_bound == pytest.approx(b.neg_elbo, abs=Z * spread * math.sqrt(2 / n))
    assert b.n_images == n and b.m == 1


def test_chunking_does_not_change_the_bound(tiny):
    m, x = tiny
    xs = x.expand(3, -1)
    # Chunks draw the same noise stream in the same order, so the result is the same.
    a = iw_log_weights_bound(m, xs, m=12, chunk=12, generator=torch.Generator().manual_seed(4))
    c = iw_log_weights_bound(m, xs, m=12, chunk=5, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, c)


def test_evaluate_validation(tiny):
    m, x = tiny
    with pytest.raises(ValueError, match="data"):
        evaluate(m, x[:0], m=3)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(m, x, m=3, batch_size=0)
    with pytest.raises(ValueError, match="m and chunk"):
        iw_log_weights_bound(m, x, m=0)
