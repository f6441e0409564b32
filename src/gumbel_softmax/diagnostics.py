r"""Exact answers for small discrete problems, to test and compare gradient estimators.

:func:`exact_gradient` enumerates every joint state of N categorical variables with K classes
(:math:`K^N` states) and differentiates the exact expectation
:math:`\mathbb E_{z\sim q}[f(z)] = \sum_z f(z) \prod_n q_n(z_n)` with autograd.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from .estimators._base import LossFn

__all__ = ["all_states", "exact_expectation", "exact_gradient"]

#: Enumeration beyond this many joint states is refused (memory and time).
MAX_STATES = 200_000


def all_states(n: int, k: int, *, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Every joint one-hot state of ``n`` variables with ``k`` classes: ``(k**n, n, k)``."""
    if k**n > MAX_STATES:
        raise ValueError(f"{k}**{n} = {k**n} states exceeds MAX_STATES = {MAX_STATES}")
    index = torch.tensor(list(itertools.product(range(k), repeat=n)), device=device)
    return torch.nn.functional.one_hot(index.reshape(-1, n), k).to(dtype)


def exact_expectation(f: LossFn, logits: Tensor, *, chunk: int = 4096) -> Tensor:
    r"""The exact :math:`\mathbb E_{z \sim q}[f(z)]`, shape ``(*batch)``, differentiable in logits.

    Args:
        f: maps ``(S, *batch, N, K)`` one-hot states to ``(S, *batch)`` losses.
        logits: ``(*batch, N, K)`` logits of a factorised categorical.
        chunk: states evaluated per call of ``f``.
    """
    if logits.dim() < 2:
        raise ValueError(f"logits must have shape (*batch, N, K), got {tuple(logits.shape)}")
    n, k = logits.shape[-2:]
    states = all_states(n, k, dtype=logits.dtype, device=logits.device)
    log_q = torch.log_softmax(logits, -1)
    batch = logits.shape[:-2]
    total = logits.new_zeros(batch)
    for start in range(0, states.shape[0], chunk):
        z = states[start : start + chunk]
        z = z.reshape(z.shape[0], *([1] * len(batch)), n, k).expand(z.shape[0], *batch, n, k)
        log_p = (z * log_q).sum((-1, -2))  # (S, *batch): log prod_n q_n(z_n)
        total = total + (log_p.exp() * f(z)).sum(0)
    return total


def exact_gradient(f: LossFn, logits: Tensor) -> Tensor:
    r"""The exact :math:`\nabla_{\text{logits}} \sum_{\text{batch}} \mathbb E_{z\sim q}[f(z)]`.

    Returns a tensor of ``logits``' shape; ``logits`` itself is left untouched (no ``.grad``).
    """
    x = logits.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(exact_expectation(f, x).sum(), x)
    return grad
