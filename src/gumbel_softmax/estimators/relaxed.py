"""Gumbel-Softmax estimators: the relaxed sample and its straight-through form, arXiv:1611.01144,
and the straight-through form with decoupled forward and backward temperatures, arXiv:2410.13331."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._numerics import upcast
from ..functional import gumbel_softmax
from ._base import PathwiseEstimator, TemperedEstimator, positive_float, register
from ._pathwise import check_estimator_logits

__all__ = ["DecoupledStraightThroughGumbelSoftmax", "GumbelSoftmax", "StraightThroughGumbelSoftmax"]


@register("gs", "gumbel-softmax", "concrete")
class GumbelSoftmax(TemperedEstimator, PathwiseEstimator):
    r"""Gumbel-Softmax (Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017), arXiv:1611.01144.

    :math:`z = \mathrm{softmax}((\log\alpha + G)/\tau)`, and the gradient is
    :math:`\nabla_\theta f(z)`: biased for :math:`\mathbb E f(\text{one-hot})` unless ``f`` is
    linear; the bias falls and the variance grows as :math:`\tau \to 0`. ``f`` sees relaxed
    samples, so use it where ``f`` is defined on the simplex.

    Args:
        temperature: :math:`\tau > 0` (the initial value when learned).
        learn_temperature: make :math:`\tau = \exp(\lambda)` a learned ``nn.Parameter``
            ``log_temperature`` (Jang et al. 2017 note that a learned temperature acts like an
            entropy regulariser). It receives its gradient from the same
            ``surrogate.backward()`` as the model, so add ``estimator.parameters()`` to the
            optimiser. For ``gs`` that gradient
            minimises the relaxed objective :math:`\mathbb E f(y_\tau)`; for ``st-gs`` it is the
            straight-through gradient through the relaxed sample only.

    The temperature is ``"scheduled"``: a training loop sets ``est.temperature =
    schedule(step)``; a learned one cannot be set (it is a parameter).

    Raises:
        TypeError / ValueError: a non-float or non-positive ``temperature``, a non-bool
        ``learn_temperature``; non-floating, NaN, fewer than 2-dimensional or all-masked
        ``logits``; ``f`` returning another shape than ``(*batch)``.
    """

    evaluates_relaxed: ClassVar[bool] = True
    learnable_temperature: ClassVar[bool] = True

    def __init__(self, temperature: float = 1.0, *, learn_temperature: bool = False) -> None:
        super().__init__(temperature)
        if not isinstance(learn_temperature, bool):
            raise TypeError(f"learn_temperature must be a bool, got {learn_temperature!r}")
        self.learn_temperature = learn_temperature
        if learn_temperature:
            # log-parametrised so that gradient steps keep it positive
            self.log_temperature = nn.Parameter(torch.tensor(math.log(self._temperature)))

    @property
    def temperature(self) -> float | Tensor:
        """The temperature: a float, or a 0-d tensor with gradient when it is learned."""
        if self.learn_temperature:
            return self.log_temperature.exp()
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if self.learn_temperature:
            raise ValueError(
                f"{self.registry_name}'s temperature is learned (learn_temperature=True) and "
                "cannot be set; drop learn_temperature to drive it from a schedule"
            )
        self._temperature = self.check_temperature(value)

    def get_extra_state(self) -> dict[str, Any]:
        return {"temperature": self._temperature, "learned": self.learn_temperature}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if bool(state.get("learned", False)) != self.learn_temperature:
            raise ValueError(
                f"state_dict has learn_temperature={state.get('learned')}, this estimator "
                f"{self.learn_temperature}"
            )
        self._temperature = self.check_temperature(state["temperature"])

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return gumbel_softmax(check_estimator_logits(logits), self.temperature, generator=generator)

    def extra_repr(self) -> str:
        t = self._temperature
        if self.learn_temperature:
            t = float(self.log_temperature.detach().exp())
        return f"temperature={t:.4g}, learn_temperature={self.learn_temperature}"


@register("st-gs", "straight-through-gumbel-softmax")
class StraightThroughGumbelSoftmax(GumbelSoftmax):
    r"""Straight-through Gumbel-Softmax (Jang et al. 2017, arXiv:1611.01144).

    The forward sample is the exact one-hot :math:`\arg\max(\log\alpha + G)`; the backward is that
    of the relaxed sample at temperature :math:`\tau`. ``f`` only ever sees discrete samples.
    """

    evaluates_relaxed: ClassVar[bool] = False

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        x = check_estimator_logits(logits)
        return gumbel_softmax(x, self.temperature, hard=True, generator=generator)


@register("decoupled-st-gs", "decoupled-straight-through-gumbel-softmax")
class DecoupledStraightThroughGumbelSoftmax(TemperedEstimator, PathwiseEstimator):
    r"""Straight-through Gumbel-Softmax with decoupled forward and backward temperatures
    (Shah, Yan, Mozer & Liu 2024, arXiv:2410.13331).

    .. math:: v = \theta/\tau_f + G, \qquad z = \mathrm{onehot}(\arg\max_k v_k)
              \sim \mathrm{Cat}\big(\mathrm{softmax}(\theta/\tau_f)\big), \qquad
              \frac{\partial z}{\partial\theta} := \frac{\partial}{\partial\theta}
              \mathrm{softmax}(v/\tau_b),

    with :math:`G` i.i.d. Gumbel(0, 1): ST-GS of the tempered logits :math:`\theta/\tau_f` at the
    relaxation temperature :math:`\tau_b`. The forward temperature :math:`\tau_f` sets how random
    the discrete forward sample is (exploration; :math:`\tau_f > 1` flattens the categorical the
    forward pass draws from, :math:`\tau_f < 1` sharpens it); the backward temperature
    :math:`\tau_b` sets how the gradient spreads over the classes. With :math:`\tau_f = 1` it is
    ``st-gs`` at :math:`\tau = \tau_b` (the same samples and gradients, tested).

    Our reading of the paper, stated because the formula matters: a temperature that divided
    logits and noise alike would leave the argmax, hence the forward pass, unchanged, so
    :math:`\tau_f` divides the logits only (as in relaxit's implementation); the backward
    relaxation is that of the same perturbed vector :math:`v`, so the forward sample is always
    its argmax. relaxit's backward, :math:`\mathrm{softmax}(\theta/\tau_b + G)`, relaxes a
    different categorical from the one sampled, and we do not follow it.

    Biased for :math:`\mathbb E_{q_\theta} f` (straight-through), and for :math:`\tau_f \ne 1`
    the forward samples are not from :math:`q_\theta = \mathrm{softmax}(\theta)` but from the
    tempered categorical, which is the point of the method.

    Temperatures: ``temperature`` is :math:`\tau_b`, declared ``"scheduled"`` like ``st-gs``'s
    (a training loop sets ``est.temperature = schedule(step)``); ``forward_temperature`` is
    :math:`\tau_f`, listed in ``extra_temperatures``: equally settable (``est.forward_temperature
    = schedule_f(step)``) and validated, both saved in ``state_dict()``.

    Args:
        temperature: :math:`\tau_b > 0`.
        forward_temperature: :math:`\tau_f > 0` (default 1).

    Raises:
        TypeError / ValueError: a non-float or non-positive temperature; non-floating, NaN, fewer
        than 2-dimensional or all-masked ``logits``; ``f`` returning another shape.
    """

    extra_temperatures: ClassVar[tuple[str, ...]] = ("forward_temperature",)

    def __init__(self, temperature: float = 1.0, *, forward_temperature: float = 1.0) -> None:
        super().__init__(temperature)
        self._forward_temperature = positive_float(forward_temperature, "forward_temperature")

    @property
    def forward_temperature(self) -> float:
        r"""The forward temperature :math:`\tau_f`."""
        return self._forward_temperature

    @forward_temperature.setter
    def forward_temperature(self, value: float) -> None:
        self._forward_temperature = positive_float(value, "forward_temperature")

    def get_extra_state(self) -> dict[str, Any]:
        return {"temperature": self._temperature, "forward_temperature": self._forward_temperature}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        backward = self.check_temperature(state["temperature"])
        self._forward_temperature = positive_float(
            state["forward_temperature"], "forward_temperature"
        )
        self._temperature = backward

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        x = check_estimator_logits(logits)
        # in float32 for 16-bit logits: 1e4 / tau_f = 1e7 overflows float16
        tempered = upcast(x) / self._forward_temperature
        z = gumbel_softmax(tempered, self._temperature, hard=True, generator=generator)
        return z.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"temperature={self._temperature:.4g}, "
            f"forward_temperature={self._forward_temperature:.4g}"
        )
