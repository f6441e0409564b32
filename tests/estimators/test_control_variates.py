"""muprop, rebar, relax, darn: darn's bias by an exact formula, relax in training mode, variance
training, and what parameters inside f and of the estimator receive.

The unbiasedness of muprop, rebar and relax against enumeration is checked for every unbiased
estimator in ``test_unbiased.py``.
"""

from __future__ import annotations

import pytest
import torch
from _sf_bench import CATEGORICAL, draw, make, spread, train_steps

from gumbel_softmax.diagnostics import ToyProblem, exact_expectation, exact_gradient
from gumbel_softmax.estimators import DARN, REBAR
from gumbel_softmax.testing import assert_close_mean, assert_mean_differs, assert_mean_less

N_DRAWS = 20_000
IDS = [p.name for p in CATEGORICAL]


def test_relax_in_training_mode_is_unbiased_with_a_nonzero_network() -> None:
    # training mode adds the variance term to the surrogate: it must not touch the logits'
    # estimate (test_unbiased.py checks the frozen estimator)
    problem = CATEGORICAL[3]
    est = make("relax", *problem.logits.shape, hidden=8, temperature=0.8, eta=0.5)
    with torch.no_grad():  # a surrogate network far from its zero start
        for p in est.network.parameters():
            p.copy_(torch.linspace(-1.0, 1.0, p.numel(), dtype=p.dtype).reshape(p.shape))
    est.train()
    draws = draw(est, problem.logits, problem.f, N_DRAWS, seed=13)
    assert_close_mean(draws, problem.exact, false_alarm=1e-3)


def _darn_expectation(problem: ToyProblem) -> torch.Tensor:
    r"""E[DARN] = grad E f - f'(z_bar)^T grad E[z], z_bar = 1/K (the docstring's identity)."""
    k = problem.logits.shape[-1]
    z_bar = torch.full_like(problem.logits, 1.0 / k).requires_grad_(True)
    (slope,) = torch.autograd.grad(problem.f(z_bar), z_bar)
    x = problem.logits.clone().requires_grad_(True)
    (mu_b,) = torch.autograd.grad((torch.softmax(x, -1) * slope).sum(), x)
    return problem.exact - mu_b


@pytest.mark.parametrize("problem", CATEGORICAL, ids=IDS)
def test_darn_mean_is_the_gradient_minus_the_dropped_correction(problem: ToyProblem) -> None:
    draws = draw(DARN(), problem.logits, problem.f, N_DRAWS, seed=14)
    assert_close_mean(draws, _darn_expectation(problem), false_alarm=1e-3)
    # ... and therefore biased for these f: the exact gradient is rejected by the same test.
    # Its bias here is tens of standard errors, so not rejecting would be a miss, not chance
    # (passes by chance with probability <= 1e-3 if it were unbiased).
    assert_mean_differs(draws, problem.exact, level=1e-3)


def test_darn_is_unbiased_where_its_expansion_point_is_stationary() -> None:
    """f'(z_bar) = 0 makes the dropped term vanish: unbiased although f is not quadratic."""
    logits = CATEGORICAL[2].logits  # (3, 4)
    g = torch.Generator().manual_seed(5)
    a = torch.randn(12, 12, generator=g, dtype=torch.float64)

    def f(z):
        d = (z - 0.25).flatten(-2)
        return torch.exp(0.3 * (d @ a * d).sum(-1))

    draws = draw(DARN(), logits, f, N_DRAWS, seed=15)
    assert_close_mean(draws, exact_gradient(f, logits), false_alarm=1e-3)


def test_darn_returns_zero_for_linear_f() -> None:
    logits = CATEGORICAL[0].logits
    w = torch.randn(logits.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    draws = draw(DARN(), logits, lambda z: (z * w).sum((-1, -2)), 1000, seed=16)
    # Zero up to rounding: each draw is c * grad log q(z), |grad log q| <= 1, with c the float64
    # residual of f(z) - f(z_bar) - w.(z - z_bar), three terms each at most sum|w| in size,
    # so |c| <= a few units of eps * sum|w| (8 allows for the rounding inside each term).
    bound = 8 * torch.finfo(torch.float64).eps * float(w.abs().sum())
    assert float(draws.abs().max()) <= bound
    assert float(exact_gradient(lambda z: (z * w).sum((-1, -2)), logits).abs().max()) > 1e-2


def test_rebar_training_reduces_variance() -> None:
    problem = CATEGORICAL[1]  # non-linear, N=2, K=3
    est = REBAR(temperature=2.0, eta=0.0).eval()  # eta = 0 starts as plain REINFORCE
    before = draw(est, problem.logits, problem.f, N_DRAWS, seed=17)
    train_steps(est, problem, steps=40, lr=0.05)  # z about -38 at 40 steps, bound 3.1
    est.eval()
    assert float(est.eta.detach()) > 0.1  # it learned to use its control variate
    after = draw(est, problem.logits, problem.f, N_DRAWS, seed=18)
    # total variance reduced: one-sided, passes by chance with probability <= 1e-3 if not
    assert_mean_less(spread(after), spread(before), level=1e-3)


def test_relax_training_its_network_reduces_variance() -> None:
    problem = CATEGORICAL[3]  # non-linear, N=3, K=4
    est = make("relax", 3, 4, hidden=16, eta=0.0).eval()
    est.eta.requires_grad_(False)  # only the network (and the temperature) can help
    before = draw(est, problem.logits, problem.f, N_DRAWS, seed=19)
    train_steps(est, problem, steps=50, lr=0.02)  # z about -35 at 50 steps, bound 3.1
    est.eval()
    after = draw(est, problem.logits, problem.f, N_DRAWS, seed=20)
    # total variance reduced: one-sided, passes by chance with probability <= 1e-3 if not
    assert_mean_less(spread(after), spread(before), level=1e-3)


@pytest.mark.parametrize("name", ["muprop", "rebar", "relax", "darn"])
def test_parameters_inside_f_get_grad_f_at_the_discrete_sample(name: str) -> None:
    problem = CATEGORICAL[0]
    phi = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)

    def f(z):
        return problem.f(z) * phi.exp()

    x = problem.logits.expand(500, *problem.logits.shape)
    r = make(name, *problem.logits.shape)(x, f, generator=torch.Generator().manual_seed(21))
    (total,) = torch.autograd.grad(r.surrogate.sum(), phi)
    # d/dphi f(b) = f(b): exactly the sum of the values, no control-variate noise.
    assert torch.allclose(total, r.value.sum(), rtol=1e-10)
    (exact,) = torch.autograd.grad(exact_expectation(f, problem.logits), phi)
    assert_close_mean(r.value, exact, false_alarm=1e-3)


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
