"""Pieces the pathwise estimators share: input checks, the exact one-hot draw, and the
"values with the gradient of the logits" construction used by Gumbel-Rao and GST."""

from __future__ import annotations

import torch
from torch import Tensor

from .._numerics import check_logits, upcast, validation_enabled
from ..functional import sample_categorical

__all__ = ["check_estimator_logits", "one_hot_sample", "to_compute", "with_logits_gradient"]


def check_estimator_logits(logits: object) -> Tensor:
    """``logits`` must be a floating tensor of shape ``(*batch, N, K)`` (N variables, K classes).

    NaN and all-masked rows are rejected by the sampler when validation is on.
    """
    logits = check_logits(logits, validate=False)
    if logits.dim() < 2:
        raise ValueError(
            "logits must have shape (*batch, N, K) (N variables of K classes), "
            f"got shape {tuple(logits.shape)}"
        )
    return logits


def one_hot_sample(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """An exact one-hot categorical draw from ``softmax(x)`` over the last dim, by Gumbel-max."""
    return sample_categorical(
        x.detach(), one_hot=True, generator=generator, validate_args=validation_enabled(None)
    )


def to_compute(logits: Tensor) -> Tensor:
    """``logits`` in the dtype we compute in (float32 for 16-bit inputs), by the saturating
    :func:`~gumbel_softmax._numerics.upcast`: a float32 gradient beyond the 16-bit range (ST at
    tau = 1e-3) comes back as ``finfo.max``, not ``inf``."""
    return upcast(logits)


def with_logits_gradient(values: Tensor, logits: Tensor) -> Tensor:
    r"""``values`` (taken as constants) plus :math:`\theta - \mathrm{sg}(\theta)`.

    The value is ``values`` bit for bit (adding an exact zero), the Jacobian with respect to
    ``logits`` is the identity: this is "perturbed logits :math:`\theta + \mathrm{sg}(G)`" without
    forming the noise :math:`G = \text{values} - \theta`, which would cost the precision of
    ``values`` at logits of size 1e4 and be NaN at ``-inf`` masks (where the shift is set to 0).
    """
    shift = torch.where(torch.isfinite(logits), logits - logits.detach(), 0.0)
    return values.detach() + shift
