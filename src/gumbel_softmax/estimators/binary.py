r"""ARM and DisARM: antithetic, unbiased estimators for Bernoulli variables.

Both take the Bernoulli log-odds :math:`\alpha` and two antithetic samples driven by one uniform
:math:`u` per variable, and need no gradient of ``f`` (it may be a black box).

Input forms:

* default: ``logits`` of shape ``(*batch, N, 2)``, a two-class categorical; the log-odds are
  ``logits[..., 1] - logits[..., 0]`` and ``f`` receives one-hot samples ``(2, *batch, N, 2)``.
* ``log_odds=True``: ``logits`` of shape ``(*batch, N)`` are the log-odds themselves and ``f``
  receives samples in {0, 1} of shape ``(2, *batch, N)``.

The leading 2 stacks the antithetic pair; ``value`` is ``f`` at both, ``(2, *batch)``, and the
surrogate's gradient for parameters inside ``f`` is the mean of the two (each sample is an exact
Bernoulli draw, so that mean is unbiased).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._numerics import check_logits, compute_dtype, uniform_open, validation_enabled
from ._base import Estimator, EstimatorResult, LossFn, register
from ._score import call_f, inject_gradient

__all__ = ["ARM", "DisARM"]


class _Antithetic(Estimator):
    """Input handling and the surrogate the two share; subclasses give the log-odds gradient."""

    unbiased = True
    learning_signal = True
    binary_only = True

    def __init__(self, *, log_odds: bool = False) -> None:
        super().__init__()
        if not isinstance(log_odds, bool):
            raise TypeError(f"log_odds must be a bool, got {log_odds!r}")
        self.log_odds = log_odds

    def _alpha(self, logits: object) -> Tensor:
        name = self.registry_name  # type: ignore[attr-defined]
        x = check_logits(logits, validate=validation_enabled(None), min_dim=0)
        if self.log_odds:
            if x.dim() < 1:
                raise ValueError(
                    f"{name} with log_odds=True needs log-odds of shape (*batch, N), got a scalar"
                )
            return x
        if x.dim() < 2 or x.shape[-1] != 2:
            raise ValueError(
                f"{name} is binary-only: logits must have shape (*batch, N, 2) (K = 2 classes), "
                f"got shape {tuple(x.shape)}; pass log_odds=True for (*batch, N) log-odds"
            )
        return x[..., 1] - x[..., 0]

    def log_odds_gradient(self, alpha: Tensor, u: Tensor, f_pair: Tensor, pair: Tensor) -> Tensor:
        """The estimate for the log-odds, ``(*batch, N)``, from the uniforms ``u``."""
        raise NotImplementedError

    def pair(self, alpha: Tensor, noise: Tensor) -> Tensor:
        """The antithetic pair ``(2, *batch, N)`` in {0, 1} from logistic ``noise``."""
        raise NotImplementedError

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        if not callable(f):
            raise TypeError(f"f must be callable (z -> per-example loss), got {type(f).__name__}")
        alpha = self._alpha(logits)
        dt = compute_dtype(alpha.dtype)
        a = alpha.detach().to(dt)
        u = uniform_open(a.shape, dtype=dt, device=a.device, generator=generator)
        # logit(u): u < sigmoid(a)  <=>  logit(u) < a, exact at any |a| (no sigmoid rounding).
        noise = u.log() - torch.log1p(-u)
        pair = self.pair(a, noise)
        z = pair if self.log_odds else torch.stack([1 - pair, pair], -1)
        z = z.to(alpha.dtype)
        out = call_f(f, z, torch.Size((2, *alpha.shape[:-1])))
        grad = self.log_odds_gradient(a, u, out.detach().to(dt), pair)
        surrogate = out.mean(0) + inject_gradient(alpha, grad.to(alpha.dtype), (-1,))
        return EstimatorResult(surrogate, out.detach(), z)


@register("arm")
class ARM(_Antithetic):
    r"""Augment-REINFORCE-merge (Yin & Zhou 2019, arXiv:1807.11143).

    .. math:: \nabla_\alpha\,\mathbb E[f(b)] = \mathbb E_{u\sim U(0,1)^N}\Big[
              \big(f(\mathbb 1[u > \sigma(-\alpha)]) - f(\mathbb 1[u < \sigma(\alpha)])\big)
              \big(u - \tfrac12\big)\Big],

    one estimate per draw of :math:`u`, for all N log-odds at once. Unbiased, no learned parts,
    two evaluations of ``f``; low variance when the antithetic pair is correlated in ``f``. See
    the module docstring for the two accepted logits shapes.

    Raises:
        ValueError: logits not of shape ``(*batch, N, 2)`` (naming the shape), or a scalar with
            ``log_odds=True``; ``f`` returning another shape than ``(2, *batch)``.
    """

    def pair(self, alpha: Tensor, noise: Tensor) -> Tensor:
        # u > sigmoid(-alpha) <=> logit(u) > -alpha ; u < sigmoid(alpha) <=> logit(u) < alpha.
        return torch.stack([noise > -alpha, noise < alpha]).to(alpha.dtype)

    def log_odds_gradient(self, alpha: Tensor, u: Tensor, f_pair: Tensor, pair: Tensor) -> Tensor:
        return (f_pair[0] - f_pair[1]).unsqueeze(-1) * (u - 0.5)


@register("disarm")
class DisARM(_Antithetic):
    r"""DisARM (Dong, Mnih & Tucker 2020, arXiv:2006.10680): ARM with the augmenting
    uniforms integrated out.

    With the antithetic pair :math:`b = \mathbb 1[u < \sigma(\alpha)]`,
    :math:`\tilde b = \mathbb 1[1 - u < \sigma(\alpha)]`,

    .. math:: \hat g_n = \tfrac12\big(f(b) - f(\tilde b)\big)\,(-1)^{\tilde b_n}\,
              \mathbb 1[b_n \ne \tilde b_n]\,\sigma(|\alpha_n|),

    unbiased and never of higher variance than ARM (the paper's Rao-Blackwellisation); a
    variable whose two samples agree contributes nothing. Prefer it to ARM. See the module
    docstring for the two accepted logits shapes.

    Raises:
        ValueError: as :class:`ARM`.
    """

    def pair(self, alpha: Tensor, noise: Tensor) -> Tensor:
        # 1 - u < sigmoid(alpha) <=> logit(1 - u) = -logit(u) < alpha.
        return torch.stack([noise < alpha, -noise < alpha]).to(alpha.dtype)

    def log_odds_gradient(self, alpha: Tensor, u: Tensor, f_pair: Tensor, pair: Tensor) -> Tensor:
        b, b_tilde = pair[0], pair[1]
        sign = 1 - 2 * b_tilde  # (-1)^{b~}
        weight = sign * (b != b_tilde).to(alpha.dtype) * torch.sigmoid(alpha.abs())
        return 0.5 * (f_pair[0] - f_pair[1]).unsqueeze(-1) * weight
