r"""VIMCO: the multi-sample leave-one-out estimator for the importance-weighted bound
(Mnih & Rezende 2016, *Variational inference for Monte Carlo objectives*, arXiv:1602.06725)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from ._base import EstimatorResult, LossFn, call_f, register
from ._score import _MultiSampleEstimator, check_categorical, log_prob, one_hot_sample

__all__ = ["VIMCO"]


@register("vimco")
class VIMCO(_MultiSampleEstimator):
    r"""VIMCO (Mnih & Rezende 2016, arXiv:1602.06725): the gradient of the S-sample bound with a
    leave-one-out baseline per sample.

    ``f`` returns per-sample negative log-weights :math:`f(z) = -\log w(z)` (in a VAE,
    :math:`w = p(x, z)/q(z\mid x)`); the objective minimised is the negative S-sample bound

    .. math:: \mathcal L = -\mathbb E_{z_{1..S} \overset{iid}{\sim} q_\theta}\,\hat L, \qquad
              \hat L = \log \frac1S \sum_{s=1}^S w_s, \quad w_s = e^{-f(z_s)},

    (Burda et al. 2016's importance-weighted bound; S = 1 would be :math:`\mathbb E f`). Its
    gradient is estimated as

    .. math:: -\nabla\mathcal L \approx \sum_{j=1}^S \big(\hat L - \hat L_{-j}\big)\,
              \nabla_\theta \log q_\theta(z_j) + \sum_{j=1}^S \tilde w_j\, \nabla \log w_j,
              \qquad \tilde w_j = \frac{w_j}{\sum_s w_s},

    .. math:: \hat L_{-j} = \log \frac1S \Big(\sum_{s\ne j} w_s + \hat w_{-j}\Big), \qquad
              \hat w_{-j} = \exp\Big(\frac{1}{S-1}\sum_{s\ne j} \log w_s\Big),

    the paper's baseline for sample j: the bound with :math:`w_j` replaced by the geometric mean
    of the others. It depends on the other samples only, so the estimate is unbiased for
    :math:`\nabla\mathcal L` (tested by enumerating every S-tuple of a small problem,
    :func:`gumbel_softmax.diagnostics.exact_bound`). The second sum is autograd through ``f``
    (and through :math:`\log q` when ``f`` computes it from the same logits, as a VAE's
    :math:`-\log w` does).

    Declared ``multi_sample_bound``: a training loop gives it :math:`-\log w` per sample instead
    of a loss, and adds no separate KL term. ``f`` is called once on the stacked samples
    ``(S, *batch, N, K)`` and returns ``(S, *batch)``; ``value`` is that, ``estimate`` is
    :math:`-\hat L` ``(*batch)``, also the surrogate's value (its score-function term is 0).

    Args:
        num_samples: :math:`S \ge 2`.

    Raises:
        TypeError / ValueError: ``num_samples`` not an int >= 2; the shared logits and ``f``
        checks.
    """

    unbiased: ClassVar[bool] = True
    multi_sample_bound: ClassVar[bool] = True

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        x = check_categorical(logits, f)
        s = self.num_samples
        batch = x.shape[:-2]
        z = one_hot_sample(x, generator, s)
        loss = call_f(f, z, torch.Size((s, *batch)))
        log_w = -loss
        log_s = math.log(s)
        bound = torch.logsumexp(log_w, 0) - log_s  # L-hat, differentiable through f
        with torch.no_grad():
            lw = log_w.detach()
            mean_others = (lw.sum(0, keepdim=True) - lw) / (s - 1)  # log of w-hat_{-j}
            # (j, s, *batch): log w_s, with the diagonal s = j replaced by log w-hat_{-j}
            eye = torch.eye(s, dtype=torch.bool, device=x.device)
            eye = eye.reshape(s, s, *([1] * len(batch)))
            replaced = torch.where(eye, mean_others.unsqueeze(1), lw.unsqueeze(0))
            signal = bound.detach() - (torch.logsumexp(replaced, 1) - log_s)  # (S, *batch)
        log_q = log_prob(x, z)
        score = (signal * (log_q - log_q.detach())).sum(0)
        return EstimatorResult(-(bound + score), loss.detach(), z, estimate=-bound.detach())
