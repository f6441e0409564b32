r"""Evaluation of a discrete VAE with one-hot latents: the negative ELBO and the IW bound.

With :math:`q = q(z\mid x)`, one-hot :math:`z_i \sim q` and
:math:`w_i = p(x\mid z_i)\,p(z_i)/q(z_i\mid x)`:

* negative ELBO, one sample (the paper's Table 1 quantity for training-time monitoring):
  :math:`-\mathcal L_1 = -\log p(x\mid z_1) + \mathrm{KL}(q\,\|\,p)` (analytic KL);
* importance-weighted bound with :math:`m` samples (Burda et al., arXiv:1509.00519; the paper
  evaluates with :math:`m = 1000`):
  :math:`-\mathcal L_m = -\log \tfrac1m \sum_{i=1}^m w_i`.

In expectation :math:`-\log p(x) \le -\mathcal L_m \le -\mathcal L_1`, and :math:`\mathcal L_m`
increases to :math:`\log p(x)` as :math:`m \to \infty`. Both are reported in nats per image,
averaged over the images. The :math:`m` samples are drawn in chunks of ``chunk`` and combined with
a running log-sum-exp, so memory is ``O(chunk · batch · 784)`` whatever ``m`` is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gumbel_softmax import sample_categorical

from .models import DiscreteVAE

__all__ = ["Bounds", "evaluate", "iw_log_weights_bound"]


@dataclass(frozen=True)
class Bounds:
    """Per-image averages (nats): ``neg_elbo`` (one discrete sample), ``iw_bound`` (m samples)."""

    neg_elbo: float
    iw_bound: float
    m: int
    n_images: int


@torch.no_grad()
def iw_log_weights_bound(
    model: DiscreteVAE,
    x: Tensor,
    *,
    m: int,
    chunk: int = 100,
    generator: torch.Generator | None = None,
) -> Tensor:
    r""":math:`\log \frac1m \sum_i w_i` per image, ``x (B, D)`` -> ``(B,)``, chunked over ``m``."""
    if m < 1 or chunk < 1:
        raise ValueError(f"m and chunk must be >= 1, got m={m}, chunk={chunk}")
    logits = model.encode(x)
    acc = torch.full(x.shape[:1], -math.inf, dtype=logits.dtype, device=logits.device)
    done = 0
    while done < m:
        c = min(chunk, m - done)
        z = sample_categorical(logits.expand(c, *logits.shape), one_hot=True, generator=generator)
        logw = model.log_joint_minus_q(z, x, logits)  # (c, B)
        acc = torch.logaddexp(acc, torch.logsumexp(logw, dim=0))
        done += c
    return acc - math.log(m)


@torch.no_grad()
def evaluate(
    model: DiscreteVAE,
    data: Tensor,
    *,
    m: int,
    batch_size: int = 100,
    chunk: int = 100,
    generator: torch.Generator | None = None,
) -> Bounds:
    """Average negative ELBO (one one-hot sample) and negative IW bound (``m`` samples) on ``data``.

    Args:
        model: the VAE (put in eval mode for the call and restored after).
        data: ``(n, D)`` images in ``[0, 1]``.
        m: importance samples per image (``m >= 1``).
        batch_size: images per batch.
        chunk: importance samples per chunk.
        generator: the random source of the latent samples.

    Raises:
        ValueError: an empty ``data`` or ``m``/``batch_size``/``chunk`` below 1.
    """
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"data must be a non-empty (n, D) tensor, got shape {tuple(data.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    total_elbo = 0.0
    total_iw = 0.0
    try:
        for start in range(0, data.shape[0], batch_size):
            x = data[start : start + batch_size]
            logits = model.encode(x)
            z = sample_categorical(logits, one_hot=True, generator=generator)
            total_elbo += float((model.reconstruction_nll(z, x) + model.kl(logits)).sum())
            total_iw -= float(
                iw_log_weights_bound(model, x, m=m, chunk=chunk, generator=generator).sum()
            )
    finally:
        model.train(was_training)
    n = data.shape[0]
    return Bounds(neg_elbo=total_elbo / n, iw_bound=total_iw / n, m=m, n_images=n)
