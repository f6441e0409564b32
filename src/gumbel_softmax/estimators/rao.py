r"""Gumbel-Rao Monte Carlo: straight-through Gumbel-Softmax, Rao-Blackwellised over the Gumbels
given the sample (Paulus, Maddison & Krause 2021, arXiv:2010.04838)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._numerics import uniform_open
from ..functional import straight_through
from ._base import PathwiseEstimator, TemperedEstimator, register
from ._pathwise import check_estimator_logits, one_hot_sample, to_compute, with_logits_gradient

__all__ = ["GumbelRao", "conditional_gumbel"]


def conditional_gumbel(
    logits: Tensor,
    sample: Tensor,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Perturbed logits :math:`\theta + G` drawn given that their argmax is ``sample``.

    With :math:`Z = \sum_k e^{\theta_k}`, :math:`E_k \overset{iid}{\sim} \mathrm{Exp}(1)` and
    ``sample`` the one-hot of class :math:`i`:

    .. math:: X_i = \log Z - \log E_i, \qquad
              X_j = -\log\!\left(E_j e^{-\theta_j} + E_i / Z\right) \quad (j \ne i).

    This is the Gumbel-max machinery (Maddison, Tarlow & Minka 2014, arXiv:1411.0030; Paulus et
    al. 2021, arXiv:2010.04838, appendix): the maximum :math:`X_i \sim \mathrm{Gumbel}(\log Z)` is
    independent of the argmax, and the others are :math:`\mathrm{Gumbel}(\theta_j)` truncated
    below :math:`X_i`. Drawing ``sample`` from :math:`\mathrm{softmax}(\theta)` and then ``X``
    gives every :math:`X_k \sim \mathrm{Gumbel}(\theta_k)` independently, with
    :math:`\arg\max X =` ``sample``. Computed in log space (``logaddexp``), so logits of ±1e4 stay
    finite and ``-inf`` (masked) logits give ``X = -inf``.

    Args:
        logits: ``(*batch, K)`` logits :math:`\theta` (classes along the last dim); the draw is
            differentiable in them (REBAR and RELAX need that), and ``-inf`` entries get no
            gradient.
        sample: ``(*batch, K)`` one-hot argmax.
        num_samples: how many independent draws M.
        generator: the random source.

    Returns:
        ``(M, *batch, K)`` perturbed logits, in ``logits``' dtype.

    Raises:
        ValueError: ``num_samples < 1`` or ``sample`` of another shape than ``logits``.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if sample.shape != logits.shape:
        raise ValueError(
            f"sample must have the shape of logits {tuple(logits.shape)}, got {tuple(sample.shape)}"
        )
    theta = logits
    u = uniform_open(
        (num_samples, *theta.shape), dtype=theta.dtype, device=theta.device, generator=generator
    )
    log_e = torch.log(-torch.log(u)).to(theta.dtype)  # log of Exp(1) draws
    log_z = torch.logsumexp(theta, -1, keepdim=True)
    chosen = sample.bool()
    log_e_i = torch.where(chosen, log_e, 0.0).sum(-1, keepdim=True) - log_z  # log(E_i / Z)
    top = -log_e_i  # the maximum, log Z - log E_i
    # -log(E_j e^{-theta_j} + E_i/Z). Masked classes (theta_j = -inf) are set to -inf by where(),
    # after computing with theta_j = 0 there, so that no inf - inf reaches the gradient.
    finite = torch.isfinite(theta)
    rest = -torch.logaddexp(log_e - torch.where(finite, theta, 0.0), log_e_i)
    return torch.where(chosen, top, torch.where(finite, rest, -torch.inf))


@register("gumbel-rao", "grmc", "gr-mc")
class GumbelRao(TemperedEstimator, PathwiseEstimator):
    r"""Gumbel-Rao Monte Carlo, GR-MC\ :sub:`M` (Paulus, Maddison & Krause 2021, arXiv:2010.04838).

    The forward value is an exact sample :math:`D \sim \mathrm{Cat}(\mathrm{softmax}(\theta))`;
    the backward is the straight-through Gumbel-Softmax Jacobian averaged over M draws of the
    Gumbels *given* :math:`D` (:func:`conditional_gumbel`):

    .. math:: \hat g = \Big(\frac1M \sum_{m=1}^M
              \frac{\partial\,\mathrm{softmax}((\theta + G^{(m)})/\tau)}
              {\partial\theta}\Big)^{\!\top} \nabla_z f(D), \qquad G^{(m)} \sim p(G \mid D).

    Its expectation equals straight-through Gumbel-Softmax's (it is that estimator's conditional
    expectation given :math:`D`, approximated by M draws), and its variance is never larger (the
    Rao-Blackwell theorem); both are tested. ``f`` is evaluated once, at :math:`D`.

    When to use it: wherever ST Gumbel-Softmax is used, especially at low temperatures and small
    batches where its variance hurts; the extra cost is M softmaxes, not M evaluations of ``f``.

    Args:
        temperature: :math:`\tau > 0` of the relaxation.
        num_samples: M, the conditional Gumbel draws per sample (the paper uses up to 1000;
            10 already removes most of the variance it can).

    Shapes: ``logits`` ``(*batch, N, K)``; :meth:`sample` returns a one-hot tensor of that shape
    and dtype (16-bit inputs are computed in float32).

    Raises:
        TypeError / ValueError: bad ``temperature`` or ``num_samples``; non-floating, NaN,
        fewer than 2-dimensional or all-masked ``logits``.
    """

    def __init__(self, temperature: float = 1.0, num_samples: int = 10) -> None:
        super().__init__(temperature)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        self.num_samples = num_samples

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        x = to_compute(check_estimator_logits(logits))
        hard = one_hot_sample(x, generator)
        perturbed = conditional_gumbel(x.detach(), hard, self.num_samples, generator=generator)
        soft = torch.softmax(with_logits_gradient(perturbed, x) / self._temperature, -1).mean(0)
        return straight_through(hard, soft).to(logits.dtype)

    def extra_repr(self) -> str:
        return f"temperature={self._temperature}, num_samples={self.num_samples}"
