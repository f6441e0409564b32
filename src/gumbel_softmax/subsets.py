r"""Relaxed subset sampling: a differentiable k-hot relaxation of Gumbel-top-k.

Xie & Ermon, *Reparameterizable Subset Sampling via Continuous Relaxations* (IJCAI 2019,
arXiv:1901.10517), section 3 / algorithm 1. The ``k`` largest perturbed keys
:math:`r_i = \log\alpha_i + G_i` are an exact sample of ``k`` classes without replacement
(Kool et al., arXiv:1903.06059; :func:`gumbel_softmax.sample_without_replacement`); the relaxation
replaces "take the largest key, then remove it" ``k`` times by a softmax, then a soft removal.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._numerics import check_dim, check_hard, check_logits, validation_enabled
from .functional import _perturbed, _temperature_for, straight_through

__all__ = ["relaxed_top_k"]


def _softmax_and_log1m(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    r"""``(a, log(1 - a))`` for :math:`a = \mathrm{softmax}(x)`, both accurate where :math:`a_i`
    rounds to 1.

    With :math:`m, m'` the largest entry and the largest of the others,
    :math:`S = \sum_l e^{x_l - m}` and :math:`S' = \sum_{l \ne \text{top}} e^{x_l - m'}`:
    for the top entry :math:`\log(1 - a) = \operatorname{LSE}_{l \ne \text{top}} x_l -
    \operatorname{LSE}_l x_l = (m' - m) + \log S' - \log S`, with no cancellation and finite
    when :math:`1 - a` underflows (subtracting two LSEs of size 1e7 would lose float32's every
    digit); for every other entry :math:`a_i \le 1/2` and :math:`\operatorname{log1p}(-a_i)` is
    accurate. Needs two unmasked entries per row.
    """
    m = x.amax(dim, keepdim=True)
    e = torch.exp(x - m)
    total = e.sum(dim, keepdim=True)
    a = e / total
    top = torch.zeros_like(x, dtype=torch.bool).scatter_(dim, x.argmax(dim, keepdim=True), True)
    x_rest = x.masked_fill(top, -torch.inf)
    m_rest = x_rest.amax(dim, keepdim=True)
    total_rest = torch.exp(x_rest - m_rest).sum(dim, keepdim=True)
    rest = (m_rest - m) + total_rest.log() - total.log()
    # The top entry is zeroed inside log1p: log1p(-1) = -inf would put 0 * inf = NaN into the
    # gradient of the branch torch.where discards.
    return a, torch.where(top, rest, torch.log1p(-a.masked_fill(top, 0.0)))


def relaxed_top_k(
    logits: Tensor,
    k: int,
    temperature: float | Tensor = 1.0,
    *,
    hard: bool | Tensor = False,
    dim: int = -1,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    validate_args: bool | None = None,
) -> Tensor:
    r"""A relaxed k-hot sample of ``k`` classes without replacement (Xie & Ermon 2019).

    With Gumbel-perturbed logits :math:`r_i = \log\alpha_i + G_i` (Xie & Ermon's
    :math:`\hat r_i`), :math:`\alpha^{(1)} = r` and for :math:`j = 1, \dots, k`

    .. math:: a^{(j)} = \mathrm{softmax}(\alpha^{(j)}/\tau), \qquad
              \alpha^{(j+1)} = \alpha^{(j)} + \log(1 - a^{(j)}), \qquad
              y = \sum_{j=1}^{k} a^{(j)} .

    Each :math:`a^{(j)}` lies on the simplex, so :math:`\sum_i y_i = k` (single coordinates are
    non-negative but may exceed 1 at moderate :math:`\tau`). For fixed keys, as
    :math:`\tau \to 0`, :math:`a^{(j)}` tends to the one-hot of the j-th largest key and :math:`y`
    to the k-hot of the top ``k`` keys, an exact sample without replacement (Gumbel-top-k,
    arXiv:1903.06059) with :math:`P(\{i_1..i_k\}) = \sum_{\text{orders}} \prod_j \alpha_{i_j} /
    \sum_{l \notin \{i_1..i_{j-1}\}} \alpha_l`. The limit is reached once each removal, about
    :math:`-\Delta/\tau` for a margin :math:`\Delta` between consecutive keys, exceeds the spread
    of the top k + 1 keys, roughly :math:`\tau < \Delta_{\min} / (r_{(1)} - r_{(k+1)})`; above
    that a removed class can be chosen again (as in exact arithmetic). With ``k = 1`` it is
    :func:`gumbel_softmax.gumbel_softmax`.

    With ``hard=True`` the forward value is that exact k-hot (of the same keys) and the gradient
    is the relaxed :math:`y`'s (straight-through).

    ``logits`` are log-probabilities (up to a constant), not probabilities: a library that feeds
    softmax outputs here samples from a flattened distribution, not the intended one.

    Args:
        logits: ``(*batch, K)`` unnormalised log-probabilities along ``dim``; ``-inf`` masks.
        k: subset size, ``1 <= k <= K`` and at most the number of unmasked classes of each row.
        temperature: :math:`\tau > 0`, a float or a tensor broadcastable to ``batch`` (``logits``'
            shape without ``dim``); it may require grad.
        hard: straight-through: exact k-hot forward, relaxed gradient (a Python bool, or a 0-d
            bool tensor, selected without reading it).
        dim: the class dimension.
        generator: the random source; the global generator is untouched when one is given.
        noise: pre-drawn Gumbel noise of ``logits``' shape (common random numbers); overrides
            ``generator``. The same noise gives the same subset as ``hard=True`` at any
            temperature.
        validate_args: check for NaN, all-masked rows and rows with fewer than ``k`` unmasked
            classes (default: torch.distributions' global).

    Returns:
        A tensor of ``logits``' shape and dtype; masked classes get exactly 0.

    Raises:
        TypeError: non-floating ``logits`` / ``temperature`` / ``noise``, non-int ``k``.
        ValueError: ``k`` out of range, fewer than ``k`` unmasked classes in a row, NaN logits,
        a non-positive or non-finite temperature, ``noise`` of the wrong shape.

    Numerics: computed in log space (float32 for 16-bit inputs). The soft removal
    :math:`\log(1 - a)` is evaluated as a leave-one-out log-sum-exp, exact where :math:`a`
    rounds to 1 (logits of 1e4 at :math:`\tau = 10^{-3}` remove a class by ~1e6), where clipping
    :math:`1 - a` at ``tiny`` would remove it by at most 87 (float32) and choose it again.
    """
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {k!r}")
    hard = check_hard(hard)
    check_logits(logits, validate=False)
    d = check_dim(logits, dim)
    size = logits.shape[d]
    if not 1 <= k <= size:
        raise ValueError(f"k must satisfy 1 <= k <= K = {size}, got k={k}")
    if validation_enabled(validate_args):
        unmasked = (~torch.isneginf(logits)).sum(d)
        if bool((unmasked < k).any()):
            raise ValueError(
                f"k={k} exceeds the number of unmasked classes in some row "
                f"(fewest: {int(unmasked.min())}); masked classes are never drawn"
            )
    keys, d = _perturbed(logits, d, generator, noise, validate_args)
    tau = _temperature_for(temperature, keys, d, validate_args)
    live = ~torch.isneginf(keys)
    # Masked classes are kept at 0 and set to -inf only after the division by tau, which would
    # otherwise put (-inf) * 0 = NaN into tau's gradient (as in ExpConcrete).
    alpha = keys.masked_fill(~live, 0.0)
    y = torch.zeros_like(alpha)
    for j in range(k):
        x = (alpha / tau).masked_fill(~live, -torch.inf)
        if j + 1 == k:
            y = y + torch.softmax(x, d)
        else:
            a, log1m_a = _softmax_and_log1m(x, d)
            y = y + a
            alpha = alpha + torch.where(live, log1m_a, 0.0)
    if hard is not False:
        index = keys.topk(k, dim=d).indices
        k_hot = straight_through(torch.zeros_like(y).scatter_(d, index, 1.0), y)
        # A 0-d bool tensor (on CUDA or under compile) selects without being read.
        y = k_hot if hard is True else torch.where(hard, k_hot, y)
    return y.to(logits.dtype)
