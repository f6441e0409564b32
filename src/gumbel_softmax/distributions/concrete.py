r"""The Concrete (Gumbel-Softmax) distribution on the simplex, built on its log-space form.

Maddison, Mnih & Teh, *The Concrete Distribution* (arXiv:1611.00712), and Jang, Gu & Poole,
*Categorical Reparameterization with Gumbel-Softmax* (arXiv:1611.01144).

The mathematics lives once, in :class:`ExpConcrete` (appendix C.3 of Maddison et al.): sampling and
the log-density are computed in log space, where nothing underflows. :class:`Concrete` is its image
under ``exp``, and :class:`StraightThroughConcrete` rounds that to a vertex in the forward pass.

Masks: a ``-inf`` logit removes its class. Samples put exactly zero mass there, and the densities
are those of the Concrete over the remaining :math:`K'` classes (the face of the simplex they span).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.distributions import constraints

from .._numerics import (
    compute_dtype,
    downcast,
    gumbel_noise,
    require,
    upcast,
    validation_enabled,
)
from ..functional import straight_through
from ._base import LogSpaceDistribution, TransformedRelaxed, parameters
from .constraints import log_simplex, positive_finite, simplex

__all__ = ["Concrete", "ExpConcrete", "RelaxedSample", "StraightThroughConcrete"]


def _masked_lse(x: Tensor, mask: Tensor) -> Tensor:
    return torch.logsumexp(x.masked_fill(~mask, -torch.inf), -1)


class ExpConcrete(LogSpaceDistribution):
    r"""The log-space Concrete ("ExpConcrete"): :math:`Y` with :math:`\exp(Y) \sim \mathrm{Concrete}`.

    Sampling (Maddison et al. 2017, arXiv:1611.00712, appendix C.3):

    .. math:: Y_k = \frac{\log\alpha_k + G_k}{\tau}
                    - \operatorname{LSE}_i \frac{\log\alpha_i + G_i}{\tau}.

    Log-density on the hyperplane :math:`\operatorname{LSE}(y) = 0`:

    .. math:: \log\kappa_{\alpha,\tau}(y) = \log((K-1)!) + (K-1)\log\tau
              + \sum_k (\log\alpha_k - \tau y_k) - K \operatorname{LSE}_k(\log\alpha_k - \tau y_k).

    It is the density of the coordinates :math:`w_k = y_k - y_K` (:math:`k < K`) with respect to
    the Lebesgue measure on :math:`\mathbb R^{K-1}`, equivalently of :math:`(y_1, \dots, y_{K-1})`
    with respect to :math:`e^{-y_K}\,dy_1 \cdots dy_{K-1}` (not the Lebesgue measure on the
    first :math:`K-1` coordinates, against which it integrates to :math:`\mathbb E[X_K]`).
    ``biject_to(support)`` is therefore :math:`w \mapsto y`
    (:class:`~gumbel_softmax.distributions.constraints.LogSoftmaxLastZeroTransform`), with
    log-Jacobian 0.

    Args:
        temperature: :math:`\tau > 0`, float or tensor broadcastable with the batch shape
            (the only positional argument).
        probs: ``(*batch, K)`` probabilities on the simplex (zeros mask), keyword-only.
        logits: ``(*batch, K)`` unnormalised :math:`\log\alpha`, keyword-only, instead of probs;
            ``-inf`` masks a class.
        validate_args: check the parameters and ``log_prob``'s values (on unless False; on
            CUDA queued on the device unless True, see :func:`~gumbel_softmax._numerics.require`).

    Raises:
        TypeError: a positional ``probs`` / ``logits``, or parameters that are not floating tensors.
        ValueError: not exactly one of ``probs`` / ``logits``; a temperature that is not positive
            and finite or whose shape does not broadcast with the batch shape; a row with every
            class masked; under validation, ``probs`` off the simplex, NaN or ``+inf`` logits.

    Numerics: sampling and densities run in float32 for 16-bit parameters; samples are clamped to
    the dtype's finite range (a 16-bit sample at :math:`\tau = 10^{-3}` would otherwise round
    to ``-inf``), so masked classes hold ``finfo.min``, whose ``exp`` is exactly 0.
    """

    arg_constraints = {
        "temperature": positive_finite,
        "logits": constraints.real_vector,
        "probs": simplex,
    }
    support = log_simplex

    def __init__(
        self,
        temperature: float | Tensor,
        *,
        probs: Tensor | None = None,
        logits: Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        strict = validate_args is True
        name, p, tau, batch_shape = parameters(
            temperature, logits, probs, event_dims=1, strict=strict
        )
        # Value checks through _numerics.require: no host synchronisation on CUDA, kept inside
        # torch.compile's graph (fullgraph), skipped on meta and fake tensors.
        if validation_enabled(validate_args):
            p = require(p, "simplex" if name == "probs" else "below_inf", name=name, strict=strict)
        if name == "probs":
            p = p.log()
        # A +inf logit would take all the mass and leave NaN in the normalised logits (above); a
        # row with every class masked has no distribution (checked even without validation).
        p = require(
            p, "not_all_masked", name="logits" if name == "logits" else "log(probs)", strict=strict
        )
        # Computation uses the parameters in the compute dtype (cast once, see _numerics.upcast).
        lc = upcast(p)
        self._logits = (lc - lc.logsumexp(-1, keepdim=True)).expand(batch_shape + p.shape[-1:])
        self._tau = upcast(tau).to(lc.dtype).expand(batch_shape)
        self.logits = self._logits.to(p.dtype)
        self.temperature = tau.to(p.dtype).expand(batch_shape)
        self._init_checked(batch_shape, p.shape[-1:], validate_args)

    @property
    def probs(self) -> Tensor:
        """Class probabilities :math:`\\alpha / \\sum\\alpha` (the zero-temperature limit)."""
        return self.logits.exp()

    @property
    def mask(self) -> Tensor:
        """``(*batch, K)`` True for classes that are not masked out."""
        return ~torch.isneginf(self.logits)

    def rsample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        g = gumbel_noise(
            shape, dtype=self._logits.dtype, device=self._logits.device, generator=generator
        )
        # Masked classes enter as -inf after the division: (-inf)/tau would give NaN in tau's
        # gradient (0 * inf), whereas torch.where sends them no gradient at all.
        mask = self.mask
        s = (self._logits.masked_fill(~mask, 0.0) + g) / self._tau.unsqueeze(-1)
        y = torch.log_softmax(s.masked_fill(~mask, -torch.inf), -1)
        return y.clamp(min=torch.finfo(self.logits.dtype).min).to(self.logits.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            value = self._checked_sample(value)
        return downcast(self._log_density(value), self.logits.dtype)

    def _log_density(self, value: Tensor) -> Tensor:
        """The log-density in the compute dtype, without validation."""
        logits, value = torch.broadcast_tensors(self._logits, value.to(self._logits.dtype))
        mask = ~torch.isneginf(logits)
        tau = self._tau
        # Masked classes leave the density: they take no part in the sum, the LSE or K.
        # (Zero the masked values first: -inf there would put 0 * inf = NaN in tau's gradient.)
        t = torch.where(mask, logits - tau.unsqueeze(-1) * value.masked_fill(~mask, 0.0), 0.0)
        k = mask.sum(-1).to(tau.dtype)
        return torch.lgamma(k) + (k - 1) * tau.log() + t.sum(-1) - k * _masked_lse(t, mask)


class RelaxedSample(NamedTuple):
    """A straight-through draw: the hard one-hot ``value`` and the ``relaxed`` sample behind it."""

    value: Tensor
    relaxed: Tensor


class Concrete(TransformedRelaxed):
    r"""The Concrete / Gumbel-Softmax distribution on the simplex (also ``RelaxedCategorical``).

    :math:`X = \mathrm{softmax}((\log\alpha + G)/\tau)`, with density (Maddison et al. 2017,
    arXiv:1611.00712, eq. 8; Jang et al. 2017, arXiv:1611.01144, eq. 3)

    .. math:: p_{\alpha,\tau}(x) = (K-1)!\,\tau^{K-1} \prod_{k=1}^K
              \frac{\alpha_k x_k^{-\tau-1}}{\sum_{i=1}^K \alpha_i x_i^{-\tau}},

    computed as :math:`\log p_X(x) = \log\kappa_{\alpha,\tau}(\log x) - \sum_k \log x_k` through
    :class:`ExpConcrete` (``.base``), so that it stays finite at small :math:`\tau`.

    Properties (tested): rounding, :math:`P(\arg\max_k X_k = k) = \alpha_k/\sum_i\alpha_i`; zero
    temperature, :math:`X \to` one-hot as :math:`\tau \to 0`; log-convexity of the density for
    :math:`\tau \le 1/(K-1)`.

    Numerics: unmasked coordinates of samples are clamped to ``finfo.tiny`` so that
    :math:`\log x` and hence ``log_prob`` of the distribution's own samples stay finite even when
    the softmax underflows (at small :math:`\tau` the density is infinite at the vertices); the sum
    then exceeds 1 by at most ``K * tiny``. Masked coordinates are exactly 0.
    """

    arg_constraints = ExpConcrete.arg_constraints
    support = simplex

    def __init__(
        self,
        temperature: float | Tensor,
        *,
        probs: Tensor | None = None,
        logits: Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        base = ExpConcrete(temperature, probs=probs, logits=logits, validate_args=validate_args)
        super().__init__(base, validate_args)

    base: ExpConcrete
    mask = property(lambda self: self.base.mask, doc="True for classes not masked out.")

    def rsample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        x = self.base.rsample(sample_shape, generator=generator).exp()
        return torch.where(self.mask, x.clamp(min=torch.finfo(x.dtype).tiny), 0.0)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            value = self._checked_sample(value)
        dt = compute_dtype(value.dtype)
        mask, v = torch.broadcast_tensors(self.mask, value.to(dt))
        # Zeros on unmasked classes (a vertex, as the straight-through form returns) are read as
        # the clamped vertex rsample would give: the density there is finite, though huge.
        log_x = torch.where(mask, v.clamp(min=torch.finfo(value.dtype).tiny), 1.0).log()
        # Jacobian of exp restricted to the face spanned by the unmasked classes.
        log_p = self.base._log_density(torch.where(mask, log_x, -torch.inf)) - log_x.sum(-1)
        return downcast(log_p, value.dtype)


class StraightThroughConcrete(Concrete):
    r"""Straight-through Concrete: one-hot forward, relaxed gradient (Jang et al. 2017).

    :meth:`rsample` returns the exact one-hot :math:`\arg\max_k X_k` (a categorical sample, by the
    rounding property) whose gradient is that of the relaxed :math:`X`. :meth:`rsample_with_relaxed`
    returns both, explicitly; ``log_prob`` is the Concrete density and should be given the
    ``relaxed`` sample (at a vertex it is the density at the clamped vertex, finite but huge).

    Not a Pyro guide (nor anything else that scores a site's value): Pyro calls ``log_prob`` on
    the value the site returned, here the one-hot, which cannot see the relaxed sample behind it,
    so the ELBO would use the huge vertex density. Supported instead: a relaxed
    :class:`Concrete` site in both guide and model, with the hard value formed in the model,
    ``straight_through(one_hot(z.argmax(-1)), z)`` (README, "Distributions"; tested in
    ``tests/distributions/test_pyro.py``).
    """

    def rsample_with_relaxed(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> RelaxedSample:
        x = super().rsample(sample_shape, generator=generator)
        index = x.argmax(-1, keepdim=True)
        hard = torch.zeros_like(x).scatter_(-1, index, 1.0)
        return RelaxedSample(straight_through(hard, x), x)

    def rsample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        return self.rsample_with_relaxed(sample_shape, generator=generator).value
