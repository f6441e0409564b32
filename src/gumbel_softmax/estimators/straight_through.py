r"""Straight-through estimators: an exact one-hot sample forward, a softmax's Jacobian backward.

Both draw :math:`D \sim \mathrm{Cat}(\mathrm{softmax}(\theta))` exactly and differentiate
:math:`\mathrm{softmax}(\theta/\tau)` in its place; they differ in how :math:`\tau` is chosen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..functional import straight_through
from ._base import PathwiseEstimator, register
from ._pathwise import check_estimator_logits, one_hot_sample, to_compute

__all__ = ["SlopeAnnealedStraightThrough", "StraightThrough"]


def _positive_float(value: object, name: str) -> float:
    """``value`` as a float, checked to be positive and finite (errors name ``name``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive float, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return v


@register("st", "straight-through")
class StraightThrough(PathwiseEstimator):
    r"""Straight-through (Bengio, Léonard & Courville 2013, arXiv:1308.3432).

    .. math:: z = D \sim \mathrm{Cat}(\mathrm{softmax}(\theta)), \qquad
              \hat g = \frac{\partial\,\mathrm{softmax}(\theta/\tau)}{\partial\theta}^{\!\top}
              \nabla_z f(D),

    i.e. the forward value is an exact one-hot sample and the backward pretends
    :math:`z = \mathrm{softmax}(\theta/\tau)`. With the default :math:`\tau = 1` this is the ST
    of Jang et al.'s table (arXiv:1611.01144). The estimate is biased unless ``f`` is linear in
    ``z`` (then it is exact in expectation at :math:`\tau = 1`); it has the lowest variance of the
    single-sample estimators and ``f`` only ever sees discrete samples.

    When to use it: a cheap, low-variance default when ``f`` is close to linear around the
    samples; prefer :class:`~gumbel_softmax.estimators.reinmax.ReinMax` (same cost, second-order
    accurate) otherwise.

    Args:
        temperature: :math:`\tau > 0` of the backward softmax only (the sample does not depend
            on it).

    Shapes: ``logits`` ``(*batch, N, K)``; :meth:`sample` returns a one-hot tensor of the same
    shape and dtype (16-bit inputs are computed in float32).

    Raises:
        TypeError / ValueError: a non-float or non-positive ``temperature``; non-floating,
        NaN, fewer than 2-dimensional or all-masked ``logits``.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self._temperature = _positive_float(temperature, "temperature")

    @property
    def temperature(self) -> float:
        """The backward softmax's temperature."""
        return self._temperature

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        x = to_compute(check_estimator_logits(logits))
        hard = one_hot_sample(x, generator)
        soft = torch.softmax(x / self.temperature, -1)
        return straight_through(hard, soft).to(logits.dtype)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


@register("st-annealed", "slope-annealed-st", "annealed-st")
class SlopeAnnealedStraightThrough(StraightThrough):
    r"""Slope-annealed straight-through (Chung, Ahn & Bengio 2016, arXiv:1609.01704).

    .. math:: z = D \sim \mathrm{Cat}(\mathrm{softmax}(\theta)), \qquad
              \hat g = \frac{\partial\,\mathrm{softmax}(\alpha\,\theta)}{\partial\theta}^{\!\top}
              \nabla_z f(D),

    straight-through whose backward softmax has slope :math:`\alpha = 1/\tau`, raised during
    training so that the surrogate approaches the step function the forward pass takes. Chung et
    al. use :math:`\alpha = \min(5,\ 1 + 0.04\,\mathrm{epoch})`; Jang et al.'s "Annealed ST"
    (arXiv:1611.01144) is this estimator.

    How a training loop anneals the slope: either set ``est.slope = value`` whenever you like,
    or pass ``schedule`` (a function ``step -> slope``) and call :meth:`step` once per step or
    epoch, which advances ``est.num_steps`` and sets ``est.slope = schedule(num_steps)``::

        est = SlopeAnnealedStraightThrough(schedule=lambda e: min(5.0, 1.0 + 0.04 * e))
        for epoch in range(epochs):
            train_one_epoch(est)
            est.step()

    ``slope`` and ``num_steps`` are saved in ``state_dict()`` (as extra state), so a resumed run
    continues the schedule where it stopped.

    When to use it: as straight-through, when a sharper surrogate late in training helps (the
    bias shrinks with the slope for near-deterministic codes, the variance grows).

    Args:
        slope: the initial :math:`\alpha > 0` (``schedule(0)`` when a schedule is given).
        schedule: optional ``step -> slope`` function applied by :meth:`step`.

    Raises:
        TypeError / ValueError: a non-float or non-positive ``slope`` (also one returned by
        ``schedule``), a non-callable ``schedule``.
    """

    def __init__(
        self, slope: float = 1.0, *, schedule: Callable[[int], float] | None = None
    ) -> None:
        if schedule is not None and not callable(schedule):
            raise TypeError(f"schedule must be a callable step -> slope, got {schedule!r}")
        self.schedule = schedule
        self.num_steps = 0
        if schedule is not None:
            slope = schedule(0)
        super().__init__(1.0 / _positive_float(slope, "slope"))

    @property
    def slope(self) -> float:
        r"""The backward softmax's slope :math:`\alpha = 1/\tau`."""
        return 1.0 / self._temperature

    @slope.setter
    def slope(self, value: float) -> None:
        self._temperature = 1.0 / _positive_float(value, "slope")

    def step(self) -> float:
        """Advance the schedule by one step and return the new slope (no-op without schedule)."""
        self.num_steps += 1
        if self.schedule is not None:
            self.slope = self.schedule(self.num_steps)
        return self.slope

    def get_extra_state(self) -> dict[str, Any]:
        return {"slope": self.slope, "num_steps": self.num_steps}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.slope = state["slope"]
        self.num_steps = int(state["num_steps"])

    def extra_repr(self) -> str:
        return f"slope={self.slope}, num_steps={self.num_steps}"
