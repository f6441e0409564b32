"""Gumbel-Softmax estimators: the relaxed sample and its straight-through form, arXiv:1611.01144."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..functional import gumbel_softmax
from ._base import PathwiseEstimator, TemperedEstimator, register
from ._pathwise import check_estimator_logits

__all__ = ["GumbelSoftmax", "StraightThroughGumbelSoftmax"]


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
