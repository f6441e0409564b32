"""Decoupled straight-through Gumbel-Softmax (issue 14): what its two temperatures do. The
registry-driven tests cover its shapes, numerics and both temperatures' extremes (the forward one
is declared in ``extra_temperatures``)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from gumbel_softmax.estimators import (
    DecoupledStraightThroughGumbelSoftmax,
    StraightThroughGumbelSoftmax,
    get,
)
from gumbel_softmax.testing import assert_categorical


def _f(z: Tensor) -> Tensor:
    w = torch.linspace(-1.0, 2.0, z.shape[-1], dtype=z.dtype)
    return ((z * w).sum(-1) ** 2).sum(-1)


def _run(est, x: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    x = x.detach().clone().requires_grad_(True)
    r = est(x, _f, generator=torch.Generator().manual_seed(seed))
    (g,) = torch.autograd.grad(r.surrogate.sum(), x)
    return r.sample, g


def _logits() -> Tensor:
    return torch.randn(64, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("tau_b", [0.1, 1.0, 3.0])
def test_forward_temperature_one_is_st_gs(tau_b: float) -> None:
    a = _run(DecoupledStraightThroughGumbelSoftmax(tau_b), _logits(), 4)
    b = _run(StraightThroughGumbelSoftmax(tau_b), _logits(), 4)
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)


@pytest.mark.parametrize(("tau_f", "tau_b"), [(0.5, 1.0), (2.0, 0.3), (4.0, 4.0)])
def test_it_is_st_gs_of_the_tempered_logits(tau_f: float, tau_b: float) -> None:
    x = _logits()
    zd, gd = _run(DecoupledStraightThroughGumbelSoftmax(tau_b, forward_temperature=tau_f), x, 6)
    zs, gs = _run(StraightThroughGumbelSoftmax(tau_b), x / tau_f, 6)
    assert torch.equal(zd, zs)
    # chain rule through x / tau_f: the gradients differ by the factor 1 / tau_f (and rounding)
    torch.testing.assert_close(gd, gs / tau_f, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("tau_f", [0.5, 1.0, 3.0])
def test_forward_samples_are_the_tempered_categorical(tau_f: float) -> None:
    logits = torch.tensor([1.0, -0.5, 0.3, 2.0], dtype=torch.float64)
    est = DecoupledStraightThroughGumbelSoftmax(0.7, forward_temperature=tau_f)
    x = logits.expand(20_000, 1, 4)
    r = est(x, lambda z: z.sum((-1, -2)), generator=torch.Generator().manual_seed(9))
    # chi-square against softmax(logits / tau_f), false alarm 1e-3
    assert_categorical(r.sample.argmax(-1), torch.softmax(logits / tau_f, -1), false_alarm=1e-3)


def test_the_forward_temperature_is_validated_settable_and_saved() -> None:
    est = get("decoupled-st-gs", temperature=0.5, forward_temperature=2.0)
    assert (est.temperature, est.forward_temperature) == (0.5, 2.0)
    for bad, error in ((0.0, ValueError), (-1.0, ValueError), (math.inf, ValueError),
                       ("1", TypeError), (True, TypeError)):  # fmt: skip
        with pytest.raises(error, match="forward_temperature"):
            est.forward_temperature = bad  # type: ignore[assignment]
        with pytest.raises(error, match="forward_temperature"):
            DecoupledStraightThroughGumbelSoftmax(forward_temperature=bad)  # type: ignore[arg-type]
    assert est.forward_temperature == 2.0
    est.forward_temperature = 0.25  # a schedule sets it like the backward one
    fresh = DecoupledStraightThroughGumbelSoftmax()
    fresh.load_state_dict(est.state_dict())
    assert (fresh.temperature, fresh.forward_temperature) == (0.5, 0.25)
    state = est.state_dict()
    state["_extra_state"] = {"temperature": 0.5, "forward_temperature": -1.0}
    with pytest.raises(ValueError, match="forward_temperature"):
        fresh.load_state_dict(state)
    assert fresh.forward_temperature == 0.25  # unchanged by the refused state
