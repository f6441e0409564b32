r"""The invertible Gaussian reparameterisation (IGR) onto the simplex.

Potapczynski, Loaiza-Ganem & Cunningham, *Invertible Gaussian Reparameterization: Revisiting the
Gumbel-Softmax* (NeurIPS 2020, arXiv:1912.09588), section 3.1 ("IGR-I"). A Gaussian
:math:`Z \sim \mathcal N(\mu, \operatorname{diag}\sigma^2)` in :math:`\mathbb R^{K-1}` is sent to
the simplex of K categories by the invertible softmax++ with temperature :math:`\tau` and
:math:`\delta > 0`,

.. math:: Y_k = \frac{e^{Z_k/\tau}}{\sum_{j=1}^{K-1} e^{Z_j/\tau} + \delta}\ (k < K), \qquad
          Y_K = \frac{\delta}{\sum_{j=1}^{K-1} e^{Z_j/\tau} + \delta},

a bijection of :math:`\mathbb R^{K-1}` onto the open simplex. Because it is invertible, the
density has a closed form by change of variables, and the KL between two IGRs of the same
:math:`\tau, \delta` is the KL between their Gaussians (eq. 5 of the paper), which removes the
Monte Carlo noise of the Concrete's KL estimates.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.distributions import constraints, register_kl

from .._numerics import (
    compute_dtype,
    downcast,
    require,
    standard_normal,
    upcast,
    validation_enabled,
)
from ._base import RelaxedDistribution, temperature_and_batch
from .concrete import positive_finite, simplex

__all__ = ["IGR"]


def _floating(name: str, v: object) -> Tensor:
    if not isinstance(v, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {v.dtype}; convert with .float()")
    if v.dim() < 1:
        raise ValueError(f"{name} must have at least one dimension (K - 1), got a scalar")
    return v


def _check_gaussian(loc: object, scale: object) -> tuple[Tensor, Tensor]:
    m, s = _floating("loc", loc), _floating("scale", scale)
    if m.dtype != s.dtype:
        raise TypeError(f"loc and scale must have the same dtype, got {m.dtype} and {s.dtype}")
    if m.shape[-1] != s.shape[-1]:
        raise ValueError(
            f"loc and scale must have the same last dimension (K - 1), got loc of shape "
            f"{tuple(m.shape)} and scale of shape {tuple(s.shape)}"
        )
    try:
        m, s = torch.broadcast_tensors(m, s)
    except RuntimeError:
        raise ValueError(
            f"loc of shape {tuple(m.shape)} and scale of shape {tuple(s.shape)} do not broadcast"
        ) from None
    return m, s


def _check_delta(delta: object) -> float:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)):
        raise TypeError(f"delta must be a float, got {delta!r}")
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be positive and finite, got {delta!r}")
    return float(delta)


class IGR(RelaxedDistribution):
    r"""The IGR distribution on the simplex of K categories (IGR-I, arXiv:1912.09588).

    :math:`Y = \mathrm{softmax}^{++}_{\tau,\delta}(Z)`,
    :math:`Z = \mu + \sigma \odot \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I_{K-1})`;
    in log space :math:`\log Y = (Z/\tau, \log\delta) - \operatorname{LSE}(Z/\tau, \log\delta)`.
    The inverse is :math:`z_k = \tau(\log y_k - \log y_K + \log\delta)`, whose Jacobian
    :math:`\tau(\operatorname{diag}(1/y_{1:K-1}) + \mathbf 1\mathbf 1^\top / y_K)` has determinant
    :math:`\tau^{K-1}/\prod_{k=1}^{K} y_k`, so the log-density with respect to the Lebesgue
    measure on the first K - 1 coordinates (as for :class:`Concrete`) is

    .. math:: \log p(y) = \sum_{k=1}^{K-1} \log\mathcal N(z_k;\ \mu_k, \sigma_k^2)
              + (K-1)\log\tau - \sum_{k=1}^{K}\log y_k .

    KL (``torch.distributions.kl_divergence``) between two IGRs of the same :math:`\tau` and
    :math:`\delta` is :math:`\sum_k \mathrm{KL}(\mathcal N(\mu_k,\sigma_k^2) \,\|\,
    \mathcal N(\mu'_k,\sigma'^2_k))`, since KL is invariant under the shared bijection.

    As :math:`\tau \to 0` the samples approach the vertex :math:`\arg\max(Z_1, \dots, Z_{K-1}, 0)`;
    unlike the Concrete, those vertex probabilities have no closed form in :math:`\mu, \sigma`.

    Args:
        temperature: :math:`\tau > 0`, float or tensor broadcastable with the batch shape.
        loc: ``(*batch, K-1)`` the Gaussian's mean :math:`\mu`.
        scale: ``(*batch, K-1)`` its standard deviations :math:`\sigma > 0` (same dtype).
        delta: :math:`\delta > 0` of softmax++ (default 1, as in the paper).
        validate_args: check the parameters and ``log_prob``'s values (on unless False; on
            CUDA queued on the device unless True, see :func:`~gumbel_softmax._numerics.require`).

    Raises:
        TypeError: non-tensor or non-floating ``loc`` / ``scale``, dtypes that differ, a bad
        ``temperature`` or ``delta`` type. ValueError: a non-positive or non-finite
        ``temperature`` or ``delta``, last dimensions that differ, and (when validating)
        NaN ``loc`` or non-positive ``scale``.

    Numerics: 16-bit parameters compute in float32; sampling is a log-softmax, finite for
    :math:`|\mu|/\tau` up to ~1e38. Sample coordinates are clamped to ``finfo.tiny`` (as for
    :class:`Concrete`) so that ``log_prob`` of the distribution's own samples stays finite.
    """

    arg_constraints = {
        "temperature": positive_finite,
        "loc": constraints.real_vector,
        "scale": constraints.independent(constraints.positive, 1),
    }
    support = simplex
    _by_keyword = "{0}(temperature, loc=..., scale=...)"

    def __init__(
        self,
        temperature: float | Tensor,
        *,
        loc: Tensor,
        scale: Tensor,
        delta: float = 1.0,
        validate_args: bool | None = None,
    ) -> None:
        loc, scale = _check_gaussian(loc, scale)
        self.delta = _check_delta(delta)
        strict = validate_args is True
        if validation_enabled(validate_args):  # no host synchronisation (see require)
            loc = require(loc, "not_nan", name="loc", strict=strict)
            scale = require(scale, "positive_finite", name="scale", strict=strict)
        tau, batch_shape = temperature_and_batch(
            temperature, loc, name="loc", event_dims=1, strict=strict
        )
        full = batch_shape + loc.shape[-1:]
        self.loc, self.scale = loc.expand(full), scale.expand(full)
        self.temperature = tau.to(loc.dtype).expand(batch_shape)
        # Computation uses the parameters in the compute dtype (cast once, see _numerics.upcast).
        self._loc, self._scale = upcast(self.loc), upcast(self.scale)
        self._tau = upcast(tau).to(self._loc.dtype).expand(batch_shape)
        self._init_checked(batch_shape, torch.Size([loc.shape[-1] + 1]), validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Any:
        new = self._get_checked_instance(IGR, _instance)
        batch_shape = torch.Size(batch_shape)
        full = batch_shape + self.loc.shape[-1:]
        new.delta = self.delta
        new.loc, new.scale = self.loc.expand(full), self.scale.expand(full)
        new._loc, new._scale = self._loc.expand(full), self._scale.expand(full)
        new.temperature, new._tau = (
            self.temperature.expand(batch_shape),
            self._tau.expand(batch_shape),
        )
        new._init_checked(batch_shape, self.event_shape, self._validate_args_given)
        return new

    def _log_softmax_pp(self, z: Tensor) -> Tensor:
        """:math:`\\log\\mathrm{softmax}^{++}(z)`, ``(..., K-1) -> (..., K)``, in log space."""
        w = z / self._tau.unsqueeze(-1)
        w = torch.cat([w, w.new_full((*w.shape[:-1], 1), math.log(self.delta))], -1)
        return torch.log_softmax(w, -1)

    def rsample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        eps = standard_normal(
            shape, dtype=self._loc.dtype, device=self._loc.device, generator=generator
        )
        y = self._log_softmax_pp(self._loc + self._scale * eps).exp().to(self.loc.dtype)
        return y.clamp(min=torch.finfo(y.dtype).tiny)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            value = self._checked_sample(value)
        dt = compute_dtype(value.dtype)
        # A 0 coordinate (a vertex) is read as the clamped one rsample would give.
        log_y = value.to(dt).clamp(min=torch.finfo(value.dtype).tiny).log()
        tau = self._tau.unsqueeze(-1)
        z = tau * (log_y[..., :-1] - log_y[..., -1:] + math.log(self.delta))
        k1 = self.loc.shape[-1]
        gauss = -0.5 * ((z - self._loc) / self._scale) ** 2 - self._scale.log()
        log_p = (
            gauss.sum(-1) - 0.5 * k1 * math.log(2 * math.pi) + k1 * self._tau.log() - log_y.sum(-1)
        )
        return downcast(log_p, self.loc.dtype)


@register_kl(IGR, IGR)
def _kl_igr(p: IGR, q: IGR) -> Tensor:
    if p.delta != q.delta or not torch.equal(*torch.broadcast_tensors(p._tau, q._tau)):
        raise NotImplementedError(
            "KL between IGRs of different temperature or delta has no closed form (their "
            "bijections differ); use gumbel_softmax.distributions.mc_kl(p, q, num_samples=...)"
        )
    var_ratio = (p._scale / q._scale) ** 2
    t = ((p._loc - q._loc) / q._scale) ** 2
    kl = 0.5 * (var_ratio + t - 1 - var_ratio.log())
    return downcast(kl.sum(-1), p.loc.dtype)
