"""The Concrete densities: normalisation, agreement with samples, with torch and with the closed form
of the seed, and log-convexity below tau = 1/(K-1) (issue items 4 and 5)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from gumbel_softmax.distributions import BinaryConcrete, Concrete, ExpConcrete
from gumbel_softmax.testing import chi_square_test

torch.set_printoptions(precision=10)


def seed_density(x: torch.Tensor, logits: torch.Tensor, tau: float) -> torch.Tensor:
    """log of (K-1)! tau^(K-1) prod_k alpha_k x_k^(-tau-1) / (sum_i alpha_i x_i^(-tau))^K, naively."""
    a = logits.exp()
    k = x.shape[-1]
    return (
        math.lgamma(k)
        + (k - 1) * math.log(tau)
        + (a.log() + (-tau - 1) * x.log()).sum(-1)
        - k * torch.log((a * x ** (-tau)).sum(-1))
    )


def simplex_quadrature(n: int):
    """Gauss-Legendre nodes on the 2-simplex: (x1, x2, x3) = (u, (1-u)v, (1-u)(1-v)), weight (1-u)."""
    t, w = np.polynomial.legendre.leggauss(n)
    t, w = torch.tensor((t + 1) / 2), torch.tensor(w / 2)
    u, v = torch.meshgrid(t, t, indexing="ij")
    x = torch.stack([u, (1 - u) * v, (1 - u) * (1 - v)], -1).reshape(-1, 3)
    weight = (w[:, None] * w[None, :] * (1 - u)).reshape(-1)
    return x, weight


def test_density_integrates_to_one_on_the_2_simplex_directly():
    # Where the density is smooth up to the boundary (tau = 2 > 1/(K-1)), integrate on the simplex
    # itself: 300 x 300 Gauss-Legendre nodes converge to below 1e-9 (200 vs 300 nodes: 1.5e-9).
    d = Concrete(2.0, logits=torch.tensor([0.5, -0.3, 1.2], dtype=torch.float64))
    x, weight = simplex_quadrature(300)
    assert abs(float((d.log_prob(x).exp() * weight).sum()) - 1) < 1e-8


@pytest.mark.parametrize("tau", [0.1, 0.2, 0.5, 1.0, 2.0])
def test_density_integrates_to_one_in_logit_coordinates(tau):
    # The map w -> x = softmax(w_1, w_2, 0) takes R^2 onto the open 2-simplex with Jacobian
    # determinant x_1 x_2 x_3, so int_simplex p(x) dx = int_R2 p(x(w)) x_1 x_2 x_3 dw; in these
    # coordinates the integrand is smooth at every tau (near the vertices it is singular on the
    # simplex for tau < 1/2). Gauss-Legendre on [-25/tau, 25/tau]^2 with 200 nodes per axis: the
    # neglected tails hold below e^-25 and the rule has converged (200 vs 300 nodes: < 1e-12).
    d = Concrete(tau, logits=torch.tensor([0.5, -0.3, 1.2], dtype=torch.float64))
    half = 25 / tau
    t, w = (torch.tensor(a) * half for a in np.polynomial.legendre.leggauss(200))
    a, b = torch.meshgrid(t, t, indexing="ij")
    x = torch.stack([a, b, torch.zeros_like(a)], -1).reshape(-1, 3).softmax(-1)
    weight = (w[:, None] * w[None, :]).reshape(-1)
    integrand = (d.log_prob(x) + x.log().sum(-1)).exp()
    assert abs(float((integrand * weight).sum()) - 1) < 1e-8


def _bin_masses(log_density_w, edges: torch.Tensor, cut: float) -> torch.Tensor:
    """Masses of the bins [edges[i], edges[i+1]] of (0, 1), integrated in logit coordinates
    w = logit(x), where the density ``log_density_w`` is smooth (in x it is singular at 0 and 1
    for tau < 1), with 64-point Gauss-Legendre per bin; the end bins are cut at |w| = ``cut``."""
    t, wt = (torch.tensor(a, dtype=torch.float64) for a in np.polynomial.legendre.leggauss(64))
    lw = torch.logit(edges.double()).clamp(-cut, cut)
    masses = []
    for a, b in itertools.pairwise(lw):
        w = a + (b - a) * (t + 1) / 2
        masses.append(float((log_density_w(w).exp() * wt).sum() * (b - a) / 2))
    return torch.tensor(masses, dtype=torch.float64)


def test_density_matches_sample_histogram_k2(gen):
    # Goodness of fit of 100,000 samples of X_1 in 25 equal bins against bin masses integrated
    # from the density (tau = 0.7 < 1: the density is unbounded at both ends). The point is
    # (sigmoid(w), sigmoid(-w)), exact in float64 out to |w| = 40/tau, beyond which lies < e^-40.
    logits = torch.tensor([0.4, -0.2], dtype=torch.float64)
    tau = 0.7
    d = Concrete(tau, logits=logits)
    x1 = d.sample((100_000,), generator=gen)[:, 0]
    counts = torch.histc(x1, bins=25, min=0, max=1)
    ls = torch.nn.functional.logsigmoid

    def log_density_w(w):
        return d.log_prob(torch.stack([torch.sigmoid(w), torch.sigmoid(-w)], -1)) + ls(w) + ls(-w)

    probs = _bin_masses(log_density_w, torch.linspace(0, 1, 26), 40 / tau)
    assert abs(float(probs.sum()) - 1) < 1e-9
    assert chi_square_test(counts, probs).p_value > 1e-3  # false-alarm rate 1e-3


def test_binary_density_matches_sample_histogram(gen):
    # BinaryConcrete.log_prob takes x itself, which float64 resolves near 1 only up to
    # |logit x| = 36; the mass beyond, P(|(0.8 + L)/0.5| > 36) < 2e-8, is left out of the bins.
    tau = 0.5
    d = BinaryConcrete(tau, logits=torch.tensor(0.8, dtype=torch.float64))
    x = d.sample((100_000,), generator=gen)
    counts = torch.histc(x, bins=20, min=0, max=1)
    ls = torch.nn.functional.logsigmoid
    probs = _bin_masses(
        lambda w: d.log_prob(torch.sigmoid(w)) + ls(w) + ls(-w), torch.linspace(0, 1, 21), 36.0
    )
    assert abs(float(probs.sum()) - 1) < 1e-7
    assert chi_square_test(counts, probs).p_value > 1e-3  # false-alarm rate 1e-3


@pytest.mark.parametrize("tau", [0.2, 0.7, 1.0, 3.0])
def test_density_equals_torch_and_the_seed_formula(gen, tau):
    logits = torch.randn(5, 4, dtype=torch.float64, generator=gen)
    ours = Concrete(tau, logits=logits)
    theirs = torch.distributions.RelaxedOneHotCategorical(
        torch.tensor(tau, dtype=torch.float64), logits=logits
    )
    x = ours.sample((200,), generator=gen)
    mine, ref = ours.log_prob(x), theirs.log_prob(x)
    finite = torch.isfinite(ref)
    assert bool(finite.float().mean() > 0.9)
    # Both are float64 evaluations of the same formula: agreement to rounding (1e-9 relative).
    torch.testing.assert_close(mine[finite], ref[finite], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(mine, seed_density(x, logits, tau), rtol=1e-9, atol=1e-9)
    # ExpConcrete agrees through the change of variables x = exp(y): p_X(x) = p_Y(log x) / prod x.
    via_exp = ExpConcrete(tau, logits=logits).log_prob(x.log()) - x.log().sum(-1)
    torch.testing.assert_close(via_exp, seed_density(x, logits, tau), rtol=1e-9, atol=1e-9)


def test_binary_density_equals_torch_and_the_closed_form(gen):
    logits = torch.randn(6, dtype=torch.float64, generator=gen)
    tau = 0.6
    ours = BinaryConcrete(tau, logits=logits)
    theirs = torch.distributions.RelaxedBernoulli(
        torch.tensor(tau, dtype=torch.float64), logits=logits
    )
    x = ours.sample((100,), generator=gen)
    torch.testing.assert_close(ours.log_prob(x), theirs.log_prob(x), rtol=1e-9, atol=1e-9)
    a = logits.exp()
    closed = (
        math.log(tau)
        + a.log()
        + (-tau - 1) * (x.log() + torch.log1p(-x))
        - 2 * torch.log(a * x ** (-tau) + (1 - x) ** (-tau))
    )
    torch.testing.assert_close(ours.log_prob(x), closed, rtol=1e-9, atol=1e-9)


def _second_differences(k: int, tau: float, gen: torch.Generator, n_segments: int = 2000):
    """f(a) + f(b) - 2 f((a+b)/2) for the log-density along random segments inside the simplex."""
    logits = torch.randn(k, dtype=torch.float64, generator=gen)
    d = Concrete(tau, logits=logits)
    dirichlet = torch.distributions.Dirichlet(torch.ones(k, dtype=torch.float64))
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        a, b = dirichlet.sample((n_segments,)), dirichlet.sample((n_segments,))
    ts = torch.linspace(0.05, 0.95, 10, dtype=torch.float64)
    h = 0.04
    out = []
    for t in ts:
        lo, mid, hi = (a + (t + s) * (b - a) for s in (-h, 0.0, h))
        out.append(d.log_prob(lo) + d.log_prob(hi) - 2 * d.log_prob(mid))
    return torch.stack(out)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_log_convex_below_one_over_k_minus_one(gen, k):
    for tau in [1 / (k - 1), 0.5 / (k - 1), 0.1]:
        sd = _second_differences(k, tau, gen)
        # float64 rounding of three log-densities of size < 1e3: 1e-9 is far above it.
        assert float(sd.min()) >= -1e-9, (k, tau)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_not_log_convex_above(gen, k):
    # At tau = 3/(K-1) the density has an interior mode: some segment is strictly concave.
    sd = _second_differences(k, 3.0 / (k - 1), gen)
    assert float(sd.min()) < -1e-3


def test_exp_concrete_density_is_that_of_the_bijections_coordinates():
    # biject_to(ExpConcrete.support) is w -> y = log_softmax(w, 0) with log-Jacobian 0, because
    # the ExpConcrete density is a density of w itself: it integrates to 1 over R^2 (K = 3), on
    # the grid of the logit-coordinate test above (converged to < 1e-12), and it equals the
    # Concrete density times the Jacobian x_1 x_2 x_3 of w -> x = exp(y) pointwise.
    tau, logits = 0.5, torch.tensor([0.5, -0.3, 1.2], dtype=torch.float64)
    d = ExpConcrete(tau, logits=logits)
    t = torch.distributions.biject_to(d.support)
    half = 25 / tau
    nodes, w = (torch.tensor(a) * half for a in np.polynomial.legendre.leggauss(200))
    a, b = torch.meshgrid(nodes, nodes, indexing="ij")
    coords = torch.stack([a, b], -1).reshape(-1, 2)
    y = t(coords)
    log_density = d.log_prob(y) + t.log_abs_det_jacobian(coords, y)
    weight = (w[:, None] * w[None, :]).reshape(-1)
    assert abs(float((log_density.exp() * weight).sum()) - 1) < 1e-8
    via_concrete = Concrete(tau, logits=logits).log_prob(y.exp()) + y.sum(-1)
    torch.testing.assert_close(log_density, via_concrete, rtol=1e-9, atol=1e-9)
