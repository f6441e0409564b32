"""Enumeration of the joint states of N categorical variables of K classes: the one place where
the library lists every state, shared by :mod:`gumbel_softmax.diagnostics` (exact gradients for
tests) and the ``exact`` and ``unordered-set`` estimators."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["all_states", "joint_log_prob", "state_indices"]


def state_indices(n: int, k: int, *, device=None) -> Tensor:
    """``(k**n, n)`` int64: the class of each variable in every joint state, in lexicographic
    order (the last variable changes fastest)."""
    # digits of 0..k**n-1 in base k, most significant first
    codes = torch.arange(k**n, device=device)
    powers = k ** torch.arange(n - 1, -1, -1, device=device)
    return torch.div(codes[:, None], powers, rounding_mode="floor") % k


def all_states(n: int, k: int, *, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Every joint one-hot state: ``(k**n, n, k)``, in the order of :func:`state_indices`."""
    return torch.nn.functional.one_hot(state_indices(n, k, device=device), k).to(dtype)


def joint_log_prob(log_q: Tensor, index: Tensor) -> Tensor:
    r""":math:`\log q(z) = \sum_n \log q_n(z_n)` of every joint state.

    Args:
        log_q: ``(*batch, N, K)`` normalised log-probabilities (``-inf`` where masked).
        index: ``(S, N)`` class indices of the states (:func:`state_indices`).

    Returns:
        ``(*batch, S)``; ``-inf`` for the states that use a masked class (a gather and a sum:
        no ``0 * -inf``).
    """
    n = log_q.shape[-2]
    picked = log_q[..., torch.arange(n, device=log_q.device), index]  # (*batch, S, N)
    return picked.sum(-1)
