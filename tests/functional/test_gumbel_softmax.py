"""The relaxed sample: its four properties, gradients, numerics and errors (issue items 2-9)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.conftest import DTYPES, TEMPERATURES

import gumbel_softmax as gs
from gumbel_softmax.testing import assert_categorical, assert_close_mean, z_quantile

LOGITS = torch.tensor([1.5, 0.0, -0.7, 0.4, -2.0])


@pytest.mark.parametrize("temperature", [0.1, 1.0, 10.0])
def test_rounding_property(gen, temperature):
    # P(argmax_k X_k = k) = alpha_k / sum alpha, at every temperature.
    y = gs.gumbel_softmax(LOGITS.expand(100_000, 5), temperature, generator=gen)
    assert_categorical(y.argmax(-1), LOGITS.softmax(-1), false_alarm=1e-3)


def _exact_distance_k2(delta: float, tau: float) -> float:
    """E[1 - max(y)] for K = 2 by quadrature: 1 - max y = sigmoid(-|delta + L| / tau), L logistic."""
    t, w = (torch.tensor(a, dtype=torch.float64) for a in np.polynomial.legendre.leggauss(400))
    total = 0.0
    # Split at the kink -delta and cut the logistic tails at +-60 (mass beyond: e^-60).
    for a, b in [
        (-60.0, -delta - 30 * tau),
        (-delta - 30 * tau, -delta),
        (-delta, -delta + 30 * tau),
        (-delta + 30 * tau, 60.0),
    ]:
        x = a + (b - a) * (t + 1) / 2
        pdf = torch.sigmoid(x) * torch.sigmoid(-x)
        total += float((torch.sigmoid(-(x + delta).abs() / tau) * pdf * w).sum() * (b - a) / 2)
    return total


@pytest.mark.parametrize("tau", [1.0, 0.1, 0.01, 0.001])
def test_distance_to_vertex_matches_exact_k2(gen, tau):
    # K = 2: the mean distance to the nearest vertex has a one-dimensional integral, computed by
    # quadrature; the sample mean of 400,000 draws must match it (z-test, false alarm 1e-3 each).
    logits = torch.tensor([0.8, 0.0], dtype=torch.float64)
    y = gs.gumbel_softmax(logits.expand(400_000, 2), tau, generator=gen)
    d = 1 - y.max(-1).values
    exact = _exact_distance_k2(0.8, tau)
    assert_close_mean(d, exact, false_alarm=1e-3)
    if tau <= 0.001:  # and it is proportional to tau, with the constant derived below
        p = logits.softmax(-1)
        assert abs(exact / tau - float(2 * p[0] * p[1]) * math.log(2)) < 1e-2


def test_zero_temperature_limit(gen):
    # As tau -> 0 only the two largest perturbed logits matter, and 1 - max_k X_k -> sigmoid(-D/tau)
    # with D their gap. D has density sum_{k != j} p_k p_j = 1 - sum_k p_k^2 at 0+, so
    # E[1 - max_k X_k] / tau -> (1 - sum p^2) * int_0^inf sigmoid(-u) du = (1 - sum p^2) log 2:
    # the distance to the nearest vertex falls in proportion to tau. The first correction is
    # tau * (pi^2/12) / log 2 * f'(0)/f(0) relative, with f the density of D, whose log-slope is
    # at most 1 (logistic-like tails): below 0.2% at tau = 1e-3, hence the 1% allowance.
    p = LOGITS.double().softmax(-1)
    limit = float(1 - (p * p).sum()) * math.log(2)
    logits = LOGITS.double().expand(400_000, 5)
    means = {}
    for tau in [1.0, 0.1, 0.01, 0.001]:
        y = gs.gumbel_softmax(logits, tau, generator=gen)
        d = 1 - y.max(-1).values
        means[tau] = float(d.mean())
        if tau == 0.001:
            se = float(d.std()) / math.sqrt(d.numel()) / tau
            z = z_quantile(1e-3)  # two-sided, false-alarm rate 1e-3
            assert abs(means[tau] / tau - limit) <= z * se + 0.01 * limit
        # ... and the argmax keeps following the categorical distribution (false alarm 1e-3 each).
        assert_categorical(y.argmax(-1), p, false_alarm=1e-3)
    assert means[1.0] > means[0.1] > means[0.01] > means[0.001]
    assert means[0.001] < 1e-3


@pytest.mark.parametrize("hard", [False, True])
def test_gradcheck_logits_and_temperature(hard):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    noise = gs.gumbel((3, 4), dtype=torch.float64, generator=g)
    w = torch.randn(3, 4, dtype=torch.float64, generator=g)

    def f(lg, t):
        y = gs.gumbel_softmax(lg, t, noise=noise)
        return y if not hard else (y * w).sum(-1)

    if hard:
        # The hard sample's gradient is the relaxed one's, for the same noise.
        yh = gs.gumbel_softmax(logits, tau, hard=True, noise=noise)
        ys = gs.gumbel_softmax(logits, tau, noise=noise)
        gh = torch.autograd.grad((yh * w).sum(), (logits, tau))
        gsoft = torch.autograd.grad((ys * w).sum(), (logits, tau))
        assert all(torch.equal(a, b) for a, b in zip(gh, gsoft, strict=True))
        assert torch.equal(yh, torch.nn.functional.one_hot(ys.argmax(-1), 4).double())
    else:
        assert torch.autograd.gradcheck(f, (logits, tau))
        assert torch.autograd.gradgradcheck(f, (logits, tau))


def test_gradcheck_other_dim_and_scalar_temperature():
    noise = gs.gumbel((4, 3, 2), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    logits = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, t: gs.gumbel_softmax(a, t, dim=1, noise=noise), (logits, tau)
    )


def test_relaxed_bernoulli_gradcheck_and_hard():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(6, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    u = torch.rand(6, dtype=torch.float64, generator=g)
    noise = u.log() - torch.log1p(-u)
    assert torch.autograd.gradcheck(
        lambda a, t: gs.relaxed_bernoulli(a, t, noise=noise), (logits, tau)
    )
    h = gs.relaxed_bernoulli(logits, tau, hard=True, noise=noise)
    assert torch.equal(h, (logits + noise > 0).double())
    gh = torch.autograd.grad(h.sum(), (logits, tau))
    gsoft = torch.autograd.grad(gs.relaxed_bernoulli(logits, tau, noise=noise).sum(), (logits, tau))
    assert all(torch.equal(a, b) for a, b in zip(gh, gsoft, strict=True))


def test_relaxed_bernoulli_hard_is_bernoulli(gen):
    logits = torch.tensor([-1.0, 0.0, 2.0])
    h = gs.relaxed_bernoulli(logits.expand(100_000, 3), 0.5, hard=True, generator=gen)
    p = torch.sigmoid(logits)
    for j in range(3):
        counts = torch.stack([(h[:, j] == 0).sum(), (h[:, j] == 1).sum()])
        assert_categorical(
            torch.repeat_interleave(torch.arange(2), counts),
            torch.stack([1 - p[j], p[j]]),
            false_alarm=1e-3 / 3,
        )


def _extreme_logits(dtype, scale, masked):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(4, 6, generator=g) * scale
    if masked:
        x[:, 1] = -torch.inf
        x[0, 3:] = -torch.inf
    return x.to(dtype).requires_grad_(True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("scale", [1.0, 1e4])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("hard", [False, True])
def test_numerics_grid(dtype, temperature, scale, masked, hard):
    logits = _extreme_logits(dtype, scale, masked)
    tau = torch.tensor(temperature, dtype=dtype, requires_grad=True)
    w = torch.randn(4, 6, generator=torch.Generator().manual_seed(2)).to(dtype)
    y = gs.gumbel_softmax(logits, tau, hard=hard, generator=torch.Generator().manual_seed(0))
    assert y.dtype == dtype
    assert bool(torch.isfinite(y).all())
    if masked:
        assert bool((y[torch.isneginf(logits)] == 0).all())
    assert bool(((y.float().sum(-1) - 1).abs() < 1e-2).all())
    (y * w).sum().backward()
    assert bool(torch.isfinite(logits.grad).all()) and bool(torch.isfinite(tau.grad).all())
    if masked:
        assert bool((logits.grad[torch.isneginf(logits)] == 0).all())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_relaxed_bernoulli_numerics(dtype, temperature):
    logits = torch.tensor(
        [-1e4, -3.0, 0.0, 2.0, 1e4, -torch.inf, torch.inf], dtype=dtype, requires_grad=True
    )
    tau = torch.tensor(temperature, dtype=dtype, requires_grad=True)
    y = gs.relaxed_bernoulli(logits, tau, generator=torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(y).all()) and y[5] == 0 and y[6] == 1
    y.sum().backward()
    assert bool(torch.isfinite(logits.grad).all()) and bool(torch.isfinite(tau.grad).all())


def test_bad_input_errors():
    x = torch.zeros(2, 3)
    for bad in [0.0, -1.0, math.inf, math.nan]:
        with pytest.raises(ValueError, match="temperature must be positive and finite"):
            gs.gumbel_softmax(x, bad)
    with pytest.raises(ValueError, match=r"temperature must be positive and finite, got \[-1.0\]"):
        gs.gumbel_softmax(x, torch.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="temperature must be a float or a floating tensor"):
        gs.gumbel_softmax(x, torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="temperature must be a float"):
        gs.gumbel_softmax(x, True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"temperature of shape \(3,\) does not broadcast"):
        gs.gumbel_softmax(x, torch.ones(3))
    with pytest.raises(TypeError, match="logits must have a floating dtype"):
        gs.gumbel_softmax(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"logits .* contains NaN"):
        gs.gumbel_softmax(torch.tensor([0.0, torch.nan]))
    with pytest.raises(
        ValueError, match=r"noise must have the shape of logits \(2, 3\), got \(3,\)"
    ):
        gs.gumbel_softmax(x, noise=torch.zeros(3))
    with pytest.raises(TypeError, match="noise must be a floating"):
        gs.gumbel_softmax(x, noise=torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        gs.gumbel_softmax(x, dim=2)
    with pytest.raises(ValueError, match="all masked"):
        gs.gumbel_softmax(torch.full((1, 3), -torch.inf))
    with pytest.raises(ValueError, match="temperature must be positive"):
        gs.relaxed_bernoulli(x, 0.0)
    # NaN is only looked for when validating.
    y = gs.gumbel_softmax(torch.tensor([0.0, torch.nan]), validate_args=False)
    assert bool(torch.isnan(y).any())


def test_temperature_broadcasts_over_the_batch(gen):
    logits = torch.randn(3, 2, 5, dtype=torch.float64)
    noise = gs.gumbel_like(logits, generator=gen)
    tau = torch.tensor([0.5, 2.0], dtype=torch.float64)
    y = gs.gumbel_softmax(logits, tau, noise=noise)
    for j, t in enumerate(tau.tolist()):
        assert torch.allclose(y[:, j], ((logits[:, j] + noise[:, j]) / t).softmax(-1))
    # The same along dim=1: the batch is then (3, 2) and tau still indexes its last axis.
    y1 = gs.gumbel_softmax(logits.transpose(1, 2), tau, dim=1, noise=noise.transpose(1, 2))
    assert torch.allclose(y1, y.transpose(1, 2))


def test_determinism_and_global_rng():
    state = torch.get_rng_state()
    logits = torch.randn(8, 10, generator=torch.Generator().manual_seed(0))
    for fn in [
        lambda g: gs.gumbel_softmax(logits, 0.5, generator=g),
        lambda g: gs.gumbel_softmax(logits, 0.5, hard=True, generator=g),
        lambda g: gs.relaxed_bernoulli(logits, 0.5, generator=g),
        lambda g: gs.sample_categorical(logits, generator=g),
        lambda g: gs.sample_without_replacement(logits, 3, generator=g),
    ]:
        a = fn(torch.Generator().manual_seed(42))
        b = fn(torch.Generator().manual_seed(42))
        c = fn(torch.Generator().manual_seed(43))
        assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(state, torch.get_rng_state())


def test_straight_through_value_is_exact():
    soft = torch.tensor([0.1, 0.3, 0.6], requires_grad=True)
    hard = torch.tensor([0.0, 0.0, 1.0])
    out = gs.straight_through(hard, soft)
    assert torch.equal(out, hard)
    out.backward(torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(soft.grad, torch.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_downcast_saturates_finite_values_and_keeps_infinities_out_of_the_gradient(dtype):
    from gumbel_softmax._numerics import downcast

    x = torch.tensor([-torch.inf, -1e6, 0.5, 1e6, torch.inf], requires_grad=True)
    y = downcast(x, dtype)
    fin = torch.finfo(dtype)
    assert y.dtype == dtype
    assert y[[0, -1]].tolist() == [fin.min, fin.max]  # float16 also saturates -1e6 and 1e6
    assert torch.equal(y[1:-1], x[1:-1].detach().clamp(fin.min, fin.max).to(dtype))
    y.float().sum().backward()
    # straight through the clamp where x is finite; no gradient where x is already infinite
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
