"""KL divergences: the binary closed form against Monte Carlo, and mc_kl itself."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import kl_divergence

import gumbel_softmax.distributions as D
from gumbel_softmax.testing import assert_close_mean, z_quantile


@pytest.mark.parametrize("cls", [D.BinaryConcrete, D.LogitBinaryConcrete])
def test_binary_closed_form_matches_monte_carlo(cls, gen):
    lp = torch.tensor([0.3, 2.0, -4.0, 0.0, 1e-3], dtype=torch.float64)
    lq = torch.tensor([0.1, -1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    for tau in [0.3, 1.0, 5.0]:
        p, q = cls(tau, logits=lp), cls(tau, logits=lq)
        exact = kl_divergence(p, q)
        x = p.sample((200_000,), generator=gen)
        # Per-sample log-ratios; their mean is unbiased for the KL. Bonferroni over 5 coordinates
        # and 3 temperatures, false-alarm rate 1e-3 in all.
        assert_close_mean(p.log_prob(x) - q.log_prob(x), exact, false_alarm=1e-3 / 3)
    assert float(kl_divergence(p, p).abs().max()) == 0.0


def test_logistic_kl_is_stable_and_symmetric():
    d = torch.tensor([1e-8, 1e-4, 0.5, 0.999, 1.0, 1.001, 5.0, 50.0, 700.0], dtype=torch.float64)
    exact = d / torch.tanh(d / 2) - 2  # fine in float64 away from 0
    small = d * d / 6  # leading term of the series
    ref = torch.where(d < 1e-3, small, exact)
    torch.testing.assert_close(D.logistic_kl(d), ref, rtol=1e-7, atol=0)
    torch.testing.assert_close(D.logistic_kl(-d), D.logistic_kl(d))
    f32 = D.logistic_kl(d.float())
    assert bool(torch.isfinite(f32).all())
    torch.testing.assert_close(f32.double(), ref, rtol=1e-5, atol=0)


def test_different_temperatures_have_no_closed_form():
    p = D.BinaryConcrete(0.5, logits=torch.zeros(2))
    q = D.BinaryConcrete(1.0, logits=torch.zeros(2))
    with pytest.raises(NotImplementedError, match=r"use gumbel_softmax\.distributions\.mc_kl"):
        kl_divergence(p, q)
    with pytest.raises(NotImplementedError):
        kl_divergence(D.Concrete(0.5, logits=torch.zeros(3)), D.Concrete(0.5, logits=torch.ones(3)))


def test_mc_kl_concrete_is_invariant_under_exp(gen):
    # mc_kl works in log space; the same KL estimated on the simplex with Concrete.log_prob
    # (the Jacobian terms cancel in expectation) must agree within the sampling error.
    lp = torch.tensor([[0.5, -1.0, 0.2], [2.0, 0.0, -2.0]], dtype=torch.float64)
    lq = torch.zeros(2, 3, dtype=torch.float64)
    p, q = D.Concrete(0.6, logits=lp), D.Concrete(0.6, logits=lq)
    n = 100_000
    x = p.sample((n,), generator=gen)
    direct = p.log_prob(x) - q.log_prob(x)
    est = D.mc_kl(p, q, num_samples=n, generator=gen)
    z = z_quantile(1e-3, tests=2)  # two rows, false-alarm rate 1e-3 in all
    se = (direct.var(0) / n * 2).sqrt()  # std of the difference of two independent means
    assert bool(((direct.mean(0) - est).abs() <= z * se).all())
    assert bool((est > 0).all())
    assert float(D.mc_kl(p, p, num_samples=10, generator=gen).abs().max()) == 0.0


def test_mc_kl_is_differentiable_and_validates():
    lp = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    p, q = (
        D.Concrete(0.5, logits=lp),
        D.Concrete(0.5, logits=torch.tensor([1.0, 0.0, 0.0]).double()),
    )
    D.mc_kl(p, q, num_samples=64, generator=torch.Generator().manual_seed(0)).backward()
    assert lp.grad is not None and bool(torch.isfinite(lp.grad).all())
    for bad in [0, -3, 2.5, True]:
        with pytest.raises(ValueError, match="num_samples must be a positive int"):
            D.mc_kl(p, q, num_samples=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="same family"):
        D.mc_kl(p, D.BinaryConcrete(0.5, logits=torch.zeros(3)), num_samples=4)
    n1 = torch.distributions.Normal(0.0, 1.0)
    with pytest.raises(TypeError, match="takes no generator"):
        D.mc_kl(
            n1, torch.distributions.Normal(1.0, 1.0), num_samples=4, generator=torch.Generator()
        )
    assert float(D.mc_kl(n1, torch.distributions.Normal(0.0, 1.0), num_samples=4)) == 0.0


@pytest.mark.parametrize("cls", [D.BinaryConcrete, D.LogitBinaryConcrete])
def test_binary_closed_form_at_point_masses(cls):
    inf = torch.inf
    lp = torch.tensor([inf, -inf, inf, inf, 0.5, -inf], dtype=torch.float64, requires_grad=True)
    lq = torch.tensor([inf, -inf, -inf, 1.0, inf, 2.0], dtype=torch.float64)
    kl = kl_divergence(cls(0.5, logits=lp), cls(0.5, logits=lq))
    # The same point mass: 0; a point mass against anything else, or anything against one: +inf.
    assert kl.tolist() == [0.0, 0.0, inf, inf, inf, inf]
    (g,) = torch.autograd.grad(kl[:2].sum(), lp)  # a batch holding point masses trains
    assert bool(torch.isfinite(g).all())
