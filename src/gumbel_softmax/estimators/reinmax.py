r"""ReinMax: straight-through made second-order accurate by Heun's method (arXiv:2304.08612)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ._base import PathwiseEstimator, TemperedEstimator, register
from ._pathwise import check_estimator_logits, one_hot_sample, to_compute

__all__ = ["ReinMax"]


def _softmax_vjp(p: Tensor, g: Tensor) -> Tensor:
    r""":math:`(\mathrm{diag}\,p - p p^\top)\, g = p \odot (g - \langle g, p\rangle)`, last dim."""
    return p * (g - (g * p).sum(-1, keepdim=True))


class _ReinMaxFunction(torch.autograd.Function):
    """Forward: the one-hot ``sample``. Backward: ReinMax's gradient for ``logits``."""

    @staticmethod
    def forward(ctx, logits: Tensor, sample: Tensor, temperature: float) -> Tensor:  # type: ignore[override]
        pi0 = torch.softmax(logits, -1)
        pi1 = 0.5 * (sample + torch.softmax(logits / temperature, -1))
        ctx.save_for_backward(pi0, pi1)
        return sample.clone()

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        pi0, pi1 = ctx.saved_tensors
        return 2.0 * _softmax_vjp(pi1, g) - 0.5 * _softmax_vjp(pi0, g), None, None


@register("reinmax")
class ReinMax(TemperedEstimator, PathwiseEstimator):
    r"""ReinMax (Liu, Cheng, Gao, Lin & Han 2023, arXiv:2304.08612).

    The forward value is an exact sample :math:`D \sim \mathrm{Cat}(\pi_0)`,
    :math:`\pi_0 = \mathrm{softmax}(\theta)` (not tempered). With
    :math:`\pi_1 = \tfrac12\,(D + \mathrm{softmax}(\theta/\tau))`,
    :math:`J(p) = \mathrm{diag}(p) - p p^\top` and :math:`g = \nabla_z f(D)`,

    .. math:: \hat g_\theta = 2\, J(\pi_1)\, g \;-\; \tfrac12\, J(\pi_0)\, g .

    The exact gradient is :math:`\nabla_\theta \mathbb E f = \sum_{i,j} \pi_i \pi_j
    (f(I_i) - f(I_j))\, I_i` (:math:`I_i` the one-hot of class i). Straight-through's expectation
    replaces :math:`f(I_i) - f(I_j)` by Euler's (first-order)
    :math:`\nabla f(I_j)^\top (I_i - I_j)`; ReinMax's expectation (at :math:`\tau = 1`) by Heun's
    (trapezoidal, second-order) one, :math:`\tfrac12(\nabla f(I_i) + \nabla f(I_j))^\top
    (I_i - I_j)`, which is exact when ``f`` is quadratic in ``z``: at :math:`\tau = 1` ReinMax is
    then unbiased (our tests check this), and biased for other ``f``.

    When to use it: in place of straight-through or ST Gumbel-Softmax at the same cost (one
    evaluation of ``f``), especially when ``f`` is strongly curved. The authors recommend
    :math:`\tau \ge 1` (their reference code refuses smaller values, and so do we).

    Args:
        temperature: :math:`\tau \ge 1` of :math:`\pi_1`'s softmax.

    Shapes: ``logits`` ``(*batch, N, K)``; :meth:`sample` returns a one-hot tensor of that shape
    and dtype (16-bit inputs are computed in float32).

    The temperature is ``"scheduled"`` with ``min_temperature = 1``: a schedule that goes below
    1 is refused by :meth:`check_temperature` (a training loop checks its schedule's lowest value
    before the first step).

    Raises:
        ValueError: ``temperature < 1`` or not finite; non-floating, NaN, fewer than
        2-dimensional or all-masked ``logits`` (TypeError for a wrong type); ``f`` returning
        another shape than ``(*batch)``.
    """

    min_temperature: ClassVar[float] = 1.0

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__(temperature)

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        x = to_compute(check_estimator_logits(logits))
        hard = one_hot_sample(x, generator)
        z: Tensor = _ReinMaxFunction.apply(x, hard, self._temperature)
        return z.to(logits.dtype)

    def extra_repr(self) -> str:
        return f"temperature={self._temperature}"
