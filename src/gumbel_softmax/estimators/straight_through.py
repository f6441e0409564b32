r"""Straight-through estimators: an exact one-hot sample forward, a softmax's Jacobian backward.

Both draw :math:`D \sim \mathrm{Cat}(\mathrm{softmax}(\theta))` exactly and differentiate
:math:`\mathrm{softmax}(\theta/\tau)` in its place; they differ in how :math:`\tau` is chosen:
plain straight-through keeps it fixed (``temperature_kind = "fixed"``), slope-annealed
straight-through follows a schedule (``"scheduled"``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from ..functional import straight_through
from ._base import PathwiseEstimator, TemperatureKind, TemperedEstimator, positive_float, register
from ._pathwise import check_estimator_logits, one_hot_sample, to_compute

__all__ = ["SlopeAnnealedStraightThrough", "StraightThrough"]


@register("st", "straight-through")
class StraightThrough(TemperedEstimator, PathwiseEstimator):
    r"""Straight-through (Bengio, Léonard & Courville 2013, arXiv:1308.3432).

    .. math:: z = D \sim \mathrm{Cat}(\mathrm{softmax}(\theta)), \qquad
              \hat g = \frac{\partial\,\mathrm{softmax}(\theta/\tau)}{\partial\theta}^{\!\top}
              \nabla_z f(D),

    i.e. the forward value is an exact one-hot sample and the backward pretends
    :math:`z = \mathrm{softmax}(\theta/\tau)`. With the default :math:`\tau = 1` this is the ST
    of Jang et al.'s table (arXiv:1611.01144). The estimate is biased unless ``f`` is linear in
    ``z`` (then it is exact in expectation at :math:`\tau = 1`); it has the lowest variance of the
    single-sample estimators and ``f`` only ever sees discrete samples.

    Its temperature is ``"fixed"``: a constructor option that training keeps constant (a training
    loop's schedule does not drive it; that is
    :class:`SlopeAnnealedStraightThrough`). ``est.temperature = t`` still sets it by hand.

    When to use it: a cheap, low-variance default when ``f`` is close to linear around the
    samples; prefer :class:`~gumbel_softmax.estimators.reinmax.ReinMax` (same cost, second-order
    accurate) otherwise.

    Args:
        temperature: :math:`\tau > 0` of the backward softmax only (the sample does not depend
            on it).

    Shapes: ``logits`` ``(*batch, N, K)``; :meth:`sample` returns a one-hot tensor of the same
    shape and dtype (16-bit inputs are computed in float32, their gradient cast back saturating).

    Raises:
        TypeError / ValueError: a non-float or non-positive ``temperature``; non-floating,
        NaN, fewer than 2-dimensional or all-masked ``logits``; ``f`` returning another shape
        than ``(*batch)``.
    """

    temperature_kind: ClassVar[TemperatureKind] = "fixed"

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__(temperature)

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        x = to_compute(check_estimator_logits(logits))
        hard = one_hot_sample(x, generator)
        soft = torch.softmax(x / self._temperature, -1)
        return straight_through(hard, soft).to(logits.dtype)

    def extra_repr(self) -> str:
        return f"temperature={self._temperature}"


@register("st-annealed", "slope-annealed-st", "annealed-st")
class SlopeAnnealedStraightThrough(StraightThrough):
    r"""Slope-annealed straight-through (Chung, Ahn & Bengio 2016, arXiv:1609.01704).

    .. math:: z = D \sim \mathrm{Cat}(\mathrm{softmax}(\theta)), \qquad
              \hat g = \frac{\partial\,\mathrm{softmax}(\alpha\,\theta)}{\partial\theta}^{\!\top}
              \nabla_z f(D),

    straight-through whose backward softmax has slope :math:`\alpha = 1/\tau`, raised during
    training so that the surrogate approaches the step function the forward pass takes. Chung et
    al. use :math:`\alpha = \min(5,\ 1 + 0.04\,\mathrm{epoch})`; Jang et al.'s "Annealed ST"
    (arXiv:1611.01144) is this estimator; :class:`~gumbel_softmax.schedules.SlopeAnneal` is that
    schedule, and the class declares ``annealed``: where an experiment keeps other temperatures
    fixed (the paper's SBN), it still anneals this one.

    Its temperature is ``"scheduled"``: the one name of the knob is ``temperature``
    (:math:`\tau = 1/\alpha`), which a training loop sets from a
    :mod:`gumbel_softmax.schedules` schedule, ``est.temperature = schedule(step)``, exactly as
    for Gumbel-Softmax; ``est.slope`` reads and sets the same value as :math:`\alpha`. Both are
    saved in ``state_dict()``.

    When to use it: as straight-through, when a sharper surrogate late in training helps (the
    bias shrinks with the slope for near-deterministic codes, the variance grows).

    Args:
        temperature: the initial :math:`\tau = 1/\alpha > 0`.
        slope: the initial :math:`\alpha > 0` instead (give one of the two; default
            :math:`\alpha = 1`).
        schedule: deprecated (a private ``step -> slope`` counter advanced by :meth:`step`); drive
            ``temperature`` from a schedule instead.

    Raises:
        TypeError / ValueError: a non-float or non-positive ``temperature`` or ``slope``, both
        given, a non-callable ``schedule``.
    """

    temperature_kind: ClassVar[TemperatureKind] = "scheduled"
    annealed: ClassVar[bool] = True

    def __init__(
        self,
        temperature: float | None = None,
        *,
        slope: float | None = None,
        schedule: Callable[[int], float] | None = None,
    ) -> None:
        if temperature is not None and slope is not None:
            raise ValueError(
                f"give temperature or slope (= 1/temperature), not both: got "
                f"temperature={temperature!r}, slope={slope!r}"
            )
        if schedule is not None:
            warnings.warn(
                "SlopeAnnealedStraightThrough(schedule=...) and step() are deprecated: set "
                "est.temperature = schedule(step) from a gumbel_softmax.schedules schedule",
                DeprecationWarning,
                stacklevel=2,
            )
            if not callable(schedule):
                raise TypeError(f"schedule must be a callable step -> slope, got {schedule!r}")
            slope = schedule(0)
        self.schedule = schedule
        self.num_steps = 0
        if temperature is None:
            temperature = 1.0 / positive_float(1.0 if slope is None else slope, "slope")
        super().__init__(temperature)

    @property
    def slope(self) -> float:
        r"""The backward softmax's slope :math:`\alpha = 1/\tau`."""
        return 1.0 / self._temperature

    @slope.setter
    def slope(self, value: float) -> None:
        self.temperature = 1.0 / positive_float(value, "slope")

    def step(self) -> float:
        """Deprecated: advance the ``schedule`` given at construction and return the new slope."""
        self.num_steps += 1
        if self.schedule is not None:
            self.slope = self.schedule(self.num_steps)
        return self.slope

    def extra_repr(self) -> str:
        return f"temperature={self._temperature} (slope={self.slope})"
