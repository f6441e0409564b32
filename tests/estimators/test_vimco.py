"""VIMCO (issue 14): the bound it estimates, its leave-one-out signal, and the lab's use of it.
Its unbiasedness for the gradient of the S-sample bound is checked by the registry-driven
``test_unbiased.py`` (it declares ``unbiased`` and ``multi_sample_bound``)."""

from __future__ import annotations

import math

import pytest
import torch
from _sf_bench import STANDARD, draw

from gumbel_softmax.diagnostics import exact_bound, exact_expectation, exact_gradient
from gumbel_softmax.estimators import VIMCO, get
from gumbel_softmax.lab.models import DiscreteVAE
from gumbel_softmax.testing import assert_close_mean, assert_mean_differs


def test_the_estimate_is_the_s_sample_bound_of_its_samples() -> None:
    problem = STANDARD[0]
    x = problem.logits.expand(7, *problem.logits.shape)
    r = VIMCO(num_samples=3)(x, problem.f, generator=torch.Generator().manual_seed(0))
    assert r.value.shape == (3, 7) and r.estimate is not None
    want = math.log(3) - torch.logsumexp(-r.value, 0)
    torch.testing.assert_close(r.estimate, want, rtol=1e-14, atol=0)
    torch.testing.assert_close(r.surrogate.detach(), want, rtol=1e-14, atol=0)  # score term: 0
    assert torch.equal(r.objective(), r.estimate)


def test_s_equal_one_is_refused() -> None:
    with pytest.raises(ValueError, match="num_samples must be >= 2, got 1"):
        VIMCO(num_samples=1)
    with pytest.raises(TypeError, match="num_samples must be an int"):
        get("vimco", num_samples=2.0)


def test_a_constant_f_gives_no_gradient_to_the_logits() -> None:
    # every leave-one-out signal L - L_{-j} is exactly 0 when all log-weights are equal
    x = torch.randn(5, 3, 4, dtype=torch.float64).requires_grad_(True)
    r = VIMCO()(x, lambda z: torch.full(z.shape[:-2], 2.5, dtype=z.dtype))
    (g,) = torch.autograd.grad(r.surrogate.sum(), x)
    assert float(g.abs().max()) == 0.0


def test_the_bound_is_its_target_not_the_expectation() -> None:
    # S = 2 on quadratic-small: the mean of 20 000 draws matches the bound's gradient
    # (false alarm 1e-3) and is detectably not the gradient of E f (the test that would pass by
    # chance with probability <= 1e-3 if the two were the same).
    problem = STANDARD[0]
    est = VIMCO(num_samples=2)
    draws = draw(est, problem.logits, problem.f, 20_000, seed=11)
    bound = exact_gradient(problem.f, problem.logits, bound_samples=2)
    assert_close_mean(draws, bound, false_alarm=1e-3)
    assert_mean_differs(draws, exact_gradient(problem.f, problem.logits), level=1e-3)


def test_exact_bound_with_one_sample_is_the_expectation() -> None:
    problem = STANDARD[2]
    torch.testing.assert_close(
        exact_bound(problem.f, problem.logits, 1),
        exact_expectation(problem.f, problem.logits),
        rtol=1e-12,
        atol=0,
    )
    # and more samples tighten it: E f >= bound_2 >= bound_3 (Burda et al. 2016, Theorem 1)
    b1, b2, b3 = (float(exact_bound(problem.f, problem.logits, s)) for s in (1, 2, 3))
    assert b1 >= b2 >= b3
    with pytest.raises(ValueError, match="exceeds MAX_STATES"):
        exact_bound(problem.f, torch.zeros(4, 4), 3)


def test_the_lab_gives_it_the_negative_log_weight_and_no_separate_kl() -> None:
    from gumbel_softmax.lab.experiment import vae_objective

    torch.manual_seed(0)
    model = DiscreteVAE(latent="categorical", n_latent=3, n_classes=4, hidden=[16])
    x = torch.bernoulli(torch.full((6, 784), 0.3), generator=torch.Generator().manual_seed(1))
    est = VIMCO(num_samples=3)
    loss, kl, r = vae_objective(model, est, x, generator=torch.Generator().manual_seed(2))
    logits = model.encode(x)
    neg_log_w = -model.log_joint_minus_q(r.sample, x, logits)
    torch.testing.assert_close(r.value, neg_log_w.detach(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(loss.detach(), r.surrogate.mean().detach())
    assert not kl.requires_grad  # logged, not optimised twice
    torch.testing.assert_close(kl, model.kl(logits).detach())


def test_objective_is_the_mean_value_for_estimators_without_an_estimate() -> None:
    problem = STANDARD[0]
    x = problem.logits.expand(5, *problem.logits.shape)
    r = get("rloo")(x, problem.f, generator=torch.Generator().manual_seed(0))
    assert r.estimate is None and torch.equal(r.objective(), r.value.mean(0))
