r"""The Hard Concrete distribution: a binary Concrete stretched past (0, 1) and rectified back.

Louizos, Welling & Kingma, *Learning Sparse Neural Networks through L0 Regularization*
(arXiv:1712.01312), section 4. With :math:`S \sim \mathrm{BinaryConcrete}(\log\alpha, \tau)`
(Maddison et al., arXiv:1611.00712; the paper writes :math:`\beta` for :math:`\tau`) and a stretch
interval :math:`(l, r) \supset [0, 1]`,

.. math:: \bar S = l + (r - l)\,S, \qquad Z = \min(1, \max(0, \bar S)),

so :math:`Z` has point masses at exactly 0 and 1 (a gate that switches a weight off or fully on)
and a density on (0, 1) in between, while ``rsample`` stays differentiable in :math:`\log\alpha`
and :math:`\tau` wherever :math:`0 < \bar S < 1`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from .._numerics import compute_dtype, downcast, logistic_noise
from ..functional import _TemperedSigmoid
from ._base import TransformedRelaxed
from .binary import LogitBinaryConcrete

__all__ = ["HardConcrete"]


def _finite_float(name: str, v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a float, got {v!r}")
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return float(v)


def _check_stretch(low: object, high: object) -> tuple[float, float]:
    """``low < 0`` and ``high > 1``, finite floats: both point masses then have positive mass."""
    lo, hi = _finite_float("low", low), _finite_float("high", high)
    if not lo < 0:
        raise ValueError(f"low must be < 0 (the stretch must pass below 0), got low={low!r}")
    if not hi > 1:
        raise ValueError(f"high must be > 1 (the stretch must pass above 1), got high={high!r}")
    return lo, hi


class HardConcrete(TransformedRelaxed):
    r"""Hard Concrete gates on [0, 1] with exact point masses at 0 and 1 (Louizos et al. 2018).

    Sampling (arXiv:1712.01312, eq. 9-10), with :math:`L = \log U - \log(1-U)` logistic noise:

    .. math:: S = \sigma\!\left(\frac{\log\alpha + L}{\tau}\right), \qquad
              Z = \min\!\big(1, \max(0,\ l + (r - l) S)\big).

    With :math:`c_0 = \log(-l/r)` and :math:`c_1 = \log((1-l)/(r-1))` the masses are

    .. math:: P(Z = 0) = \sigma(\tau c_0 - \log\alpha), \qquad
              P(Z = 1) = \sigma(\log\alpha - \tau c_1),

    and :math:`P(Z \ne 0) = \sigma(\log\alpha - \tau c_0)` (eq. 12) is the expected
    :math:`L_0` penalty of a gate: ``d.prob_nonzero.sum()``. On (0, 1) the density is that of the
    stretched binary Concrete, :math:`p_Z(z) = p_S(s)/(r - l)` with :math:`s = (z - l)/(r - l)` and

    .. math:: \log p_S(s) = \log\tau + \log\alpha - \tau y
              - 2\log\!\left(1 + e^{\log\alpha - \tau y}\right) - \log s - \log(1-s),
              \quad y = \operatorname{logit}(s);

    the CDF there is :math:`\sigma(\tau\operatorname{logit}(s) - \log\alpha)`.

    ``log_prob`` is taken with respect to the mixed measure :math:`\delta_0 + \delta_1 +`
    Lebesgue on (0, 1): it returns :math:`\log P(Z=0)` at 0, :math:`\log P(Z=1)` at 1 and the
    log-density in between. :attr:`deterministic_gate` is the paper's test-time gate (eq. 13),
    :math:`\min(1, \max(0, \sigma(\log\alpha)(r - l) + l))`.

    Args:
        temperature: :math:`\tau > 0` (the paper uses 2/3), float or tensor broadcastable with
            the logits.
        logits: :math:`\log\alpha`, any shape (one gate per entry); ``+-inf`` give exact gates.
        probs: :math:`\alpha/(1+\alpha)` in [0, 1], instead of logits.
        low, high: the stretch interval :math:`(l, r)`, ``low < 0 < 1 < high``; default
            (-0.1, 1.1) as in the paper.
        validate_args: check the parameters and ``log_prob``'s values (on unless False; on
            CUDA queued on the device unless True, see :func:`~gumbel_softmax._numerics.require`).

    Raises:
        TypeError / ValueError: as :class:`BinaryConcrete`; ``low >= 0``, ``high <= 1`` or
        non-finite or non-float ``low`` / ``high``.

    ``probs`` and ``logits`` are the parameter :math:`\sigma(\log\alpha)` and
    :math:`\log\alpha` (as for :class:`BinaryConcrete`), not :math:`P(Z \ne 0)`.

    Numerics: 16-bit parameters compute in float32. The gradient of a sample is exactly zero
    where it is clamped to 0 or 1 (as in the paper); at extreme :math:`\log\alpha / \tau` every
    sample is clamped and gradients are zero, never NaN. ``.base`` is the underlying
    :class:`LogitBinaryConcrete` of :math:`\operatorname{logit} S`.
    """

    arg_constraints = LogitBinaryConcrete.arg_constraints
    support = constraints.unit_interval
    base: LogitBinaryConcrete

    def __init__(
        self,
        temperature: float | Tensor,
        *,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        low: float = -0.1,
        high: float = 1.1,
        validate_args: bool | None = None,
    ) -> None:
        self.low, self.high = _check_stretch(low, high)
        super().__init__(
            LogitBinaryConcrete(
                temperature, logits=logits, probs=probs, validate_args=validate_args
            ),
            validate_args,
        )

    def expand(self, batch_shape: Any, _instance: Any = None) -> Any:
        new = self._get_checked_instance(HardConcrete, _instance)
        new.low, new.high = self.low, self.high
        return super().expand(batch_shape, _instance=new)

    # -- closed forms (all in the compute dtype, returned in the parameters' dtype) ----------

    def _c0(self) -> float:
        return math.log(-self.low / self.high)

    def _c1(self) -> float:
        return math.log((1 - self.low) / (self.high - 1))

    def _log_prob_zero(self) -> Tensor:
        return F.logsigmoid(self.base._tau * self._c0() - self.base._logits)

    def _log_prob_one(self) -> Tensor:
        return F.logsigmoid(self.base._logits - self.base._tau * self._c1())

    def _out(self, x: Tensor) -> Tensor:
        return downcast(x, self.base.logits.dtype)

    @property
    def prob_zero(self) -> Tensor:
        r""":math:`P(Z = 0) = \sigma(\tau\log(-l/r) - \log\alpha)`, of the batch shape."""
        return self._out(self._log_prob_zero().exp())

    @property
    def prob_one(self) -> Tensor:
        r""":math:`P(Z = 1) = \sigma(\log\alpha - \tau\log((1-l)/(r-1)))`, of the batch shape."""
        return self._out(self._log_prob_one().exp())

    @property
    def prob_nonzero(self) -> Tensor:
        r""":math:`P(Z \ne 0) = \sigma(\log\alpha - \tau\log(-l/r))`: the expected :math:`L_0`
        norm of the gates (arXiv:1712.01312, eq. 12), differentiable in both parameters."""
        return self._out(torch.sigmoid(self.base._logits - self.base._tau * self._c0()))

    @property
    def deterministic_gate(self) -> Tensor:
        r"""The test-time gate :math:`\min(1, \max(0, \sigma(\log\alpha)(r - l) + l))` (eq. 13):
        exactly 0 for :math:`\log\alpha \le \log(-l/r)`, exactly 1 for
        :math:`\log\alpha \ge \log((1-l)/(r-1))`."""
        s = torch.sigmoid(self.base._logits)
        return self._out((s * (self.high - self.low) + self.low).clamp(0.0, 1.0))

    # -- sampling and densities ----------------------------------------------------------------

    def rsample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        logits, tau = self.base._logits, self.base._tau
        n = logistic_noise(shape, dtype=logits.dtype, device=logits.device, generator=generator)
        # _TemperedSigmoid is differentiable at +-inf and where the sigmoid saturates.
        s = _TemperedSigmoid.apply(logits + n, tau)
        z = (s * (self.high - self.low) + self.low).clamp(0.0, 1.0)
        return z.to(self.base.logits.dtype)

    def cdf(self, value: Tensor) -> Tensor:
        r""":math:`P(Z \le z)`: 0 below 0, :math:`\sigma(\tau\operatorname{logit}(s) - \log\alpha)`
        on [0, 1) with :math:`s = (z - l)/(r - l)` (the mass at 0 included), 1 from 1 on; defined
        for every real ``value``, so it is not checked against the support."""
        v = value.to(compute_dtype(value.dtype))
        y = torch.logit((v.clamp(0.0, 1.0) - self.low) / (self.high - self.low))
        f = torch.sigmoid(self.base._tau * y - self.base._logits)
        f = torch.where(v < 0, 0.0, torch.where(v >= 1, 1.0, f))
        return downcast(f, value.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            value = self._checked_sample(value)
        dt = compute_dtype(value.dtype)
        v = value.to(dt)
        logits, tau = self.base._logits, self.base._tau
        # Interior points map to s in [-l/(r-l), (1-l)/(r-l)], strictly inside (0, 1): every
        # logarithm below is finite, whichever branch torch.where keeps.
        s = (v.clamp(0.0, 1.0) - self.low) / (self.high - self.low)
        log_s, log_1ms = s.log(), torch.log1p(-s)
        finite = torch.isfinite(logits)
        # Infinite log-odds leave no density on (0, 1); zero them first (inf - inf would be NaN).
        a = tau * (log_s - log_1ms)
        t = logits.masked_fill(~finite, 0.0) - a
        dens = tau.log() + t - 2 * F.softplus(t) - log_s - log_1ms - math.log(self.high - self.low)
        dens = torch.where(finite, dens, -torch.inf)
        out = torch.where(
            v <= 0, self._log_prob_zero(), torch.where(v >= 1, self._log_prob_one(), dens)
        )
        return downcast(out, value.dtype)
