"""The seed paper's trade-off: as the temperature falls, Gumbel-Softmax's bias shrinks and its
variance grows (Jang et al. 2017, arXiv:1611.01144, section 3.1), shown statistically on small
exact problems, and biased estimators report a detectable bias.

Bounds. With S draws, per-coordinate means m_i and standard errors se_i, if every
|m_i - E m_i| <= z se_i (Bonferroni over all coordinates of all temperatures), then by the
triangle inequality ||E m - g|| lies in [||m - g|| - z ||se||, ||m - g|| + z ||se||]. The total
variance is the mean of the scalars ||g_s - m||^2, so it gets a z-bound from their sample
standard deviation.
"""

from __future__ import annotations

import pytest
import torch
from _sf_bench import draw, make

from gumbel_softmax.diagnostics import gradient_stats, toy_problems
from gumbel_softmax.estimators import PathwiseEstimator, available, estimator_class, get
from gumbel_softmax.testing import z_quantile

TEMPERATURES = (2.0, 1.0, 0.5, 0.25)
ALPHA = 1e-4  # false-alarm rate of each test below


@pytest.mark.parametrize("name", ["quadratic-small", "nonlinear-small"])
def test_gumbel_softmax_bias_falls_and_variance_grows_with_temperature(name) -> None:
    problem = toy_problems(names=[name])[name]
    num = 20000
    exact = problem.exact.reshape(-1)
    # ALPHA/2 for all bias bounds together: Bonferroni over every coordinate of every temperature
    z = z_quantile(ALPHA / 2, tests=len(TEMPERATURES) * exact.numel())
    bias_lo, bias_hi, var, var_se = [], [], [], []
    for seed, tau in enumerate(TEMPERATURES):
        est = get("gs", temperature=tau)
        draws = draw(est, problem.logits, problem.f, num, seed).reshape(num, -1)
        mean = draws.mean(0)
        slack = z * float((draws.var(0) / num).sqrt().norm())
        distance = float((mean - exact).norm())
        bias_lo.append(distance - slack)
        bias_hi.append(distance + slack)
        dev = ((draws - mean) ** 2).sum(-1)
        var.append(float(dev.mean()))
        var_se.append(float(dev.std() / num**0.5))
    z_var = z_quantile(ALPHA / 2, sided="one", tests=len(TEMPERATURES) - 1)
    for i in range(len(TEMPERATURES) - 1):
        # ||bias(tau_i)|| > ||bias(tau_{i+1})||: the lower bound of the first exceeds the upper
        # bound of the second (false-alarm rate ALPHA/2 for all bias bounds together)
        assert bias_lo[i] > bias_hi[i + 1], (TEMPERATURES[i], bias_lo, bias_hi)
        # variance(tau_{i+1}) > variance(tau_i), one-sided (ALPHA/2 over all pairs)
        gap = var[i + 1] - var[i]
        assert gap > z_var * (var_se[i] ** 2 + var_se[i + 1] ** 2) ** 0.5, (TEMPERATURES[i], var)
    # the bias at the highest temperature is real, not noise
    assert bias_lo[0] > 0


BIASED_PATHWISE = [
    n
    for n in available()
    if issubclass(estimator_class(n), PathwiseEstimator) and not estimator_class(n).unbiased
]


def test_every_pathwise_estimator_is_in_the_bias_check() -> None:
    assert {"gs", "st-gs", "st", "st-annealed", "gumbel-rao", "gst", "reinmax"} <= set(
        BIASED_PATHWISE
    )


@pytest.mark.parametrize("name", [*BIASED_PATHWISE, "darn"])
def test_biased_estimators_report_a_detectable_bias(name: str) -> None:
    # on the non-linear problem every pathwise estimator (and DARN) is biased; gradient_stats
    # reports it, and the bias is larger than its noise (passes by chance <= 1e-4, Bonferroni)
    problem = toy_problems(names=["nonlinear-small"])["nonlinear-small"]
    est = make(name, *problem.logits.shape)
    assert not estimator_class(name).unbiased
    s = gradient_stats(
        est,
        problem.f,
        problem.logits,
        num_samples=20000,
        exact=problem.exact,
        generator=torch.Generator().manual_seed(0),
        vectorize=True,
    )
    torch.testing.assert_close(s.bias, s.mean - problem.exact)
    assert s.bias_norm == pytest.approx(float(s.bias.norm()))
    z = z_quantile(1e-4, tests=s.bias.numel())
    assert bool((s.bias.abs() > z * s.stderr).any()), f"{name}: bias {s.bias}, se {s.stderr}"
