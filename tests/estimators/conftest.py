"""Shared helpers for estimator tests: the standard toy problems and batched gradient draws.

Fixtures:
    toy_problem: each of ``quadratic-small``, ``quadratic-large``, ``nonlinear-small``,
        ``nonlinear-large`` from :func:`gumbel_softmax.diagnostics.toy_problems` (float64), with
        its exact gradient: two objectives at two sizes.
    gradient_draws: ``gradient_draws(estimator, problem, num, seed) -> (num, N, K)`` independent
        gradient estimates, drawn in one batched call.
    z_two_sided, z_one_sided: ``z(alpha)``, the normal quantile for a false-alarm rate alpha.

(Fixtures rather than importable functions: ``conftest`` is not a unique module name across
the test tree.)
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import NormalDist

import pytest
import torch
from torch import Tensor

from gumbel_softmax.diagnostics import ToyProblem, toy_problems
from gumbel_softmax.estimators import Estimator

STANDARD_PROBLEMS = ("quadratic-small", "quadratic-large", "nonlinear-small", "nonlinear-large")
_PROBLEMS = toy_problems(names=list(STANDARD_PROBLEMS))


def z_two_sided(alpha: float) -> float:
    """``z`` with ``P(|N(0,1)| > z) = alpha``."""
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


def z_one_sided(alpha: float) -> float:
    """``z`` with ``P(N(0,1) > z) = alpha``."""
    return NormalDist().inv_cdf(1.0 - alpha)


def draw_gradients(
    estimator: Estimator, problem: ToyProblem, num: int, seed: int
) -> Tensor:
    """``num`` independent estimates of the gradient at ``problem.logits``: ``(num, N, K)``.

    The logits are stacked ``num`` times along a new batch dim and differentiated in one call;
    valid for estimators whose draws are independent across the batch and that keep no state.
    """
    x = problem.logits.expand(num, *problem.logits.shape).clone().requires_grad_(True)
    result = estimator(x, problem.f, generator=torch.Generator().manual_seed(seed))
    (grad,) = torch.autograd.grad(result.surrogate.sum(), x)
    return grad.detach()


@pytest.fixture(params=STANDARD_PROBLEMS)
def toy_problem(request: pytest.FixtureRequest) -> ToyProblem:
    return _PROBLEMS[request.param]


@pytest.fixture
def gradient_draws() -> Callable[[Estimator, ToyProblem, int, int], Tensor]:
    return draw_gradients


@pytest.fixture(name="z_two_sided")
def _z_two_sided() -> Callable[[float], float]:
    return z_two_sided


@pytest.fixture(name="z_one_sided")
def _z_one_sided() -> Callable[[float], float]:
    return z_one_sided
