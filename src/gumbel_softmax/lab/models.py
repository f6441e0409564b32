r"""Variational autoencoders with discrete latent codes (Jang, Gu & Poole 2017, arXiv:1611.01144).

One model class covers both latent types of the paper's Table 1, so that every estimator of the
registry trains both through the same interface ``estimator(logits, f, generator=...)``:

* **categorical**: :math:`N` variables of :math:`K` classes (default 20 x 10). The encoder emits
  ``(*batch, N, K)`` logits.
* **bernoulli**: :math:`N` bits (default 200). The encoder emits one log-odds :math:`\ell_n` per
  bit and the model hands the estimator the two-class logits ``(ℓ_n, 0)`` of shape
  ``(*batch, N, 2)``, class 0 meaning "bit on". A two-class Gumbel-Softmax at logits
  :math:`(\ell, 0)` *is* the binary Concrete / relaxed Bernoulli with log-odds :math:`\ell`
  (the difference of two Gumbels is logistic), so nothing is lost by this choice and estimators
  that only handle categorical logits work unchanged. The decoder reads ``z[..., 0]``.

Architecture (the authors' reference notebook): encoder MLP ``784-512-256-(N·K')`` and mirror
decoder ``(N·K'')-256-512-784`` with ReLU, where ``K' = K`` (categorical) or 1 (Bernoulli log-odds)
and ``K'' = K`` or 1. Likelihood: independent Bernoulli pixels with logits from the decoder,
:math:`-\log p(x\mid z) = \sum_d \mathrm{BCEWithLogits}(\text{dec}(z)_d, x_d)`.

Prior: uniform over the :math:`K^N` codes, or a learned factorised categorical ``prior_logits``
``(N, K)``. The KL term is analytic,
:math:`\mathrm{KL}(q\,\|\,p) = \sum_n \sum_k q_{nk} (\log q_{nk} - \log p_{nk})`,
so only the reconstruction term goes through the gradient estimator.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DiscreteVAE", "Latent", "Prior"]

Latent = Literal["categorical", "bernoulli"]
Prior = Literal["uniform", "learned"]
IMAGE_DIM = 784


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DiscreteVAE(nn.Module):
    r"""A VAE whose code is ``n_latent`` discrete variables, categorical or Bernoulli.

    Args:
        latent: ``"categorical"`` or ``"bernoulli"`` (then ``n_classes`` must be 2).
        n_latent: :math:`N`, the number of latent variables.
        n_classes: :math:`K`, classes per variable (2 for Bernoulli).
        hidden: the hidden sizes of the encoder (the decoder mirrors them).
        prior: ``"uniform"`` or ``"learned"`` (a learned factorised categorical prior).
        image_dim: the data dimension (784 for MNIST).

    Shapes:
        ``encode(x)``: ``x (*batch, D)`` -> logits ``(*batch, N, K)``.
        ``decode(z)``: ``z (*s, *batch, N, K)`` -> pixel logits ``(*s, *batch, D)``.

    Raises:
        ValueError: an unknown ``latent`` or ``prior``, non-positive sizes, or Bernoulli with
            ``n_classes != 2``.
    """

    def __init__(
        self,
        *,
        latent: Latent = "categorical",
        n_latent: int = 20,
        n_classes: int = 10,
        hidden: tuple[int, ...] = (512, 256),
        prior: Prior = "uniform",
        image_dim: int = IMAGE_DIM,
    ) -> None:
        super().__init__()
        if latent not in ("categorical", "bernoulli"):
            raise ValueError(f"latent must be 'categorical' or 'bernoulli', got {latent!r}")
        if prior not in ("uniform", "learned"):
            raise ValueError(f"prior must be 'uniform' or 'learned', got {prior!r}")
        for name, v in (("n_latent", n_latent), ("n_classes", n_classes), ("image_dim", image_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        if latent == "bernoulli" and n_classes != 2:
            raise ValueError(f"a bernoulli latent has n_classes=2, got n_classes={n_classes}")
        if not hidden or any(
            isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden
        ):
            raise ValueError(f"hidden must be a non-empty tuple of positive ints, got {hidden!r}")
        self.latent: Latent = latent
        self.n_latent = n_latent
        self.n_classes = n_classes
        self.image_dim = image_dim
        code_out = n_latent * (n_classes if latent == "categorical" else 1)
        self.encoder = _mlp([image_dim, *hidden, code_out])
        self.decoder = _mlp([code_out, *reversed(hidden), image_dim])
        self.prior_logits: nn.Parameter | None = (
            nn.Parameter(torch.zeros(n_latent, n_classes)) if prior == "learned" else None
        )

    # ------------------------------------------------------------------ model pieces
    def encode(self, x: Tensor) -> Tensor:
        """Posterior logits ``(*batch, N, K)`` of :math:`q(z\\mid x)`."""
        h = self.encoder(x)
        if self.latent == "bernoulli":
            # Two-class logits (ℓ, 0): softmax gives (σ(ℓ), 1-σ(ℓ)), class 0 = bit on.
            return torch.stack([h, torch.zeros_like(h)], dim=-1)
        return h.unflatten(-1, (self.n_latent, self.n_classes))

    def decode(self, z: Tensor) -> Tensor:
        """Pixel logits ``(*s, *batch, D)`` from one-hot or relaxed codes ``(*s, *batch, N, K)``."""
        code = z[..., 0] if self.latent == "bernoulli" else z.flatten(-2)
        return self.decoder(code)

    def prior_log_probs(self) -> Tensor:
        """:math:`\\log p(z_n = k)`, shape ``(N, K)``."""
        if self.prior_logits is None:
            like = next(self.decoder.parameters())
            return torch.full(
                (self.n_latent, self.n_classes),
                -math.log(self.n_classes),
                device=like.device,
                dtype=like.dtype,
            )
        return torch.log_softmax(self.prior_logits, dim=-1)

    # ------------------------------------------------------------------ densities
    def reconstruction_nll(self, z: Tensor, x: Tensor) -> Tensor:
        r""":math:`-\log p(x\mid z)` summed over pixels: ``z (*s, *batch, N, K)``, ``x (*batch, D)``
        -> ``(*s, *batch)``. Relaxed ``z`` gives the relaxed objective used in training."""
        logits = self.decode(z)
        return F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none"
        ).sum(-1)

    def kl(self, logits: Tensor) -> Tensor:
        r"""Analytic :math:`\mathrm{KL}(q(z\mid x)\,\|\,p(z))`: ``(*batch, N, K)`` -> ``(*batch)``.

        The sum runs over the variables and classes of the factorised posterior and prior.
        """
        log_q = torch.log_softmax(logits, dim=-1)
        # q·(log q - log p) with log q from log_softmax, finite for finite logits: where q
        # underflows to 0 the term and its gradient are exactly 0. (xlogy(q, q) would give the
        # gradient 0/0 = NaN there, which a confident encoder reaches after a few epochs.)
        return (log_q.exp() * (log_q - self.prior_log_probs())).sum((-2, -1))

    def log_joint_minus_q(self, z: Tensor, x: Tensor, logits: Tensor) -> Tensor:
        r"""Log importance weight :math:`\log p(x\mid z) + \log p(z) - \log q(z\mid x)` for one-hot
        ``z (*s, *batch, N, K)`` -> ``(*s, *batch)``."""
        log_q = (z * torch.log_softmax(logits, dim=-1)).sum((-2, -1))
        log_p = (z * self.prior_log_probs()).sum((-2, -1))
        return -self.reconstruction_nll(z, x) + log_p - log_q
