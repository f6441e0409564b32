r"""Exact enumeration: the expectation summed over every joint state, as a registered estimator.

.. math:: \mathbb E_{z\sim q_\theta}[f(z)] = \sum_{z \in \{1..K\}^N} f(z) \prod_{n=1}^N
          q_{\theta,n}(z_n), \qquad
          \nabla = \sum_z \big(\nabla_\phi f(z) + f(z)\,\nabla_\theta q_\theta(z)\big),

differentiated by autograd: the gradient itself, with zero variance. This is marginalisation
over a discrete latent (e.g. Kingma et al. 2014's semi-supervised M2 model sums over the label)
and storchastic's "Expect" / Pyro's enumeration of discrete sites, offered as an estimator so
that any experiment can compare against it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .._enumeration import all_states, joint_log_prob, state_indices
from .._numerics import upcast
from ._base import Draws, Estimator, EstimatorResult, LossFn, call_f, check_state_space, register
from ._score import check_categorical

__all__ = ["Exact"]


@register("exact", "enumerate", "marginalize")
class Exact(Estimator):
    r"""The exact expectation and gradient by summing over all :math:`K^N` joint states.

    .. math:: \text{surrogate} = \sum_{z} q_\theta(z)\, f(z), \qquad
              q_\theta(z) = \exp\textstyle\sum_n \log\mathrm{softmax}(\theta_n)_{z_n},

    whose gradient is the exact :math:`\nabla_\theta \mathbb E f` (and :math:`\mathbb E
    \nabla_\phi f` for parameters inside ``f``). ``f`` is called once, on every joint state
    stacked: ``(K**N, *batch, N, K)`` -> ``(K**N, *batch)``; it never sees relaxed inputs and
    need not be differentiable in ``z``. ``value`` is that ``(K**N, *batch)``, ``sample`` the
    states, ``estimate`` the exact expectation ``(*batch)``.

    Cost: ``K**N`` evaluations of ``f`` per example, so it is refused beyond
    :attr:`max_states` = 4096 joint states (12 binary variables, or 3 of 16 classes): beyond
    that one call holds ``4096 x batch`` inputs of ``f`` and their graph. Masked classes
    (``-inf`` logits) get probability 0 and add nothing (``f`` is still evaluated there).

    Declared ``unbiased`` with ``draws = "every-state"``: no randomness (the generator is
    accepted and unused), the variance is 0.

    Raises:
        ValueError: ``K**N`` above 4096 (the message gives the size), logits with fewer than 2
            dimensions, NaN or all-masked logits, ``f`` returning another shape.
    """

    unbiased: ClassVar[bool] = True
    learning_signal: ClassVar[bool] = True
    draws: ClassVar[Draws] = "every-state"
    max_states: ClassVar[int | None] = 4096

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        x = check_categorical(logits, f)
        n, k = x.shape[-2:]
        check_state_space(type(self), n, k)
        batch = x.shape[:-2]
        m = k**n
        states = all_states(n, k, dtype=x.dtype, device=x.device)
        z = states.reshape(m, *([1] * len(batch)), n, k).expand(m, *batch, n, k)
        values = call_f(f, z, torch.Size((m, *batch)))
        log_q = torch.log_softmax(upcast(x), -1)
        log_p = joint_log_prob(log_q, state_indices(n, k, device=x.device)).movedim(-1, 0)
        # q(z) = 0 for states with a masked class: where(), so that their f adds 0, not 0 * f
        weight = log_p.exp().to(values.dtype)
        expectation = torch.where(torch.isneginf(log_p), 0.0, weight * values).sum(0)
        return EstimatorResult(
            expectation, values.detach(), z.detach(), estimate=expectation.detach()
        )
