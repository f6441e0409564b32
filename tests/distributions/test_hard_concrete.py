"""Hard Concrete (arXiv:1712.01312): point masses, continuous part, CDF, pathwise gradients and
the test-time gate against closed forms. Shapes, dtypes and extreme parameters: test_generic.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.conftest import DTYPES

from gumbel_softmax.distributions import HardConcrete
from gumbel_softmax.testing import assert_close_mean, ks_test

LOGITS = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0], dtype=torch.float64)
N = 20_000


def _gauss_legendre(n: int, a: float, b: float) -> tuple[torch.Tensor, torch.Tensor]:
    t, w = np.polynomial.legendre.leggauss(n)
    return (
        torch.tensor(a + (b - a) * (t + 1) / 2, dtype=torch.float64),
        torch.tensor(w * (b - a) / 2, dtype=torch.float64),
    )


@pytest.mark.parametrize("tau", [2 / 3, 0.2, 2.0])
def test_point_masses_match_their_closed_forms(tau, gen):
    # Binomial tests (normal approximation, n = 20,000) of P(z = 0) and P(z = 1) for 5 gates:
    # false alarm 1e-3 over the 10 coordinates (Bonferroni), per temperature.
    d = HardConcrete(tau, logits=LOGITS)
    z = d.sample((N,), generator=gen)
    hits = torch.cat([(z == 0), (z == 1)], -1).double()
    assert_close_mean(hits, torch.cat([d.prob_zero, d.prob_one]), false_alarm=1e-3)
    torch.testing.assert_close(d.prob_nonzero, 1 - d.prob_zero, rtol=1e-12, atol=0)


@pytest.mark.parametrize(("low", "high"), [(-0.1, 1.1), (-0.5, 1.05)])
def test_cdf_on_a_grid_matches_the_empirical_cdf(low, high, gen):
    # The fraction of samples at or below each of 11 grid points is a binomial mean with the CDF
    # as its expectation: z-test, false alarm 1e-3 over the 5 x 11 coordinates (Bonferroni).
    d = HardConcrete(2 / 3, logits=LOGITS, low=low, high=high)
    z = d.sample((N,), generator=gen)
    grid = torch.linspace(0, 0.99, 11, dtype=torch.float64)
    below = (z.unsqueeze(-1) <= grid).double()  # (N, 5, 11)
    assert_close_mean(below, d.cdf(grid.unsqueeze(-1)).T, false_alarm=1e-3)
    outside = d.cdf(torch.tensor([[-0.5], [1.0], [1.5]], dtype=torch.float64))
    assert outside.tolist() == [[0.0] * 5, [1.0] * 5, [1.0] * 5]


def test_continuous_part_passes_kolmogorov_smirnov(gen):
    # Given that it is in (0, 1), z has the CDF (F(z) - P0) / (1 - P0 - P1). One KS test per gate,
    # each at level 2e-4 (false alarm 1e-3 over the 5 gates).
    d = HardConcrete(2 / 3, logits=LOGITS)
    z = d.sample((N,), generator=gen)
    for i in range(len(LOGITS)):
        inner = z[:, i][(z[:, i] > 0) & (z[:, i] < 1)]
        p0, p1 = float(d.prob_zero[i]), float(d.prob_one[i])

        def cdf(x, i=i, p0=p0, p1=p1):
            return (d.cdf(x.unsqueeze(-1))[..., i] - p0) / (1 - p0 - p1)

        assert ks_test(inner, cdf).p_value > 2e-4


@pytest.mark.parametrize("tau", [0.1, 2 / 3, 3.0])
def test_density_and_masses_add_up_to_one_and_to_the_cdf(tau):
    # On (0, 1) the density is analytic (s stays in [-l/(r-l), (1-l)/(r-l)], inside (0, 1)):
    # 200-point Gauss-Legendre integrates it to rounding (100 vs 200 points agree to 1e-13).
    d = HardConcrete(tau, logits=LOGITS)
    x, w = _gauss_legendre(200, 0.0, 1.0)
    inner = (d.log_prob(x.unsqueeze(-1)).exp() * w.unsqueeze(-1)).sum(0)
    torch.testing.assert_close(d.prob_zero + inner + d.prob_one, torch.ones(5).double())
    # and the CDF is the mass at 0 plus the integral of the density from 0 to z
    for top in (0.3, 0.8):
        x, w = _gauss_legendre(200, 0.0, top)
        part = (d.log_prob(x.unsqueeze(-1)).exp() * w.unsqueeze(-1)).sum(0)
        torch.testing.assert_close(d.cdf(torch.tensor(top).double()), d.prob_zero + part)


def _mean_by_quadrature(logit: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """E[Z] = P(Z = 1) + int_0^1 z p(z) dz, differentiable in the parameters."""
    d = HardConcrete(tau, logits=logit)
    x, w = _gauss_legendre(200, 0.0, 1.0)
    return d.prob_one + (x * d.log_prob(x).exp() * w).sum()


@pytest.mark.parametrize(("a", "tau"), [(0.5, 2 / 3), (-1.0, 0.3), (2.0, 1.5)])
def test_pathwise_gradient_is_unbiased_for_the_mean(a, tau, gen):
    # dz/d(log alpha) and dz/d(tau) per sample (one gate per sample) average to the derivative of
    # E[Z] by quadrature: z-test, false alarm 1e-3 over the 2 coordinates.
    logits = torch.full((N,), a, dtype=torch.float64, requires_grad=True)
    taus = torch.full((N,), tau, dtype=torch.float64, requires_grad=True)
    HardConcrete(taus, logits=logits).rsample(generator=gen).sum().backward()
    la = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    lt = torch.tensor(tau, dtype=torch.float64, requires_grad=True)
    exact = torch.stack(torch.autograd.grad(_mean_by_quadrature(la, lt), (la, lt)))
    assert_close_mean(torch.stack([logits.grad, taus.grad], -1), exact, false_alarm=1e-3)


def test_deterministic_gate():
    low, high = -0.1, 1.1
    c0, c1 = math.log(-low / high), math.log((1 - low) / (high - 1))
    logits = torch.tensor([0.0, 1.0, c0 - 1e-9, c1 + 1e-9, -50.0, 50.0], dtype=torch.float64)
    gate = HardConcrete(2 / 3, logits=logits).deterministic_gate
    expected = [0.5, 1.2 / (1 + math.exp(-1.0)) - 0.1, 0.0, 1.0, 0.0, 1.0]
    torch.testing.assert_close(gate, torch.tensor(expected, dtype=torch.float64))
    assert gate[2] == 0 and gate[3] == 1 and gate[4] == 0 and gate[5] == 1  # exactly


@pytest.mark.parametrize("dtype", DTYPES)
def test_infinite_logits_give_certain_gates(dtype, gen):
    logits = torch.tensor([-torch.inf, torch.inf], dtype=dtype, requires_grad=True)
    d = HardConcrete(0.5, logits=logits)
    z = d.rsample((8,), generator=gen)
    assert bool((z[:, 0] == 0).all()) and bool((z[:, 1] == 1).all())
    assert d.prob_zero.tolist() == [1.0, 0.0] and d.prob_one.tolist() == [0.0, 1.0]
    assert d.log_prob(z).tolist() == [[0.0, 0.0]] * 8
    # no density inside (0, 1): -inf, saturated at finfo.min in 16-bit dtypes
    lowest = -torch.inf if dtype in (torch.float32, torch.float64) else torch.finfo(dtype).min
    assert d.log_prob(torch.full((2,), 0.5, dtype=dtype)).tolist() == [lowest] * 2
    (z.sum() + d.prob_nonzero.sum()).backward()
    assert bool(torch.isfinite(logits.grad).all())


def test_temperature_limits_of_the_masses():
    # tau -> 0: a Bernoulli(sigmoid(log alpha)) gate. The sigmoid is 1/4-Lipschitz, so the masses
    # differ from sigmoid(-+a) by at most tau * max(|c0|, c1) / 4. tau -> inf: s -> 1/2, so
    # z -> l + (r - l)/2 = 0.5 and both masses vanish (here below e^-2000, i.e. exactly 0).
    a = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    c = max(abs(math.log(0.1 / 1.1)), math.log(1.1 / 0.1))
    small = HardConcrete(1e-3, logits=a)
    torch.testing.assert_close(small.prob_one, torch.sigmoid(a), rtol=0, atol=1e-3 * c / 4)
    torch.testing.assert_close(small.prob_zero, torch.sigmoid(-a), rtol=0, atol=1e-3 * c / 4)
    large = HardConcrete(1e3, logits=a)
    assert large.prob_zero.tolist() == [0.0] * 3 and large.prob_one.tolist() == [0.0] * 3


def test_expand_keeps_the_stretch(gen):
    d = HardConcrete(0.5, logits=LOGITS, low=-0.3, high=1.2)
    e = d.expand((3, 5))
    assert (e.low, e.high) == (-0.3, 1.2) and e.batch_shape == (3, 5)
    torch.testing.assert_close(e.prob_zero, d.prob_zero.expand(3, 5))


def test_bad_input():
    logits = torch.zeros(3)
    for kw, match in [
        ({"low": 0.0}, r"low must be < 0 .*got low=0.0"),
        ({"high": 1.0}, r"high must be > 1 .*got high=1.0"),
        ({"low": -math.inf}, "low must be finite"),
        ({"high": math.nan}, "high must be finite"),
    ]:
        with pytest.raises(ValueError, match=match):
            HardConcrete(0.5, logits=logits, **kw)
    with pytest.raises(TypeError, match="low must be a float, got '0'"):
        HardConcrete(0.5, logits=logits, low="0")
    with pytest.raises(TypeError, match="high must be a float, got True"):
        HardConcrete(0.5, logits=logits, high=True)
    d = HardConcrete(0.5, logits=logits, validate_args=True)
    with pytest.raises(ValueError, match="value"):
        d.log_prob(torch.tensor([0.5, 1.5, 0.0]))
