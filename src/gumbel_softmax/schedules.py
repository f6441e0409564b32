r"""Temperature schedules: small pure objects mapping a training step to a temperature.

A schedule holds no state beyond its constructor arguments, so resuming a run only needs the step:
``schedule(step)`` is the temperature to use at global step ``step`` (0-based).

The annealing schedule is the one of Jang, Gu & Poole (arXiv:1611.01144, Section 4.3):
:math:`\tau_t = \max(\tau_{\min}, \tau_0 \exp(-r\, t'))` with :math:`t'` the step rounded down to a
multiple of the update interval :math:`N` (the paper updates :math:`\tau` every :math:`N` steps,
:math:`N \in \{500, 1000\}`, :math:`r \in \{10^{-5}, 10^{-4}\}`, :math:`\tau_{\min} = 0.5`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Constant", "ExponentialAnneal", "Schedule"]


def _positive_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def _check_step(step: int) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int, got {step!r}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return step


class Schedule:
    """Base class: ``schedule(step) -> temperature`` (a positive float)."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    @property
    def lowest(self) -> float:
        """The infimum of the temperatures the schedule returns over all steps (a training loop
        checks it against what its estimator accepts before the first step)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Schedule):
    r"""A fixed temperature, :math:`\tau_t = \tau` for every step ``t``.

    Args:
        temperature: :math:`\tau > 0`.

    Raises:
        TypeError: ``temperature`` is not a real number.
        ValueError: ``temperature`` is not positive and finite.
    """

    temperature: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", _positive_finite("temperature", self.temperature))

    def __call__(self, step: int) -> float:
        _check_step(step)
        return self.temperature

    @property
    def lowest(self) -> float:
        return self.temperature


@dataclass(frozen=True)
class ExponentialAnneal(Schedule):
    r"""The paper's annealing schedule (a staircase exponential decay with a floor).

    .. math:: \tau_t = \max\bigl(\tau_{\min},\ \tau_0\, e^{-r\,N\lfloor t/N\rfloor}\bigr)

    Jang, Gu & Poole (arXiv:1611.01144): the temperature decays exponentially in the global step
    and is updated only every ``every`` steps (a staircase), never falling below ``tau_min``.

    Args:
        tau0: :math:`\tau_0 > 0`, the temperature at step 0.
        rate: :math:`r \ge 0`, the decay rate per step (``0`` keeps :math:`\tau_0`).
        tau_min: :math:`\tau_{\min} > 0`, the floor.
        every: :math:`N \ge 1`, the update interval in steps.

    Raises:
        TypeError: a non-numeric argument, or a non-int ``every``.
        ValueError: a non-positive ``tau0``/``tau_min``, a negative or non-finite ``rate``,
            ``every < 1``.
    """

    tau0: float = 1.0
    rate: float = 1e-4
    tau_min: float = 0.5
    every: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau0", _positive_finite("tau0", self.tau0))
        object.__setattr__(self, "tau_min", _positive_finite("tau_min", self.tau_min))
        rate = self.rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise TypeError(f"rate must be a real number, got {rate!r}")
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"rate must be >= 0 and finite, got {rate!r}")
        object.__setattr__(self, "rate", float(rate))
        if isinstance(self.every, bool) or not isinstance(self.every, int):
            raise TypeError(f"every must be an int, got {self.every!r}")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")

    def __call__(self, step: int) -> float:
        t = _check_step(step) // self.every * self.every
        return max(self.tau_min, self.tau0 * math.exp(-self.rate * t))

    @property
    def lowest(self) -> float:
        # tau0 * exp(-r t) -> 0 as t grows when r > 0, so the floor is reached eventually
        return self.tau_min if self.rate > 0 else max(self.tau_min, self.tau0)
