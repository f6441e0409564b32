"""arm, disarm: unbiasedness for log-odds, the two forms agree, shapes, and DisARM <= ARM.

Their unbiasedness for K = 2 logits against enumeration is checked for every unbiased estimator
in ``test_unbiased.py``.
"""

from __future__ import annotations

import pytest
import torch
from _sf_bench import BINARY, draw, make, spread

from gumbel_softmax.diagnostics import ToyProblem, exact_gradient
from gumbel_softmax.estimators import ARM, DisARM, estimator_class, get
from gumbel_softmax.testing import assert_close_mean, assert_mean_less

N_DRAWS = 20_000
IDS = [p.name for p in BINARY]


@pytest.mark.parametrize("name", ["arm", "disarm"])
@pytest.mark.parametrize("problem", BINARY[2:], ids=IDS[2:])
def test_unbiased_for_log_odds(name: str, problem: ToyProblem) -> None:
    # f on {0,1}^N, equal to the problem's f on the matching one-hot vectors.
    def f_bits(b):
        return problem.f(torch.stack([1 - b, b], -1))

    alpha = problem.logits[..., 1] - problem.logits[..., 0]
    draws = draw(make(name, *alpha.shape, 2, log_odds=True), alpha, f_bits, N_DRAWS, seed=32)
    # d/d alpha = d/d logits[..., 1] when logits = (0, alpha).
    expected = exact_gradient(problem.f, torch.stack([torch.zeros_like(alpha), alpha], -1))
    assert_close_mean(draws, expected[..., 1], false_alarm=1e-3)


@pytest.mark.parametrize("cls", [ARM, DisARM])
def test_two_forms_agree_draw_for_draw(cls) -> None:
    problem = BINARY[3]
    alpha = problem.logits[..., 1] - problem.logits[..., 0]
    g2 = draw(cls(), problem.logits, problem.f, 64, seed=33)
    g1 = draw(
        cls(log_odds=True), alpha, lambda b: problem.f(torch.stack([1 - b, b], -1)), 64, seed=33
    )
    assert torch.allclose(g2[..., 1], g1, rtol=1e-12, atol=1e-12)
    assert torch.allclose(g2[..., 0], -g1, rtol=1e-12, atol=1e-12)


def test_disarm_has_lower_variance_than_arm() -> None:
    problem = BINARY[3]
    arm = draw(ARM(), problem.logits, problem.f, N_DRAWS, seed=34)
    disarm = draw(DisARM(), problem.logits, problem.f, N_DRAWS, seed=35)
    # total variance reduced: one-sided, passes by chance with probability <= 1e-3 if not
    assert_mean_less(spread(disarm), spread(arm), level=1e-3)


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_shapes_and_the_antithetic_pair(name: str) -> None:
    problem = BINARY[2]
    calls = []

    def f(z):
        calls.append(z.shape)
        return problem.f(z)

    x = problem.logits.expand(5, *problem.logits.shape)
    r = get(name)(x, f, generator=torch.Generator().manual_seed(0))
    assert calls == [torch.Size((2, 5, 3, 2))]
    assert r.surrogate.shape == (5,) and r.value.shape == (2, 5) and r.sample.shape == (2, 5, 3, 2)
    assert torch.all(r.sample.sum(-1) == 1)
    bits = get(name, log_odds=True)(
        x[..., 1] - x[..., 0], lambda b: b.sum(-1), generator=torch.Generator().manual_seed(0)
    ).sample
    assert bits.shape == (2, 5, 3) and set(bits.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_binary_only_errors_name_the_shape(name: str) -> None:
    def f(z):
        return z.sum((-1, -2))

    with pytest.raises(ValueError, match=r"binary-only.*\(\*batch, N, 2\).*\(4, 3\)"):
        get(name)(torch.zeros(4, 3), f)
    with pytest.raises(ValueError, match=r"binary-only.*got shape \(4,\)"):
        get(name)(torch.zeros(4), f)
    with pytest.raises(ValueError, match="got a scalar"):
        get(name, log_odds=True)(torch.tensor(0.0), f)
    with pytest.raises(TypeError, match="log_odds must be a bool"):
        get(name, log_odds=1)
    assert estimator_class(name).binary_only and estimator_class(name).unbiased


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_saturated_and_masked_log_odds_give_finite_gradients(name: str) -> None:
    logits = torch.tensor([[[0.0, 1e4], [1e4, 0.0], [0.0, -torch.inf], [-torch.inf, 0.0]]])
    x = logits.clone().requires_grad_(True)
    r = get(name)(
        x,
        lambda z: (z[..., 1] * torch.arange(4.0)).sum(-1),
        generator=torch.Generator().manual_seed(0),
    )
    (g,) = torch.autograd.grad(r.surrogate.sum(), x)
    assert torch.isfinite(g).all() and torch.isfinite(r.value).all()
    assert torch.equal(r.sample[0, 0, :, 1], torch.tensor([1.0, 0.0, 0.0, 1.0]))
