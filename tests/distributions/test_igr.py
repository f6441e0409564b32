"""IGR (arXiv:1912.09588): the density against the change-of-variables identity with an autograd
Jacobian, the samples' Gaussian pre-image, normalisation, and the closed-form KL against Monte
Carlo. Shapes, dtypes and extreme parameters: test_generic.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from gumbel_softmax.distributions import IGR
from gumbel_softmax.testing import assert_close_mean


def _softmax_pp(z: torch.Tensor, tau: float, delta: float) -> torch.Tensor:
    """The first K - 1 coordinates of softmax++, written naively (the test's own reference)."""
    e = torch.exp(z / tau)
    return e / (e.sum(-1, keepdim=True) + delta)


def _params(k1: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(k1, generator=g, dtype=torch.float64)
    scale = 0.5 + torch.rand(k1, generator=g, dtype=torch.float64)
    return loc, scale


@pytest.mark.parametrize("k1", [1, 2, 3])
@pytest.mark.parametrize(("tau", "delta"), [(0.3, 1.0), (1.0, 0.5), (2.0, 3.0)])
def test_log_prob_is_the_change_of_variables_with_an_autograd_jacobian(k1, tau, delta, gen):
    # log p(y) = log N(z) - log |det dy_{1:K-1}/dz|, with the Jacobian computed by autograd
    # from a naive softmax++; float64, so the two agree to rounding.
    loc, scale = _params(k1)
    d = IGR(tau, loc=loc, scale=scale, delta=delta)
    for _ in range(5):
        z = loc + scale * torch.randn(k1, generator=gen, dtype=torch.float64)
        head = _softmax_pp(z, tau, delta)
        y = torch.cat([head, 1 - head.sum(-1, keepdim=True)])
        jac = torch.autograd.functional.jacobian(lambda v: _softmax_pp(v, tau, delta), z)
        expected = Normal(loc, scale).log_prob(z).sum() - torch.linalg.slogdet(jac).logabsdet
        torch.testing.assert_close(d.log_prob(y), expected, rtol=1e-10, atol=1e-10)


def test_samples_lie_on_the_simplex_and_invert_to_the_gaussian(gen):
    # The inverse z_k = tau (log y_k - log y_K + log delta) of 20,000 samples has mean mu and
    # standardised second moment 1: z-tests, false alarm 1e-3 over the 2 x 3 coordinates.
    loc, scale = _params(3)
    tau, delta = 0.4, 2.0
    d = IGR(tau, loc=loc, scale=scale, delta=delta)
    y = d.sample((20_000,), generator=gen)
    assert bool(d.support.check(y).all()) and bool((y > 0).all())
    # 4 coordinates, each the exp of a log-softmax good to a few eps: the sum is 1 to 4 * 4 eps
    assert float((y.sum(-1) - 1).abs().max()) <= 4 * 4 * torch.finfo(torch.float64).eps
    z = tau * (y[:, :-1].log() - y[:, -1:].log() + math.log(delta))
    moments = torch.cat([z, ((z - loc) / scale) ** 2], -1)
    assert_close_mean(moments, torch.cat([loc, torch.ones(3, dtype=torch.float64)]))


def test_zero_temperature_limit_is_the_vertex_of_the_largest_of_z_and_log_delta():
    # y_k is proportional to exp(z_k / tau) and y_K to delta = exp(tau log delta / tau), so at
    # any tau the largest coordinate is argmax(z, tau log delta), and for rows whose margin m
    # exceeds 40 tau the others sum to at most (K - 1) e^-40 < 1e-16: y is that vertex.
    loc, scale = _params(3)
    tau, delta = 1e-3, 2.0
    y = IGR(tau, loc=loc, scale=scale, delta=delta).sample(
        (2000,), generator=torch.Generator().manual_seed(4)
    )
    # the same draws: rsample takes loc + scale * eps with eps = randn(sample_shape + loc.shape)
    eps = torch.randn(2000, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    z = torch.cat([loc + scale * eps, torch.full((2000, 1), tau * math.log(delta))], -1)
    vertex = torch.nn.functional.one_hot(z.argmax(-1), 4).double()
    assert torch.equal(y.argmax(-1), z.argmax(-1))
    top2 = z.topk(2, -1).values
    clear = top2[:, 0] - top2[:, 1] >= 40 * tau
    assert float(clear.double().mean()) > 0.9
    assert float((y[clear] - vertex[clear]).abs().max()) <= 4 * torch.finfo(torch.float64).eps


@pytest.mark.parametrize(("tau", "delta"), [(0.2, 1.0), (1.0, 0.3)])
def test_density_integrates_to_one_for_two_classes(tau, delta):
    # K = 2: y_1 = sigmoid((z - tau log delta)/tau), so in w = logit(y_1) the integrand
    # p(y(w)) y(1-y) is a Gaussian density in z = tau (w + log delta); Gauss-Legendre over
    # mu +- 12 sigma (tails below 1e-32) with 400 nodes has converged (200 vs 400: < 1e-13).
    loc, scale = torch.tensor([0.7], dtype=torch.float64), torch.tensor([1.3], dtype=torch.float64)
    d = IGR(tau, loc=loc, scale=scale, delta=delta)
    t, w = (torch.tensor(a, dtype=torch.float64) for a in np.polynomial.legendre.leggauss(400))
    lo, hi = (float(loc) - 12 * float(scale)) / tau, (float(loc) + 12 * float(scale)) / tau
    lo, hi = lo - math.log(delta), hi - math.log(delta)
    u = lo + (hi - lo) * (t + 1) / 2
    y1 = torch.sigmoid(u)
    y = torch.stack([y1, torch.sigmoid(-u)], -1)
    integrand = (d.log_prob(y) + y.log().sum(-1)).exp()
    assert abs(float((integrand * w).sum() * (hi - lo) / 2) - 1) < 1e-10


def test_kl_is_the_gaussian_kl_and_matches_monte_carlo(gen):
    # Monte Carlo log p(y) - log q(y) over 20,000 draws of p has mean KL(p || q): z-test, false
    # alarm 1e-3 over the 2 batch coordinates.
    lp, sp = _params(3, seed=1)
    lq, sq = _params(3, seed=2)
    loc_p, scale_p = torch.stack([lp, lq]), torch.stack([sp, sq])
    loc_q, scale_q = torch.stack([lq, lp + 0.5]), torch.stack([sq, 2 * sp])
    p = IGR(0.5, loc=loc_p, scale=scale_p, delta=1.5)
    q = IGR(0.5, loc=loc_q, scale=scale_q, delta=1.5)
    kl = kl_divergence(p, q)
    torch.testing.assert_close(
        kl, kl_divergence(Normal(loc_p, scale_p), Normal(loc_q, scale_q)).sum(-1)
    )
    y = p.sample((20_000,), generator=gen)
    assert_close_mean(p.log_prob(y) - q.log_prob(y), kl, false_alarm=1e-3)
    assert kl_divergence(p, p).abs().max() == 0


def test_kl_refuses_different_bijections():
    loc, scale = _params(2)
    with pytest.raises(NotImplementedError, match="different temperature or delta"):
        kl_divergence(IGR(0.5, loc=loc, scale=scale), IGR(0.6, loc=loc, scale=scale))
    with pytest.raises(NotImplementedError, match=r"use gumbel_softmax\.distributions\.mc_kl"):
        kl_divergence(IGR(0.5, loc=loc, scale=scale), IGR(0.5, loc=loc, scale=scale, delta=2.0))


def test_gradients_flow_to_every_parameter(gen):
    loc, scale = (p.requires_grad_(True) for p in _params(3))
    tau = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    d = IGR(tau, loc=loc, scale=scale)
    y = d.rsample((16,), generator=gen)
    (y[..., 0].sum() + d.log_prob(y.detach()).sum()).backward()
    for p in (loc, scale, tau):
        assert (
            p.grad is not None
            and bool(torch.isfinite(p.grad).all())
            and bool(p.grad.abs().sum() > 0)
        )


def test_bad_input():
    loc, scale = _params(3)
    with pytest.raises(TypeError, match=r"loc must be a torch\.Tensor, got list"):
        IGR(0.5, loc=[0.0, 1.0], scale=scale)
    with pytest.raises(TypeError, match="scale must have a floating dtype"):
        IGR(0.5, loc=loc, scale=torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="loc must have at least one dimension"):
        IGR(0.5, loc=torch.tensor(0.0), scale=torch.tensor(1.0))
    with pytest.raises(TypeError, match="loc and scale must have the same dtype"):
        IGR(0.5, loc=loc, scale=scale.float())
    with pytest.raises(ValueError, match=r"same last dimension .* loc of shape \(3,\)"):
        IGR(0.5, loc=loc, scale=scale[:2])
    for bad in [0.0, -1.0, math.inf]:
        with pytest.raises(ValueError, match="temperature must be positive and finite"):
            IGR(bad, loc=loc, scale=scale)
        with pytest.raises(ValueError, match="delta must be positive and finite"):
            IGR(0.5, loc=loc, scale=scale, delta=bad)
    with pytest.raises(TypeError, match="delta must be a float, got None"):
        IGR(0.5, loc=loc, scale=scale, delta=None)
    with pytest.raises(ValueError, match="scale"):
        IGR(0.5, loc=loc, scale=-scale, validate_args=True)
    with pytest.raises(ValueError, match="loc"):
        IGR(
            0.5,
            loc=torch.full((3,), math.nan, dtype=torch.float64),
            scale=scale,
            validate_args=True,
        )
    with pytest.raises(ValueError, match="value"):
        IGR(0.5, loc=loc, scale=scale, validate_args=True).log_prob(
            torch.tensor([0.5, 0.5, 0.5, 0.5])
        )


def test_shapes_that_do_not_broadcast_are_named():
    loc, scale = torch.zeros(4, 2), torch.ones(4, 2)
    with pytest.raises(ValueError, match=r"temperature of shape \(3,\) does not broadcast .* loc"):
        IGR(torch.ones(3), loc=loc, scale=scale)
    with pytest.raises(ValueError, match=r"loc of shape \(4, 2\) and scale of shape \(3, 2\)"):
        IGR(0.5, loc=loc, scale=torch.ones(3, 2))
    with pytest.raises(TypeError, match=r"IGR\(temperature, loc=\.\.\., scale=\.\.\.\)"):
        IGR(0.5, loc, scale)
