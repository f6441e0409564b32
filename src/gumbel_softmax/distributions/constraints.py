r"""The constraints the relaxed distributions declare, registered with torch's ``transform_to`` and
``biject_to`` (so that, e.g., a temperature can be a constrained parameter in Pyro:
``pyro.param("tau", torch.tensor(1.0), constraint=positive_finite)``).

=================== ====================================== =========================================
constraint          ``transform_to`` / ``biject_to``       used by
=================== ====================================== =========================================
``positive_finite`` ``ExpTransform`` (as torch's positive)  every ``temperature``
``simplex``         ``SoftmaxTransform`` /                  ``Concrete`` support, ``probs``
                    ``StickBreakingTransform`` (torch's)
``log_simplex``     :class:`LogSoftmaxLastZeroTransform`    ``ExpConcrete`` support
=================== ====================================== =========================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import biject_to, constraints, transform_to
from torch.distributions.transforms import (
    ExpTransform,
    SoftmaxTransform,
    StickBreakingTransform,
    Transform,
)

__all__ = ["LogSoftmaxLastZeroTransform", "log_simplex", "positive_finite", "simplex"]


class _PositiveFinite(constraints.Constraint):
    """Positive and finite (a temperature)."""

    def check(self, value: Tensor) -> Tensor:
        return torch.isfinite(value) & (value > 0)

    def __repr__(self) -> str:
        return "PositiveFinite()"


positive_finite = _PositiveFinite()


class _LogSimplex(constraints.Constraint):
    """Vectors ``y`` with ``logsumexp(y) = 0`` along the last dimension (``exp(y)`` on the simplex)."""

    event_dim = 1

    def check(self, value: Tensor) -> Tensor:
        # Rounding each coordinate to the dtype moves the LSE by up to about K * eps.
        tol = max(1e-3, 4 * value.shape[-1] * torch.finfo(value.dtype).eps)
        lse = torch.logsumexp(value.float(), -1)
        return (~torch.isnan(value)).all(-1) & (lse.abs() <= tol)

    def __repr__(self) -> str:
        return "LogSimplex()"


log_simplex = _LogSimplex()


class _SimplexOrFace(constraints.Constraint):
    """The probability simplex (float tolerance scaled to the dtype and K)."""

    event_dim = 1

    def check(self, value: Tensor) -> Tensor:
        tol = 4 * value.shape[-1] * torch.finfo(value.dtype).eps
        return (value >= 0).all(-1) & ((value.sum(-1) - 1).abs() <= max(tol, 1e-6))

    def __repr__(self) -> str:
        return "Simplex()"


simplex = _SimplexOrFace()


class LogSoftmaxLastZeroTransform(Transform):
    r"""The bijection :math:`w \in \mathbb R^{K-1} \mapsto y = \operatorname{log\,softmax}(w, 0)`
    onto the log-simplex :math:`\{y \in \mathbb R^K : \operatorname{LSE}(y) = 0\}`.

    Its inverse is :math:`w_k = y_k - y_K`. The log-density of :class:`ExpConcrete` is a density
    of exactly these coordinates :math:`w` with respect to the Lebesgue measure on
    :math:`\mathbb R^{K-1}` (Maddison et al. 2017, arXiv:1611.00712, appendix C.3), so the
    log-Jacobian this transform reports is 0, and ``log_prob(t(w)) + t.log_abs_det_jacobian(w, y)``
    is the density of :math:`w` (tested by integrating it to 1). Computed in log space: nothing
    underflows, unlike a stick-breaking map followed by ``log``.
    """

    domain = constraints.real_vector
    codomain = log_simplex
    bijective = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogSoftmaxLastZeroTransform)

    def _call(self, x: Tensor) -> Tensor:
        return torch.log_softmax(F.pad(x, [0, 1]), -1)

    def _inverse(self, y: Tensor) -> Tensor:
        return y[..., :-1] - y[..., -1:]

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return x.new_zeros(x.shape[:-1])

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        if len(shape) < 1:
            raise ValueError("too few dimensions on input")
        return torch.Size((*shape[:-1], shape[-1] + 1))

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        if len(shape) < 1:
            raise ValueError("too few dimensions on input")
        return torch.Size((*shape[:-1], shape[-1] - 1))


@transform_to.register(_PositiveFinite)
@biject_to.register(_PositiveFinite)
def _exp(constraint: constraints.Constraint) -> Transform:
    # exp maps R onto (0, inf); it overflows only beyond log(finfo.max) (tau > 3e38 in float32).
    return ExpTransform()


@transform_to.register(_SimplexOrFace)
def _softmax(constraint: constraints.Constraint) -> Transform:
    return SoftmaxTransform()


@biject_to.register(_SimplexOrFace)
def _stick_breaking(constraint: constraints.Constraint) -> Transform:
    return StickBreakingTransform()


@transform_to.register(_LogSimplex)
@biject_to.register(_LogSimplex)
def _log_softmax_last_zero(constraint: constraints.Constraint) -> Transform:
    return LogSoftmaxLastZeroTransform()
