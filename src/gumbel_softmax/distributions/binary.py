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
from torch.distributions import constraints

from .._numerics import (
    compute_dtype,
    downcast,
    logistic_noise,
    require,
    upcast,
    validation_enabled,
)
from ..functional import straight_through
from ._base import LogSpaceDistribution, TransformedRelaxed, parameters
from .concrete import RelaxedSample
from .constraints import positive_finite

__all__ = ["BinaryConcrete", "LogitBinaryConcrete", "StraightThroughBinaryConcrete"]


class LogitBinaryConcrete(LogSpaceDistribution):
    r"""The logit-space binary Concrete: :math:`Y = (\log\alpha + L)/\tau`, a logistic variable.

    Log-density (Maddison et al. 2017, arXiv:1611.00712, appendix C.3):

    .. math:: \log g_{\alpha,\tau}(y) = \log\tau - \tau y + \log\alpha
              - 2\log\!\left(1 + e^{-\tau y + \log\alpha}\right).

    Infinite log-odds (``probs`` 0 or 1) are a point mass at :math:`\mp\infty`: samples are
    ``finfo.min`` / ``finfo.max`` (the clamp below), and ``log_prob`` is :math:`+\infty` there
    (values at or beyond that clamp) and :math:`-\infty` elsewhere, the limit of the density as
    :math:`\log\alpha \to \pm\infty` (TFP's convention); never NaN, and without gradient.
    For finite log-odds ``log_prob`` is computed as
    :math:`\log\tau - \operatorname{softplus}(s) - \operatorname{softplus}(-s)`,
    :math:`s = \log\alpha - \tau y` (the same expression, symmetric in :math:`s`, so it cannot
    form :math:`\infty - \infty`).

    Args:
        temperature: :math:`\tau > 0`, float or tensor broadcastable with the logits (the only
            positional argument).
        probs: Bernoulli probabilities :math:`\alpha/(1+\alpha)` in [0, 1], keyword-only.
        logits: log-odds :math:`\log\alpha` of any shape, keyword-only, instead of probs;
            :math:`\pm\infty` allowed.

    Raises:
        TypeError: a positional ``probs`` / ``logits``, or parameters that are not floating tensors.
        ValueError: not exactly one of ``probs`` / ``logits``; a temperature that is not positive
            and finite or whose shape does not broadcast with the batch shape; under validation,
            ``probs`` outside [0, 1] or NaN logits.

    Numerics: samples are clamped to the dtype's finite range (a 16-bit sample at small
    :math:`\tau` would otherwise overflow to ``inf``); 16-bit parameters compute in float32.
    """

    arg_constraints = {
        "temperature": positive_finite,
        "logits": constraints.real,
        "probs": constraints.unit_interval,
    }
    support = constraints.real

    def __init__(
        self,
        temperature: float | Tensor,
        *,
        probs: Tensor | None = None,
        logits: Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        strict = validate_args is True
        name, p, tau, batch_shape = parameters(
            temperature, logits, probs, event_dims=0, strict=strict
        )
        if validation_enabled(validate_args):  # no host synchronisation (see require)
            # log-odds may be infinite (a certain outcome), not NaN
            kind = "unit_interval" if name == "probs" else "not_nan"
            p = require(p, kind, name=name, strict=strict)
        if name == "probs":
            # logit's gradient at 0 and 1 is 1/0, which turns the zero gradient of a point mass
            # into NaN: those entries become +-inf without gradient.
            inside = (p > 0) & (p < 1)
            p = torch.where(inside, torch.logit(torch.where(inside, p, 0.5)), p.detach().logit())
        # Computation uses the parameters in the compute dtype (cast once, see _numerics.upcast).
        self._logits = upcast(p).expand(batch_shape)
        self._tau = upcast(tau).to(self._logits.dtype).expand(batch_shape)
        self.logits = p.expand(batch_shape)
        self.temperature = tau.to(p.dtype).expand(batch_shape)
        self._init_checked(batch_shape, torch.Size(), validate_args)

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
            value = self._checked_sample(value)
        v = value.to(self._tau.dtype)
        edge = torch.finfo(self.logits.dtype).max  # where rsample puts the point masses
        log_g = downcast(self._log_density(v), self.logits.dtype)
        return self._with_atoms(log_g, v >= edge, v <= -edge)

    def _log_density(self, y: Tensor) -> Tensor:
        """The log-density at logit ``y`` in the compute dtype, for finite log-odds (infinite ones
        give a finite placeholder, which :meth:`_with_atoms` replaces)."""
        tau, logits = self._tau, self._logits
        # Zero the infinite log-odds: their branch is replaced, and inf there would put NaN in the
        # gradient (0 * inf) through torch.where.
        s = logits.masked_fill(~torch.isfinite(logits), 0.0) - tau * y
        return tau.log() - F.softplus(s) - F.softplus(-s)

    def _with_atoms(self, log_p: Tensor, at_pos: Tensor, at_neg: Tensor) -> Tensor:
        """``log_p`` with the point masses of infinite log-odds put in: ``+inf`` where ``at_pos``
        (``at_neg``) says the value is the atom of log-odds ``+inf`` (``-inf``), ``-inf`` elsewhere.
        Applied after :func:`downcast`, which would saturate these infinities."""
        logits = self._logits
        atom = torch.where(logits > 0, at_pos, at_neg)
        point_mass = torch.where(atom, torch.inf, -torch.inf).to(log_p.dtype)
        return torch.where(torch.isfinite(logits), log_p, point_mass)


class BinaryConcrete(TransformedRelaxed):
    r"""The binary Concrete / relaxed Bernoulli on (0, 1) (also exported as ``RelaxedBernoulli``).

    :math:`X = \sigma((\log\alpha + L)/\tau)`, with density (Maddison et al. 2017, eq. 10)

    .. math:: p_{\alpha,\tau}(x) = \frac{\tau\,\alpha\, x^{-\tau-1}(1-x)^{-\tau-1}}
              {\left(\alpha x^{-\tau} + (1-x)^{-\tau}\right)^2},

    computed as :math:`\log g(\operatorname{logit} x) - \log x - \log(1-x)` through
    :class:`LogitBinaryConcrete` (``.base``). Samples are clamped to ``[tiny, 1 - eps/2]``
    (the largest float below 1) so that their ``log_prob`` is finite; ``log_prob`` reads 0 and 1
    as those clamped values. ``probs`` 1 (0) is a point mass at 1 (0): its samples are the
    clamped ``1 - eps/2`` (``tiny``), where ``log_prob`` is :math:`+\infty`, and it is
    :math:`-\infty` below (above) them, the limit of the density as
    :math:`\log\alpha \to \pm\infty` at every fixed :math:`x \in (0, 1)`; never NaN.
    """

    arg_constraints = LogitBinaryConcrete.arg_constraints
    support = constraints.unit_interval

    def __init__(
        self,
        temperature: float | Tensor,
        *,
        probs: Tensor | None = None,
        logits: Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        base = LogitBinaryConcrete(
            temperature, probs=probs, logits=logits, validate_args=validate_args
        )
        super().__init__(base, validate_args)

    base: LogitBinaryConcrete

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
            value = self._checked_sample(value)
        dt = compute_dtype(value.dtype)
        fin, edge = torch.finfo(value.dtype), torch.finfo(self.logits.dtype)
        # 0 and 1 (as the straight-through form returns) are read as the clamped values rsample gives.
        v = value.to(dt)
        vc = v.clamp(fin.tiny, 1 - fin.eps / 2)
        log_x, log_1mx = vc.log(), torch.log1p(-vc)
        # The atoms of probs 1 and 0 are 1 and 0, which rsample returns clamped to its dtype.
        at_one, at_zero = v >= 1 - edge.eps / 2, v <= edge.tiny
        log_p = downcast(self.base._log_density(log_x - log_1mx) - log_x - log_1mx, value.dtype)
        return self.base._with_atoms(log_p, at_one, at_zero)


class StraightThroughBinaryConcrete(BinaryConcrete):
    r"""Straight-through binary Concrete: :math:`\mathbb 1[X > 1/2]` forward, relaxed gradient.

    The forward value is an exact Bernoulli(:math:`\sigma(\log\alpha)`) sample. Use
    :meth:`rsample_with_relaxed` to get the relaxed sample as well, for ``log_prob``.

    Not a Pyro guide, for the reason given in :class:`StraightThroughConcrete`: Pyro scores the
    0/1 value, not the relaxed sample. Use a relaxed :class:`BinaryConcrete` site and form
    ``straight_through((z > 0.5).to(z.dtype), z)`` in the model.
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
