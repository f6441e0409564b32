"""Exact properties of the pathwise estimators, from their papers.

Statistical assertions state their false-alarm rate; bounds are z-scores from the sample size.
"""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from gumbel_softmax.diagnostics import toy_problems
from gumbel_softmax.estimators import (
    GappedStraightThrough,
    GumbelRao,
    ReinMax,
    SlopeAnnealedStraightThrough,
    StraightThrough,
    StraightThroughGumbelSoftmax,
    conditional_gumbel,
    gapped_logits,
    get,
)
from gumbel_softmax.functional import sample_categorical

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
        p = stats.kstest(perturbed[:, k].numpy(), stats.gumbel_r(loc=float(theta[k])).cdf).pvalue
        # false-alarm rate 1e-4 in all (Bonferroni over the 4 classes)
        assert p > 1e-4 / 4, f"class {k}: KS p = {p}"
    # independence of the maximum from the argmax: the max is Gumbel(logsumexp theta)
    top = perturbed.max(-1).values.numpy()
    p = stats.kstest(top, stats.gumbel_r(loc=float(torch.logsumexp(theta, 0))).cdf).pvalue
    assert p > 1e-4  # false-alarm rate 1e-4


@pytest.mark.parametrize("name", ["quadratic-small", "nonlinear-small"])
def test_gumbel_rao_mean_matches_st_gs_and_variance_is_no_larger(
    name, gradient_draws, z_two_sided, z_one_sided
) -> None:
    problem = toy_problems(names=[name])[name]
    num, tau = 20000, 0.5
    gr = gradient_draws(GumbelRao(tau, num_samples=10), problem, num, 1).reshape(num, -1)
    st = gradient_draws(StraightThroughGumbelSoftmax(tau), problem, num, 2).reshape(num, -1)
    diff = gr.mean(0) - st.mean(0)
    se = (gr.var(0) / num + st.var(0) / num).sqrt()
    # E[GR] = E[ST-GS] (GR is ST-GS's conditional expectation given D): false-alarm rate 1e-4,
    # Bonferroni over the coordinates
    z = z_two_sided(1e-4 / diff.numel())
    assert bool((diff.abs() <= z * se).all()), f"max |z| = {float((diff / se).abs().max()):.2f}"
    # Rao-Blackwell: total variance of GR <= that of ST-GS; one-sided, false-alarm rate 1e-4
    dev_gr = ((gr - gr.mean(0)) ** 2).sum(-1)
    dev_st = ((st - st.mean(0)) ** 2).sum(-1)
    se_t = (dev_gr.var() / num + dev_st.var() / num).sqrt()
    assert float(dev_gr.mean() - dev_st.mean()) <= z_one_sided(1e-4) * float(se_t)
    # and here it is strictly smaller, by more than the same bound (power of the check above)
    assert float(dev_st.mean() - dev_gr.mean()) > z_one_sided(1e-4) * float(se_t)


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
def test_reinmax_is_unbiased_for_quadratic_losses_and_st_is_not(
    name, gradient_draws, z_two_sided
) -> None:
    # Heun's rule is exact for quadratics, so E[ReinMax] (tau = 1) is the exact gradient
    problem = toy_problems(names=[name])[name]
    num = 20000
    exact = problem.exact.reshape(-1)
    z = z_two_sided(1e-4 / exact.numel())
    rm = gradient_draws(ReinMax(1.0), problem, num, 3).reshape(num, -1)
    zs = (rm.mean(0) - exact) / (rm.var(0) / num).sqrt()
    # false-alarm rate 1e-4, Bonferroni over the coordinates
    assert bool((zs.abs() <= z).all()), f"max |z| = {float(zs.abs().max()):.2f}"
    st = gradient_draws(StraightThrough(), problem, num, 4).reshape(num, -1)
    zs = (st.mean(0) - exact) / (st.var(0) / num).sqrt()
    assert bool((zs.abs() > z).any()), "straight-through showed no bias: the test has no power"


def test_straight_through_is_unbiased_for_linear_losses(z_two_sided) -> None:
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
    exact = torch.softmax(logits, -1) * (a.reshape(logits.shape) - (
        torch.softmax(logits, -1) * a.reshape(logits.shape)).sum(-1, keepdim=True))
    # the ST gradient of a linear f is J(pi) a for every draw: deterministic, equal to the exact
    torch.testing.assert_close(grad, exact.expand_as(grad))


def test_reinmax_refuses_temperatures_below_one() -> None:
    with pytest.raises(ValueError, match="temperature >= 1"):
        ReinMax(0.5)
    with pytest.raises(TypeError, match="temperature"):
        ReinMax("1")  # type: ignore[arg-type]


def test_slope_annealed_st_is_st_at_temperature_one_over_slope() -> None:
    problem = toy_problems(names=["nonlinear-small"])["nonlinear-small"]

    def grad(est) -> torch.Tensor:
        x = problem.logits.clone().requires_grad_(True)
        r = est(x, problem.f, generator=torch.Generator().manual_seed(9))
        return torch.autograd.grad(r.surrogate.sum(), x)[0]

    torch.testing.assert_close(grad(SlopeAnnealedStraightThrough(4.0)), grad(StraightThrough(0.25)))
    torch.testing.assert_close(grad(SlopeAnnealedStraightThrough(1.0)), grad(get("st")))


def test_slope_schedule_steps_and_survives_a_checkpoint() -> None:
    est = SlopeAnnealedStraightThrough(schedule=lambda e: min(5.0, 1.0 + 0.04 * e))
    assert est.slope == 1.0
    for _ in range(10):
        est.step()
    assert est.num_steps == 10 and est.slope == pytest.approx(1.4)
    restored = SlopeAnnealedStraightThrough()
    restored.load_state_dict(est.state_dict())
    assert restored.num_steps == 10 and restored.slope == pytest.approx(1.4)
    est.slope = 3.0
    assert est.temperature == pytest.approx(1.0 / 3.0)
    with pytest.raises(ValueError, match="slope"):
        est.slope = -1.0
    with pytest.raises(TypeError, match="schedule"):
        SlopeAnnealedStraightThrough(schedule=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slope"):
        SlopeAnnealedStraightThrough(schedule=lambda e: 0.0)


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
