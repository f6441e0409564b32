r"""The unordered set estimator: M joint states drawn without replacement, weighted so that the
estimate is unbiased, with its built-in baseline (Kool, van Hoof & Welling 2020, *Estimating
gradients for discrete random variables by sampling without replacement*, arXiv:2002.06043)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .._enumeration import joint_log_prob, state_indices
from .._numerics import upcast
from ..functional import sample_without_replacement
from ._base import Draws, EstimatorResult, LossFn, call_f, check_state_space, register
from ._score import _MultiSampleEstimator, check_categorical, log_prob

__all__ = ["UnorderedSet", "log_set_probabilities"]


def log_set_probabilities(log_p: Tensor, log_rest: Tensor) -> Tensor:
    r""":math:`\log P^{D\setminus B}(S \setminus B)` for every subset :math:`B` of a sampled set
    :math:`S`: the probability that sampling without replacement from the domain without
    :math:`B` draws the rest of :math:`S` first, in any order.

    With :math:`m(B) = r + \sum_{s \in S\setminus B} p(s)` the mass left once :math:`B` is removed
    (:math:`r` the mass outside :math:`S`), the recursion over subsets

    .. math:: g(B) = \frac{1}{m(B)} \sum_{s \in S \setminus B} p(s)\, g(B \cup \{s\}),
              \qquad g(S) = 1,

    sums the :math:`|S\setminus B|!` orderings in :math:`2^M M` terms; :math:`g(\emptyset) =
    p(S)`, and the leave-one-out and leave-two-out probabilities of the estimator are
    :math:`g(\{s\})` and :math:`g(\{s, s'\})`. Computed in log space (:math:`p(s)` may underflow).

    Args:
        log_p: ``(*batch, M)`` log-probabilities of the set's members; ``-inf`` marks a slot
            that is not a member (it is treated as already removed).
        log_rest: ``(*batch)`` :math:`\log r` (``-inf`` when the set is the whole support).

    Returns:
        ``(*batch, 2**M)``: entry ``b`` is :math:`\log g(B)` for the subset with bit i of b set
        for member i.
    """
    m = log_p.shape[-1]
    subsets = torch.arange(1 << m, device=log_p.device)
    bit = 1 << torch.arange(m, device=log_p.device)
    member = (subsets[:, None] & bit) != 0  # (2**M, M)
    outside = torch.where(member, -torch.inf, log_p[..., None, :])  # (*batch, 2**M, M)
    rest = log_rest[..., None, None].expand(*outside.shape[:-1], 1)
    log_mass = torch.logsumexp(torch.cat([rest, outside], -1), -1)
    done = (member | torch.isneginf(log_p)[..., None, :]).all(-1)
    ahead = subsets[:, None] | bit  # (2**M, M): B with member i added
    log_g = torch.where(done, 0.0, -torch.inf).to(log_p.dtype)
    for _ in range(m):  # g(B) needs the supersets of B: M rounds reach every subset
        new = torch.logsumexp(outside + log_g[..., ahead], -1) - log_mass
        log_g = torch.where(done, 0.0, new)
    return log_g


@register("unordered-set", "unordered-set-estimator")
class UnorderedSet(_MultiSampleEstimator):
    r"""The unordered set estimator with its built-in baseline (Kool, van Hoof & Welling 2020,
    arXiv:2002.06043).

    :math:`S = \{s_1..s_M\}` are M distinct joint states drawn without replacement from
    :math:`q_\theta` (Gumbel-top-k over the :math:`K^N` joint log-probabilities,
    :func:`gumbel_softmax.sample_without_replacement`). With :math:`p = q_\theta` and the
    leave-one-out ratios

    .. math:: R(S, s) = \frac{p^{D\setminus\{s\}}(S\setminus\{s\})}{p(S)}, \qquad
              R^{D\setminus s}(S, s') = \frac{p^{D\setminus\{s,s'\}}(S\setminus\{s,s'\})}
              {p^{D\setminus\{s\}}(S\setminus\{s\})}\ (s' \ne s), \quad
              R^{D\setminus s}(S, s) = 1,

    (:math:`p^{D'}(A)` the probability that sampling without replacement from the domain
    :math:`D'` draws the set :math:`A` first, :func:`log_set_probabilities`), the estimate is

    .. math:: \hat g = \sum_{s\in S} p(s) R(S,s)\Big(\nabla_\phi f(s)
              + \big(f(s) - B(S, s)\big)\nabla_\theta \log p(s)\Big), \qquad
              B(S, s) = \sum_{s'\in S} p(s') R^{D\setminus s}(S, s') f(s').

    :math:`p(s)R(S, s)` is the probability that :math:`s` was drawn first given the set, so the
    first term is the Rao-Blackwellised score function (unbiased); :math:`B(S, s)` is, given
    that :math:`s` was first, an unbiased estimate of :math:`\mathbb E f` from the other samples,
    so it is a valid baseline (paper, section 4). Unbiased for :math:`\nabla\mathbb E f` for any
    M >= 2 (tested by enumeration); when the support has at most M states the set is all of it
    and the estimate is exact.

    Cost: ``f`` is evaluated M times per example, but the joint log-probabilities of all
    :math:`K^N` states are formed to sample from, so it is refused beyond :attr:`max_states` =
    65536 joint states (16 binary variables, or 4 of 16 classes); the recursion is
    :math:`O(2^M M^2)` per example.

    ``f`` is called once on the stacked samples ``(M, *batch, N, K)`` (in the sampled order:
    ``sample[0]`` is an exact draw of :math:`q`; declared ``draws = "without-replacement"``) and
    returns ``(M, *batch)``. When the support of :math:`q` has fewer than M states (masked
    classes), the set is the whole support and the remaining rows repeat the first sample with
    weight 0. ``estimate`` is the unbiased :math:`\sum_s p(s)R(S,s) f(s)` of :math:`\mathbb E f`,
    also the surrogate's value.

    Args:
        num_samples: :math:`M \ge 2` (fewer when :math:`K^N < M`: then all states).

    Raises:
        ValueError: ``K**N`` above 65536 (the message gives the size); ``num_samples`` not an
            int >= 2; the shared logits and ``f`` checks.
    """

    unbiased: ClassVar[bool] = True
    learning_signal: ClassVar[bool] = True
    draws: ClassVar[Draws] = "without-replacement"
    max_states: ClassVar[int | None] = 1 << 16

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        x = check_categorical(logits, f)
        n, k = x.shape[-2:]
        size = check_state_space(type(self), n, k)
        batch = x.shape[:-2]
        m = min(self.num_samples, size)
        index = state_indices(n, k, device=x.device)
        with torch.no_grad():
            joint = joint_log_prob(torch.log_softmax(upcast(x.detach()), -1), index)
            chosen = sample_without_replacement(joint, m, generator=generator, validate_args=False)
            lp = joint.gather(-1, chosen)  # (*batch, M)
            valid = torch.isfinite(lp)  # a masked state is drawn only once the support is used up
            chosen = torch.where(valid, chosen, chosen[..., :1])
            lp = torch.where(valid, lp, -torch.inf)
            log_rest = torch.logsumexp(joint.scatter(-1, chosen, -torch.inf), -1)
            log_g = log_set_probabilities(lp, log_rest)
            single = 1 << torch.arange(m, device=x.device)
            g1 = log_g[..., single]  # log p^{D\s}(S\s), (*batch, M)
            g2 = log_g[..., single[:, None] | single[None, :]]  # (*batch, M, M); diagonal = g1
            # p(s) R(S, s): the probability that s was drawn first, given the set
            weight = torch.where(valid, (lp + g1 - log_g[..., :1]).exp(), 0.0)
            # p(s') R^{D\s}(S, s'); on the diagonal g2 = g1, so it is p(s) there
            inner = (lp[..., None, :] + g2 - g1[..., :, None]).exp()
            inner = torch.where(valid[..., None, :] & valid[..., :, None], inner, 0.0)
        z = torch.nn.functional.one_hot(index[chosen], k).to(x.dtype).movedim(len(batch), 0)
        values = call_f(f, z, torch.Size((m, *batch)))
        with torch.no_grad():
            fv = values.detach().movedim(0, -1).to(weight.dtype)
            fv = torch.where(valid, fv, 0.0)
            baseline = (inner * fv[..., None, :]).sum(-1)  # B(S, s), (*batch, M)
            signal = (weight * (fv - baseline)).movedim(-1, 0).to(values.dtype)
            w = weight.movedim(-1, 0).to(values.dtype)
        log_q = log_prob(x, z)
        estimate = (w * values).sum(0)
        surrogate = estimate + (signal * (log_q - log_q.detach())).sum(0)
        return EstimatorResult(surrogate, values.detach(), z.detach(), estimate=estimate.detach())
