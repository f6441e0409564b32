r"""The binary Concrete (relaxed Bernoulli), built on its logit-space form.

Maddison, Mnih & Teh (arXiv:1611.00712), section 3.3 and appendix C.3: with
:math:`L = \log U - \log(1-U)` standard logistic noise,
:math:`Y = (\log\alpha + L)/\tau` is the logit-space node and :math:`X = \sigma(Y)` lies in (0, 1).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, constraints

from .._numerics import compute_dtype, downcast, logistic_noise, upcast
from ..functional import straight_through
from ._base import LogSpaceDistribution, TransformedRelaxed
from .concrete import RelaxedSample, _params, positive_finite

__all__ = ["BinaryConcrete", "LogitBinaryConcrete", "StraightThroughBinaryConcrete"]


class LogitBinaryConcrete(LogSpaceDistribution):
    r"""The logit-space binary Concrete: :math:`Y = (\log\alpha + L)/\tau`, a logistic variable.

    Log-density (Maddison et al. 2017, arXiv:1611.00712, appendix C.3):

    .. math:: \log g_{\alpha,\tau}(y) = \log\tau - \tau y + \log\alpha
              - 2\log\!\left(1 + e^{-\tau y + \log\alpha}\right).

    Args:
        temperature: :math:`\tau > 0`, float or tensor broadcastable with the logits.
        logits: log-odds :math:`\log\alpha` of any shape.
        probs: Bernoulli probabilities :math:`\alpha/(1+\alpha)` in [0, 1], instead of logits.

    Numerics: samples are clamped to the dtype's finite range (a 16-bit sample at small
    :math:`\tau` would otherwise overflow to ``inf``); 16-bit parameters compute in float32.
    """

    arg_constraints = {"temperature": positive_finite, "logits": constraints.real}
    support = constraints.real

    def __init__(
        self,
        temperature: float | Tensor,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        p, tau = _params(temperature, logits, probs, event_dims=0)
        if probs is not None:
            validate = Distribution._validate_args if validate_args is None else validate_args
            if validate and not bool(((p >= 0) & (p <= 1)).all()):
                raise ValueError(f"probs (Tensor of shape {tuple(p.shape)}) must lie in [0, 1]")
            p = torch.logit(p)
        batch_shape = torch.broadcast_shapes(p.shape, tau.shape)
        # Computation uses the parameters in the compute dtype (cast once, see _numerics.upcast).
        self._logits = upcast(p).expand(batch_shape)
        self._tau = upcast(tau).to(self._logits.dtype).expand(batch_shape)
        self.logits = p.expand(batch_shape)
        self.temperature = tau.to(p.dtype).expand(batch_shape)
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def probs(self) -> Tensor:
        """The Bernoulli probability :math:`\\sigma(\\log\\alpha)` (the zero-temperature limit)."""
        return torch.sigmoid(self.logits)

    def rsample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        n = logistic_noise(
            shape, dtype=self._logits.dtype, device=self._logits.device, generator=generator
        )
        # Infinite log-odds (certain outcomes) bypass the division, whose gradient would be NaN.
        finite = torch.isfinite(self._logits)
        y = (self._logits.masked_fill(~finite, 0.0) + n) / self._tau
        y = torch.where(finite, y, self._logits)
        fin = torch.finfo(self.logits.dtype)
        return y.clamp(fin.min, fin.max).to(self.logits.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        tau = self._tau
        s = self._logits - tau * value.to(tau.dtype)
        return downcast(tau.log() + s - 2 * F.softplus(s), self.logits.dtype)


class BinaryConcrete(TransformedRelaxed):
    r"""The binary Concrete / relaxed Bernoulli on (0, 1) (also exported as ``RelaxedBernoulli``).

    :math:`X = \sigma((\log\alpha + L)/\tau)`, with density (Maddison et al. 2017, eq. 10)

    .. math:: p_{\alpha,\tau}(x) = \frac{\tau\,\alpha\, x^{-\tau-1}(1-x)^{-\tau-1}}
              {\left(\alpha x^{-\tau} + (1-x)^{-\tau}\right)^2},

    computed as :math:`\log g(\operatorname{logit} x) - \log x - \log(1-x)` through
    :class:`LogitBinaryConcrete` (``.base``). Samples are clamped to ``[tiny, 1 - eps/2]``
    (the largest float below 1) so that their ``log_prob`` is finite.
    """

    arg_constraints = LogitBinaryConcrete.arg_constraints
    support = constraints.unit_interval

    def __init__(
        self,
        temperature: float | Tensor,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        super().__init__(
            LogitBinaryConcrete(temperature, logits, probs, validate_args), validate_args
        )

    @staticmethod
    def _squash(y: Tensor) -> Tensor:
        """``sigmoid(y)`` clamped to ``[tiny, 1 - eps/2]``, so that ``log_prob`` stays finite."""
        fin = torch.finfo(y.dtype)
        return torch.sigmoid(y).clamp(fin.tiny, 1 - fin.eps / 2)

    def rsample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        return self._squash(self.base.rsample(sample_shape, generator=generator))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        fin = torch.finfo(value.dtype)
        # 0 and 1 (as the straight-through form returns) are read as the clamped values rsample gives.
        v = value.to(compute_dtype(value.dtype)).clamp(fin.tiny, 1 - fin.eps / 2)
        log_x, log_1mx = v.log(), torch.log1p(-v)
        y = log_x - log_1mx
        tau = self.base._tau
        s = self.base._logits - tau * y
        return downcast(tau.log() + s - 2 * F.softplus(s) - log_x - log_1mx, value.dtype)


class StraightThroughBinaryConcrete(BinaryConcrete):
    r"""Straight-through binary Concrete: :math:`\mathbb 1[X > 1/2]` forward, relaxed gradient.

    The forward value is an exact Bernoulli(:math:`\sigma(\log\alpha)`) sample. Use
    :meth:`rsample_with_relaxed` to get the relaxed sample as well, for ``log_prob``.
    """

    def rsample_with_relaxed(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> RelaxedSample:
        y = self.base.rsample(sample_shape, generator=generator)
        x = self._squash(y)
        # Threshold the logit, not x: sigmoid rounds values near 0.5 together.
        return RelaxedSample(straight_through((y > 0).to(x.dtype), x), x)

    def rsample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        return self.rsample_with_relaxed(sample_shape, generator=generator).value
