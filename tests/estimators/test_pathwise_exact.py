"""Exact properties of the pathwise estimators, from their papers.

Statistical assertions state their false-alarm rate; bounds are z-scores from the sample size.
"""

from __future__ import annotations

import pytest
import torch
from _sf_bench import draw, spread

from gumbel_softmax.diagnostics import toy_problems
from gumbel_softmax.estimators import (
    GappedStraightThrough,
    GumbelRao,
    ReinMax,
    StraightThrough,
    StraightThroughGumbelSoftmax,
    conditional_gumbel,
    gapped_logits,
    get,
)
from gumbel_softmax.functional import sample_categorical
from gumbel_softmax.testing import (
    assert_close_mean,
    assert_mean_at_most,
    assert_mean_differs,
    assert_mean_less,
    assert_same_mean,
    ks_test,
)


def _gumbel_cdf(loc: float):
    return lambda x: torch.exp(-torch.exp(-(x - loc)))


# ---------------------------------------------------------------------------- Gumbel-Rao


def _logits_with_mask() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = 2.0 * torch.randn(5, 6, generator=g, dtype=torch.float64)
    x[1, 2] = -float("inf")
    x[3, 0] = 30.0
    return x


def test_conditional_gumbel_keeps_the_argmax() -> None:
    x = _logits_with_mask()
    g = torch.Generator().manual_seed(1)
    d = sample_categorical(x, one_hot=True, generator=g)
    perturbed = conditional_gumbel(x, d, 2000, generator=g)
    assert perturbed.shape == (2000, *x.shape)
    assert torch.equal(perturbed.argmax(-1), d.argmax(-1).expand(2000, -1))
    assert bool(torch.isneginf(perturbed[:, 1, 2]).all())
    finite = ~torch.isneginf(x).expand_as(perturbed)
    assert bool(torch.isfinite(perturbed[finite]).all())


def test_conditional_gumbel_marginals_are_gumbel() -> None:
    # drawing D ~ softmax(theta), then G | D, must give theta_k + G_k ~ Gumbel(theta_k) i.i.d.
    theta = torch.tensor([1.0, -0.5, 0.3, 2.0], dtype=torch.float64)
    num = 4000
    g = torch.Generator().manual_seed(2)
    x = theta.expand(num, 4)
    d = sample_categorical(x, one_hot=True, generator=g)
    perturbed = conditional_gumbel(x, d, 1, generator=g)[0]
    for k in range(4):
        p = ks_test(perturbed[:, k], _gumbel_cdf(float(theta[k]))).p_value
        # false-alarm rate 1e-4 in all (Bonferroni over the 4 classes)
        assert p > 1e-4 / 4, f"class {k}: KS p = {p}"
    # independence of the maximum from the argmax: the max is Gumbel(logsumexp theta)
    top = perturbed.max(-1).values
    p = ks_test(top, _gumbel_cdf(float(torch.logsumexp(theta, 0)))).p_value
    assert p > 1e-4  # false-alarm rate 1e-4


@pytest.mark.parametrize("name", ["quadratic-small", "nonlinear-small"])
def test_gumbel_rao_mean_matches_st_gs_and_variance_is_no_larger(name) -> None:
    problem = toy_problems(names=[name])[name]
    num, tau = 20000, 0.5
    gr = draw(GumbelRao(tau, num_samples=10), problem.logits, problem.f, num, 1)
    st = draw(StraightThroughGumbelSoftmax(tau), problem.logits, problem.f, num, 2)
    # E[GR] = E[ST-GS] (GR is ST-GS's conditional expectation given D): false-alarm rate 1e-4,
    # Bonferroni over the coordinates
    assert_same_mean(gr, st, false_alarm=1e-4)
    # Rao-Blackwell: total variance of GR <= that of ST-GS; one-sided, false-alarm rate 1e-4
    assert_mean_at_most(spread(gr), spread(st), false_alarm=1e-4)
    # and here it is strictly smaller (power of the check above; passes by chance <= 1e-4)
    assert_mean_less(spread(gr), spread(st), level=1e-4)


def test_gumbel_rao_validates_arguments() -> None:
    with pytest.raises(ValueError, match="num_samples"):
        GumbelRao(num_samples=0)
    with pytest.raises(ValueError, match="temperature"):
        GumbelRao(temperature=0.0)
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="sample must have the shape"):
        conditional_gumbel(x, torch.zeros(2, 4), 1)
    with pytest.raises(ValueError, match="num_samples"):
        conditional_gumbel(x, torch.zeros(2, 3), 0)


# ----------------------------------------------------------------- ReinMax and straight-through


@pytest.mark.parametrize("name", ["quadratic-small", "quadratic-large"])
def test_reinmax_is_unbiased_for_quadratic_losses_and_st_is_not(name) -> None:
    # Heun's rule is exact for quadratics, so E[ReinMax] (tau = 1) is the exact gradient
    problem = toy_problems(names=[name])[name]
    num = 20000
    rm = draw(ReinMax(1.0), problem.logits, problem.f, num, 3)
    # false-alarm rate 1e-4, Bonferroni over the coordinates
    assert_close_mean(rm, problem.exact, false_alarm=1e-4)
    # straight-through is biased here: the same test has power (passes by chance <= 1e-4)
    st = draw(StraightThrough(), problem.logits, problem.f, num, 4)
    assert_mean_differs(st, problem.exact, level=1e-4)


def test_straight_through_is_unbiased_for_linear_losses() -> None:
    # E[J(pi) grad f] = J(pi) a = the exact gradient when f(z) = <a, z>
    problem = toy_problems(names=["quadratic-small"])["quadratic-small"]
    a = torch.linspace(-1.0, 2.0, problem.logits.numel(), dtype=torch.float64)
    logits = problem.logits

    def f(z: torch.Tensor) -> torch.Tensor:
        return z.flatten(-2) @ a

    num = 5000
    x = logits.expand(num, *logits.shape).clone().requires_grad_(True)
    result = StraightThrough()(x, f, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad(result.surrogate.sum(), x)
    exact = torch.softmax(logits, -1) * (
        a.reshape(logits.shape)
        - (torch.softmax(logits, -1) * a.reshape(logits.shape)).sum(-1, keepdim=True)
    )
    # the ST gradient of a linear f is J(pi) a for every draw: deterministic, equal to the exact
    torch.testing.assert_close(grad, exact.expand_as(grad))


# The temperature semantics of st-annealed (temperature = 1/slope, the deprecated schedule) and
# ReinMax's minimum temperature are tested with every estimator's in test_capabilities.py.


# ---------------------------------------------------------------------------------- GST


@pytest.mark.parametrize("gap", [0.5, 1.0, 3.0])
def test_gapped_logits_are_argmax_consistent_with_a_strict_gap(gap: float) -> None:
    x = _logits_with_mask()
    g = torch.Generator().manual_seed(4)
    for _ in range(20):
        d = sample_categorical(x, one_hot=True, generator=g)
        moved = gapped_logits(x, d, gap)
        top = (moved * d).nan_to_num(0.0).sum(-1)
        others = moved.masked_fill(d.bool(), -float("inf")).max(-1).values
        assert torch.equal(moved.argmax(-1), d.argmax(-1))
        assert bool((top - others >= gap - 1e-12).all())
        # minimal move: classes already gap below the maximum are untouched
        untouched = ~d.bool() & (x <= x.max(-1, keepdim=True).values - gap)
        assert torch.equal(moved[untouched], x[untouched])


def test_gst_p_and_validation() -> None:
    problem = toy_problems(names=["nonlinear-small"])["nonlinear-small"]
    x = problem.logits.clone().requires_grad_(True)
    r = GappedStraightThrough(gap="p")(x, problem.f, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad(r.surrogate.sum(), x)
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="gap"):
        GappedStraightThrough(gap=-1.0)
    with pytest.raises(TypeError, match="gap"):
        GappedStraightThrough(gap="q")  # type: ignore[arg-type]


# ------------------------------------------------------------------- learned temperature


def test_learned_temperature_receives_a_gradient() -> None:
    problem = toy_problems(names=["quadratic-small"])["quadratic-small"]
    for name in ("gs", "st-gs"):
        est = get(name, temperature=0.5, learn_temperature=True)
        assert float(est.temperature.detach()) == pytest.approx(0.5)
        assert [n for n, _ in est.named_parameters()] == ["log_temperature"]
        r = est(problem.logits, problem.f, generator=torch.Generator().manual_seed(0))
        r.surrogate.sum().backward()
        assert est.log_temperature.grad is not None
        assert bool(torch.isfinite(est.log_temperature.grad))
    assert list(get("gs", temperature=0.5).parameters()) == []
