"""Gumbel-Softmax estimators: the relaxed sample and its straight-through form (arXiv:1611.01144)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..functional import gumbel_softmax
from ._base import PathwiseEstimator, register

__all__ = ["GumbelSoftmax", "StraightThroughGumbelSoftmax"]


@register("gs", "gumbel-softmax", "concrete")
class GumbelSoftmax(PathwiseEstimator):
    r"""Gumbel-Softmax (Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017), arXiv:1611.01144.

    :math:`z = \mathrm{softmax}((\log\alpha + G)/\tau)`, and the gradient is
    :math:`\nabla_\theta f(z)`: biased for :math:`\mathbb E f(\text{one-hot})` unless ``f`` is
    linear; the bias falls and the variance grows as :math:`\tau \to 0`. ``f`` sees relaxed
    samples, so use it where ``f`` is defined on the simplex.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return gumbel_softmax(logits, self.temperature, generator=generator)


@register("st-gs", "straight-through-gumbel-softmax")
class StraightThroughGumbelSoftmax(GumbelSoftmax):
    r"""Straight-through Gumbel-Softmax (Jang et al. 2017, arXiv:1611.01144).

    The forward sample is the exact one-hot :math:`\arg\max(\log\alpha + G)`; the backward is that
    of the relaxed sample at temperature :math:`\tau`. ``f`` only ever sees discrete samples.
    """

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return gumbel_softmax(logits, self.temperature, hard=True, generator=generator)
