"""muprop, rebar, relax (unbiased), darn (biased, by an exact formula), and variance training."""

from __future__ import annotations

import pytest
import torch
from _sf_bench import (
    CATEGORICAL,
    Problem,
    assert_unbiased,
    assert_variance_reduced,
    bonferroni_bound,
    draw,
    exact_gradient,
    train_steps,
    z_scores,
)

from gumbel_softmax.diagnostics import exact_expectation
from gumbel_softmax.estimators import DARN, REBAR, RELAX, MuProp

N_DRAWS = 20_000
IDS = [p.name for p in CATEGORICAL]


@pytest.mark.parametrize("problem", CATEGORICAL, ids=IDS)
def test_muprop_unbiased(problem: Problem) -> None:
    draws = draw(MuProp(), problem.logits, problem.f, N_DRAWS, seed=11)
    assert_unbiased(draws, exact_gradient(problem.f, problem.logits))  # false alarm <= 1e-3


@pytest.mark.parametrize("problem", CATEGORICAL, ids=IDS)
def test_rebar_unbiased(problem: Problem) -> None:
    # Off the defaults: unbiasedness must hold for every eta and temperature.
    est = REBAR(temperature=0.3, eta=0.7).eval()
    draws = draw(est, problem.logits, problem.f, N_DRAWS, seed=12)
    assert_unbiased(draws, exact_gradient(problem.f, problem.logits))  # false alarm <= 1e-3


@pytest.mark.parametrize("problem", CATEGORICAL, ids=IDS)
def test_relax_unbiased_with_a_nonzero_network(problem: Problem) -> None:
    est = RELAX(in_features=problem.logits.numel(), hidden=8, temperature=0.8, eta=0.5)
    with torch.no_grad():  # a surrogate network far from its zero start
        for p in est.network.parameters():
            p.copy_(torch.linspace(-1.0, 1.0, p.numel(), dtype=p.dtype).reshape(p.shape))
    est.train()  # training mode: the variance term must not touch the logits' estimate
    draws = draw(est, problem.logits, problem.f, N_DRAWS, seed=13)
    assert_unbiased(draws, exact_gradient(problem.f, problem.logits))  # false alarm <= 1e-3


def _darn_expectation(problem: Problem) -> torch.Tensor:
    r"""E[DARN] = grad E f - f'(z_bar)^T grad E[z], z_bar = 1/K (the docstring's identity)."""
    k = problem.logits.shape[-1]
    z_bar = torch.full_like(problem.logits, 1.0 / k).requires_grad_(True)
    (slope,) = torch.autograd.grad(problem.f(z_bar), z_bar)
    x = problem.logits.clone().requires_grad_(True)
    (mu_b,) = torch.autograd.grad((torch.softmax(x, -1) * slope).sum(), x)
    return exact_gradient(problem.f, problem.logits) - mu_b


@pytest.mark.parametrize("problem", CATEGORICAL, ids=IDS)
def test_darn_mean_is_the_gradient_minus_the_dropped_correction(problem: Problem) -> None:
    draws = draw(DARN(), problem.logits, problem.f, N_DRAWS, seed=14)
    assert_unbiased(draws, _darn_expectation(problem))  # false alarm <= 1e-3
    # ... and therefore biased for these f: the exact gradient is rejected by the same test.
    # Its bias here is tens of standard errors, so not rejecting would be a miss, not chance.
    z = z_scores(draws, exact_gradient(problem.f, problem.logits))
    assert float(z.abs().max()) > bonferroni_bound(draws, 1e-3)


def test_darn_is_unbiased_where_its_expansion_point_is_stationary() -> None:
    """f'(z_bar) = 0 makes the dropped term vanish: unbiased although f is not quadratic."""
    logits = CATEGORICAL[2].logits  # (3, 4)
    g = torch.Generator().manual_seed(5)
    a = torch.randn(12, 12, generator=g, dtype=torch.float64)

    def f(z):
        d = (z - 0.25).flatten(-2)
        return torch.exp(0.3 * (d @ a * d).sum(-1))

    draws = draw(DARN(), logits, f, N_DRAWS, seed=15)
    assert_unbiased(draws, exact_gradient(f, logits))  # false alarm <= 1e-3


def test_darn_returns_zero_for_linear_f() -> None:
    logits = CATEGORICAL[0].logits
    w = torch.randn(logits.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    draws = draw(DARN(), logits, lambda z: (z * w).sum((-1, -2)), 1000, seed=16)
    assert float(draws.abs().max()) < 1e-12
    assert float(exact_gradient(lambda z: (z * w).sum((-1, -2)), logits).abs().max()) > 1e-2


def test_rebar_training_reduces_variance() -> None:
    problem = CATEGORICAL[1]  # non-linear, N=2, K=3
    est = REBAR(temperature=2.0, eta=0.0).eval()  # eta = 0 starts as plain REINFORCE
    before = draw(est, problem.logits, problem.f, N_DRAWS, seed=17)
    train_steps(est, problem, steps=100, lr=0.05)
    est.eval()
    assert float(est.eta.detach()) > 0.1  # it learned to use its control variate
    after = draw(est, problem.logits, problem.f, N_DRAWS, seed=18)
    assert_variance_reduced(before, after)  # one-sided, false alarm 1e-3


def test_relax_training_its_network_reduces_variance() -> None:
    problem = CATEGORICAL[3]  # non-linear, N=3, K=4
    est = RELAX(in_features=12, hidden=16, eta=0.0).eval()
    est.eta.requires_grad_(False)  # only the network (and the temperature) can help
    before = draw(est, problem.logits, problem.f, N_DRAWS, seed=19)
    train_steps(est, problem, steps=150, lr=0.02)
    est.eval()
    after = draw(est, problem.logits, problem.f, N_DRAWS, seed=20)
    assert_variance_reduced(before, after)  # one-sided, false alarm 1e-3


@pytest.mark.parametrize("name", ["muprop", "rebar", "relax", "darn"])
def test_parameters_inside_f_get_grad_f_at_the_discrete_sample(name: str) -> None:
    from gumbel_softmax.estimators import get

    problem = CATEGORICAL[0]
    phi = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)

    def f(z):
        return problem.f(z) * phi.exp()

    x = problem.logits.expand(500, *problem.logits.shape)
    r = get(name)(x, f, generator=torch.Generator().manual_seed(21))
    (total,) = torch.autograd.grad(r.surrogate.sum(), phi)
    # d/dphi f(b) = f(b): exactly the sum of the values, no control-variate noise.
    assert torch.allclose(total, r.value.sum(), rtol=1e-10)
    (exact,) = torch.autograd.grad(exact_expectation(f, problem.logits), phi)
    assert_unbiased(r.value.unsqueeze(-1), exact.reshape(1))  # false alarm <= 1e-3


def test_estimator_parameters_receive_only_the_variance_gradient() -> None:
    problem = CATEGORICAL[0]
    est = REBAR().train()
    x = problem.logits.expand(32, *problem.logits.shape).clone().requires_grad_(True)
    r = est(x, problem.f, generator=torch.Generator().manual_seed(22))
    grads = torch.autograd.grad(r.surrogate.sum(), [est.eta, est.log_temperature])

    # d/d eta of sum_batch ||g_hat||^2 by central differences on eta, with the same samples.
    def sq_norm(eta: float) -> float:
        e = REBAR(temperature=est.temperature, eta=eta).eval()
        xx = problem.logits.expand(32, *problem.logits.shape).clone().requires_grad_(True)
        rr = e(xx, problem.f, generator=torch.Generator().manual_seed(22))
        (g,) = torch.autograd.grad(rr.surrogate.sum(), xx)
        return float(g.pow(2).sum())

    h = 1e-5
    fd = (sq_norm(1.0 + h) - sq_norm(1.0 - h)) / (2 * h)  # d/d eta of sum_batch ||g_hat||^2
    assert float(grads[0]) == pytest.approx(fd, rel=1e-5, abs=1e-8)
    est.eval()
    r = est(x, problem.f, generator=torch.Generator().manual_seed(22))
    grads = torch.autograd.grad(r.surrogate.sum(), [est.eta], allow_unused=True)
    assert grads[0] is None or float(grads[0]) == 0.0  # eval: frozen
