r"""KL divergences between relaxed distributions: closed forms where they exist, Monte Carlo else.

The only closed form among these families is between two binary Concretes of the *same*
temperature: in logit space they are logistic distributions of equal scale :math:`1/\tau` and
locations :math:`\log\alpha_i/\tau`, and with :math:`\delta = \log\alpha_p - \log\alpha_q`

.. math:: \mathrm{KL}(p\,\|\,q) = \delta\coth(\delta/2) - 2,

independent of :math:`\tau` (derived from :math:`\mathbb E[\mathrm{softplus}(W + c)] =
c/(1 - e^{-c})` for standard logistic :math:`W`). Infinite log-odds (point masses) give 0
between equal ones and :math:`+\infty` otherwise. KL is invariant under the bijection
:math:`\sigma`, so the same value holds for :class:`BinaryConcrete`. Everything else (two
Concretes, different temperatures) has no closed form: use :func:`mc_kl`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution, register_kl

from .binary import BinaryConcrete, LogitBinaryConcrete
from .concrete import Concrete, ExpConcrete

__all__ = ["logistic_kl", "mc_kl"]


def logistic_kl(delta: Tensor) -> Tensor:
    r""":math:`\delta\coth(\delta/2) - 2`, the KL between logistics of equal scale, stably.

    For :math:`|\delta| < 1` the difference with 2 cancels, so the Taylor series
    :math:`\delta^2/6 - \delta^4/360 + \delta^6/15120 - \delta^8/604800 + \delta^{10}/23950080`
    is used (truncation error below :math:`10^{-8}` relative); elsewhere
    :math:`|\delta|(1 + e^{-|\delta|})/(1 - e^{-|\delta|}) - 2`.
    """
    a = delta.abs()
    big = a * (1 + torch.exp(-a)) / -torch.expm1(-a.clamp(min=1.0)) - 2
    d2 = delta * delta
    small = d2 * (1 / 6 - d2 * (1 / 360 - d2 * (1 / 15120 - d2 * (1 / 604800 - d2 / 23950080))))
    return torch.where(a < 1, small, big)


def _same_temperature(p: Distribution, q: Distribution) -> None:
    if not torch.equal(*torch.broadcast_tensors(p.temperature, q.temperature)):  # type: ignore[attr-defined]
        raise NotImplementedError(
            "KL between binary Concretes of different temperatures has no closed form; "
            "use gumbel_softmax.distributions.mc_kl(p, q, num_samples=...)"
        )


@register_kl(LogitBinaryConcrete, LogitBinaryConcrete)
def _kl_logit_binary(p: LogitBinaryConcrete, q: LogitBinaryConcrete) -> Tensor:
    _same_temperature(p, q)
    # Infinite log-odds are point masses: KL 0 between the same one (where inf - inf is NaN),
    # +inf against anything else. Both without gradient: logistic_kl's at inf would be 0 * inf.
    delta = p.logits - q.logits
    finite = torch.isfinite(delta)
    kl = logistic_kl(torch.where(finite, delta, 0.0))
    return torch.where(finite, kl, torch.where(p.logits == q.logits, 0.0, torch.inf).to(kl.dtype))


@register_kl(BinaryConcrete, BinaryConcrete)
def _kl_binary(p: BinaryConcrete, q: BinaryConcrete) -> Tensor:
    return _kl_logit_binary(p.base, q.base)


def _log_space(d: Distribution) -> Distribution:
    """The log/logit-space base of a relaxed distribution (KL is invariant under the bijection)."""
    if isinstance(d, (Concrete, BinaryConcrete)):
        return d.base
    return d


def mc_kl(
    p: Distribution,
    q: Distribution,
    *,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Monte Carlo :math:`\mathrm{KL}(p\|q) \approx \frac1S \sum_s \log p(x_s) - \log q(x_s)`,
    :math:`x_s \sim p`.

    Unbiased, and differentiable through ``rsample`` where ``p`` has one (the pathwise estimator).
    For Concrete and binary Concrete pairs the expectation is taken in log / logit space (where the
    densities cannot underflow), which leaves the KL unchanged.

    Args:
        p, q: distributions with the same event space; ``q.log_prob`` must accept ``p``'s samples.
        num_samples: :math:`S \ge 1`.
        generator: the random source (our distributions accept one; torch's need ``None``).

    Returns:
        A tensor of the broadcast batch shape.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if type(_log_space(p)) is not type(_log_space(q)):
        raise TypeError(
            f"mc_kl needs p and q of the same family, got {type(p).__name__} and {type(q).__name__}"
        )
    p, q = _log_space(p), _log_space(q)
    draw = p.rsample if p.has_rsample else p.sample
    if generator is not None:
        if not isinstance(p, (ExpConcrete, LogitBinaryConcrete)):
            raise TypeError(f"{type(p).__name__}.sample takes no generator; pass generator=None")
        x = draw((num_samples,), generator=generator)  # type: ignore[call-arg]
    else:
        x = draw((num_samples,))
    return (p.log_prob(x) - q.log_prob(x)).mean(0)
