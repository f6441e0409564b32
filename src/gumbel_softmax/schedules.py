r"""Temperature schedules: small pure objects mapping a training step to a temperature.

A schedule holds no state beyond its constructor arguments, so resuming a run only needs the step:
``schedule(step)`` is the temperature to use at global step ``step`` (0-based).

The annealing schedule is the one of Jang, Gu & Poole (arXiv:1611.01144, Section 4.3):
:math:`\tau_t = \max(\tau_{\min}, \tau_0 \exp(-r\, t'))` with :math:`t'` the step rounded down to a
multiple of the update interval :math:`N` (the paper updates :math:`\tau` every :math:`N` steps,
:math:`N \in \{500, 1000\}`, :math:`r \in \{10^{-5}, 10^{-4}\}`, :math:`\tau_{\min} = 0.5`).

The inverse-temperature schedules are RelGAN's (Nie, Narodytska & Patel 2019, ICLR,
"RelGAN: Relational Generative Adversarial Networks for Text Generation"): the inverse
temperature :math:`\beta = 1/\tau` grows from 1 to :math:`\beta_{\max}` over the adversarial
training, :class:`InverseTemperatureAnneal`.

The slope schedule is Chung, Ahn & Bengio's (arXiv:1609.01704, the "slope annealing trick") for
slope-annealed straight-through, whose temperature is the inverse of its slope: the slope grows
linearly with the epoch up to a cap, :class:`SlopeAnneal`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Constant", "ExponentialAnneal", "InverseTemperatureAnneal", "Schedule", "SlopeAnneal"]


def _positive_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def _nonnegative_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return float(value)


def _at_least_one(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


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
        object.__setattr__(self, "rate", _nonnegative_finite("rate", self.rate))
        _at_least_one("every", self.every)

    def __call__(self, step: int) -> float:
        t = _check_step(step) // self.every * self.every
        return max(self.tau_min, self.tau0 * math.exp(-self.rate * t))

    @property
    def lowest(self) -> float:
        # tau0 * exp(-r t) -> 0 as t grows when r > 0, so the floor is reached eventually
        return self.tau_min if self.rate > 0 else max(self.tau_min, self.tau0)


_INVERSE_KINDS = ("exp", "lin", "log", "quad", "sigmoid")


@dataclass(frozen=True)
class InverseTemperatureAnneal(Schedule):
    r"""RelGAN's inverse-temperature schedules: :math:`\tau_t = 1/\beta_t`, :math:`\beta_t` rising
    from 1 at step 0 to :math:`\beta_{\max}` at step :math:`N` (``steps``) and kept there, with
    :math:`u = \min(t, N)/N`:

    .. math::
        \beta^{\text{exp}} = \beta_{\max}^{u}, \quad
        \beta^{\text{lin}} = 1 + (\beta_{\max} - 1)\,u, \quad
        \beta^{\text{quad}} = 1 + (\beta_{\max} - 1)\,u^2,

    .. math::
        \beta^{\text{log}} = 1 + (\beta_{\max} - 1)\,\frac{\log(1 + t')}{\log(1 + N)}, \quad
        \beta^{\text{sigmoid}} = 1 + (\beta_{\max} - 1)\,\sigma\bigl(20\,(u - \tfrac12)\bigr),

    :math:`t' = \min(t, N)`. Nie, Narodytska & Patel (ICLR 2019, section 2.3) use ``exp`` with
    :math:`\beta_{\max} \in \{1, 10, 100, 1000\}` over the whole adversarial training; a larger
    :math:`\beta_{\max}` gave more diverse and less accurate samples. The sigmoid one starts at
    :math:`1 + (\beta_{\max}-1)\sigma(-10)`, not exactly 1 (as theirs does).

    Args:
        beta_max: :math:`\beta_{\max} \ge 1`; the lowest temperature is :math:`1/\beta_{\max}`.
        steps: :math:`N \ge 1`, the step at which :math:`\beta_{\max}` is reached.
        kind: ``"exp"``, ``"lin"``, ``"log"``, ``"quad"`` or ``"sigmoid"``.

    Raises:
        TypeError: a non-numeric ``beta_max``, a non-int ``steps``.
        ValueError: ``beta_max < 1`` or not finite, ``steps < 1``, an unknown ``kind``.
    """

    beta_max: float = 100.0
    steps: int = 5000
    kind: str = "exp"

    def __post_init__(self) -> None:
        beta = _positive_finite("beta_max", self.beta_max)
        if beta < 1:
            raise ValueError(f"beta_max must be >= 1, got {self.beta_max!r}")
        object.__setattr__(self, "beta_max", beta)
        _at_least_one("steps", self.steps)
        if self.kind not in _INVERSE_KINDS:
            raise ValueError(f"kind must be one of {list(_INVERSE_KINDS)}, got {self.kind!r}")

    def beta(self, step: int) -> float:
        r"""The inverse temperature :math:`\beta_t` at ``step``."""
        t = min(_check_step(step), self.steps)
        u, b = t / self.steps, self.beta_max
        if self.kind == "exp":
            return float(b**u)
        if self.kind == "lin":
            return 1 + (b - 1) * u
        if self.kind == "quad":
            return 1 + (b - 1) * u * u
        if self.kind == "log":
            return 1 + (b - 1) * math.log1p(t) / math.log1p(self.steps)
        return 1 + (b - 1) / (1 + math.exp(-20 * (u - 0.5)))

    def __call__(self, step: int) -> float:
        return 1.0 / self.beta(step)

    @property
    def lowest(self) -> float:
        # every kind is non-decreasing in t and reaches beta_max at t = N (sigmoid: just below)
        return 1.0 / self.beta(self.steps)


@dataclass(frozen=True)
class SlopeAnneal(Schedule):
    r"""The slope annealing of Chung, Ahn & Bengio (arXiv:1609.01704): the slope
    :math:`\alpha = 1/\tau` of a straight-through surrogate grows linearly in the epoch up to a
    cap,

    .. math:: \tau_t = 1/\alpha_t, \qquad
              \alpha_t = \min\bigl(\alpha_{\max},\ \alpha_0 + r\, t / E\bigr),

    with :math:`E` the steps of an epoch. Chung et al. use :math:`\alpha_0 = 1`, :math:`r = 0.04`
    per epoch and :math:`\alpha_{\max} = 5` (reached at epoch 100), raising it once per epoch;
    here it rises at every step (``t / E`` is the fractional epoch), so a run resumed mid-epoch
    or shorter than an epoch anneals too.

    Args:
        slope0: :math:`\alpha_0 > 0`, the slope at step 0.
        rate: :math:`r \ge 0`, the slope added per epoch (``0`` keeps :math:`\alpha_0`).
        slope_max: :math:`\alpha_{\max} \ge \alpha_0`, the cap.
        steps_per_epoch: :math:`E \ge 1`.

    Raises:
        TypeError: a non-numeric argument, a non-int ``steps_per_epoch``.
        ValueError: a non-positive ``slope0``, a negative or non-finite ``rate``, ``slope_max``
            below ``slope0`` or not finite, ``steps_per_epoch < 1``.
    """

    slope0: float = 1.0
    rate: float = 0.04
    slope_max: float = 5.0
    steps_per_epoch: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "slope0", _positive_finite("slope0", self.slope0))
        object.__setattr__(self, "slope_max", _positive_finite("slope_max", self.slope_max))
        if self.slope_max < self.slope0:
            raise ValueError(
                f"slope_max must be >= slope0 ({self.slope0!r}), got {self.slope_max!r}"
            )
        object.__setattr__(self, "rate", _nonnegative_finite("rate", self.rate))
        _at_least_one("steps_per_epoch", self.steps_per_epoch)

    def slope(self, step: int) -> float:
        r"""The slope :math:`\alpha_t` at ``step``."""
        t = _check_step(step)
        return min(self.slope_max, self.slope0 + self.rate * t / self.steps_per_epoch)

    def __call__(self, step: int) -> float:
        return 1.0 / self.slope(step)

    @property
    def lowest(self) -> float:
        # the slope is non-decreasing and reaches slope_max when rate > 0
        return 1.0 / (self.slope_max if self.rate > 0 else self.slope0)
