"""The binary Concrete at the edge of its parameters: probs 0 and 1 (infinite log-odds) and log-odds
large enough that the density's two terms cancel (issue 10, item 5; the cases of TFP's
``testBoundaryConditions`` and ``testSamplesAtBoundaryNotNaN``).

Limits, derived from Maddison et al. (arXiv:1611.00712) eq. 10 with :math:`\\alpha = e^{\\ell}`:

.. math:: p(x) = \\frac{\\tau x^{\\tau-1}(1-x)^{-\\tau-1}}{\\alpha}
          \\Big(1 + \\frac{x^\\tau (1-x)^{-\\tau}}{\\alpha}\\Big)^{-2},

so at fixed :math:`x \\in (0, 1)` the log-density is
:math:`\\log\\tau - \\ell + (\\tau-1)\\log x - (\\tau+1)\\log(1-x) + O(e^{-\\ell})` and tends to
:math:`-\\infty` as :math:`\\ell \\to \\infty`, while the mass moves to the atom :math:`x = 1` (and
symmetrically to 0 as :math:`\\ell \\to -\\infty`). At infinite log-odds the distribution is that
point mass: density :math:`+\\infty` at the atom, :math:`-\\infty` elsewhere.
"""

from __future__ import annotations

import math

import pytest
import torch
from tests.conftest import DTYPES, TEMPERATURES

from gumbel_softmax.distributions import (
    BinaryConcrete,
    LogitBinaryConcrete,
    StraightThroughBinaryConcrete,
)

BINARY = [LogitBinaryConcrete, BinaryConcrete, StraightThroughBinaryConcrete]


def asymptote(x: torch.Tensor, logit: float, tau: float) -> torch.Tensor:
    """The log-density at |logit| -> inf without its O(exp(-|logit|)) term (module docstring)."""
    if logit > 0:
        return math.log(tau) - logit + (tau - 1) * x.log() - (tau + 1) * torch.log1p(-x)
    return math.log(tau) + logit - (tau + 1) * x.log() + (tau - 1) * torch.log1p(-x)


@pytest.mark.parametrize("logit", [1e4, -1e4, 800.0, -800.0])
@pytest.mark.parametrize("tau", [0.1, 1.0, 3.0])
def test_large_log_odds_match_the_asymptote(logit, tau):
    # The neglected term is 2 x^tau (1-x)^-tau / alpha <= 2 * 9^3 * e^-800 relative: below float64
    # rounding, so the two agree to rounding (1e-12 relative of values ~|logit|).
    x = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    d = BinaryConcrete(tau, logits=torch.tensor(logit, dtype=torch.float64))
    lp = d.log_prob(x)
    torch.testing.assert_close(lp, asymptote(x, logit, tau), rtol=1e-12, atol=0)
    y = torch.logit(x)
    lg = LogitBinaryConcrete(tau, logits=torch.tensor(logit, dtype=torch.float64)).log_prob(y)
    torch.testing.assert_close(lg, lp + x.log() + torch.log1p(-x), rtol=1e-12, atol=0)


def test_agrees_with_torch_where_torch_is_finite(gen):
    # torch's LogitRelaxedBernoulli forms diff - 2 log1p(exp(diff)): exact while exp(diff) is
    # finite, here |diff| <= 30 + 0.6 * 14; values well inside (0, 1) so that both read x alike.
    tau, logits = 0.6, torch.tensor([-30.0, -5.0, 0.0, 5.0, 30.0], dtype=torch.float64)
    x = torch.tensor([[1e-6], [0.3], [1 - 1e-6]], dtype=torch.float64)
    ours = BinaryConcrete(tau, logits=logits).log_prob(x)
    theirs = torch.distributions.RelaxedBernoulli(
        torch.tensor(tau, dtype=torch.float64), logits=logits
    ).log_prob(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cls", BINARY)
@pytest.mark.parametrize("prob", [0.0, 1.0])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_point_mass_at_probs_0_and_1(cls, prob, dtype, temperature):
    logits = torch.full((4,), math.inf if prob else -math.inf, dtype=dtype, requires_grad=True)
    tau = torch.tensor(temperature, dtype=dtype, requires_grad=True)
    by_logits = cls(tau, logits=logits, validate_args=True)
    by_probs = cls(temperature, probs=torch.full((4,), prob, dtype=dtype), validate_args=True)
    for d in [by_logits, by_probs]:
        x = d.rsample((8,), generator=torch.Generator().manual_seed(0))
        assert bool(torch.isfinite(x).all())
        if cls is LogitBinaryConcrete:
            atom, inside = x[0, :1], torch.tensor([-3.0, 0.0, 3.0], dtype=dtype)
        else:
            atom = torch.tensor([float(prob)], dtype=dtype)
            inside = torch.tensor([0.1, 0.5, 0.9, 1.0 - prob], dtype=dtype)
        # Own samples and the atom itself: +inf (TFP's testBoundaryConditions), never NaN.
        lp = d.log_prob(x)
        assert bool((lp == math.inf).all()), lp
        assert bool((d.log_prob(atom) == math.inf).all())
        # Everywhere else -inf: the limit of the asymptote as |logit| -> inf.
        assert bool((d.log_prob(inside[:, None]) == -math.inf).all())
    # A point mass has no gradient in its parameters: zero, not NaN (also through probs, where
    # torch.logit's derivative is 1/0).
    x = by_logits.rsample((8,), generator=torch.Generator().manual_seed(0))
    lp = by_logits.log_prob(x.detach())
    g_logits, g_tau = torch.autograd.grad(lp.sum() + x.sum(), [logits, tau])
    assert bool((g_logits == 0).all()) and bool(g_tau == 0)
    probs = torch.full((4,), prob, dtype=dtype, requires_grad=True)
    d = cls(temperature, probs=probs)
    x = d.rsample((8,), generator=torch.Generator().manual_seed(0))
    (g_probs,) = torch.autograd.grad(d.log_prob(x.detach()).sum() + x.sum(), probs)
    assert bool((g_probs == 0).all())


def test_mixed_batch_keeps_finite_entries_exact(gen):
    # Infinite and finite log-odds in one batch: the finite ones are untouched by the special case.
    logits = torch.tensor([-math.inf, -2.0, 0.5, math.inf], dtype=torch.float64)
    d = BinaryConcrete(0.7, logits=logits)
    x = d.sample((50,), generator=gen)
    lp = d.log_prob(x)
    assert bool((lp[:, [0, 3]] == math.inf).all()) and bool(torch.isfinite(lp[:, 1:3]).all())
    # Eq. 10 of Maddison et al., evaluated directly (fine in float64 at these log-odds).
    a, v, tau = logits[1:3].exp(), x[:, 1:3], 0.7
    closed = (
        math.log(tau)
        + a.log()
        + (-tau - 1) * (v.log() + torch.log1p(-v))
        - 2 * torch.log(a * v ** (-tau) + (1 - v) ** (-tau))
    )
    torch.testing.assert_close(lp[:, 1:3], closed, rtol=1e-9, atol=1e-9)
