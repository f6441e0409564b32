"""Figures of a VAE run (matplotlib, Agg backend): training curves, reconstructions, samples from
the prior, and what each latent variable does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gumbel_softmax import sample_categorical

from .models import DiscreteVAE

__all__ = ["draw_all"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and in tests
    import matplotlib.pyplot as plt

    return plt


def _grid(images: Tensor, rows: int, cols: int) -> Tensor:
    """``(rows*cols, 784)`` -> one ``(rows*28, cols*28)`` picture."""
    return images.reshape(rows, cols, 28, 28).permute(0, 2, 1, 3).reshape(rows * 28, cols * 28)


def _save_grid(picture: Tensor, path: Path, title: str, ylabel: str = "", xlabel: str = "") -> Path:
    plt = _plt()
    h, w = picture.shape
    fig, ax = plt.subplots(figsize=(max(3.0, w / 56), max(3.0, h / 56) + 0.4))
    ax.imshow(picture.cpu().numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def training_curves(metrics: list[dict[str, Any]], path: Path) -> Path:
    """Training loss (relaxed objective), validation negative ELBO and IW bound, temperature."""
    plt = _plt()
    train = [r for r in metrics if r.get("kind") == "train"]
    evals = [r for r in metrics if r.get("kind") == "eval"]
    fig, (ax, axt) = plt.subplots(1, 2, figsize=(10, 4))
    if train:
        ax.plot(
            [r["step"] for r in train],
            [r["loss"] for r in train],
            lw=0.8,
            label="train loss (training objective)",
        )
    if evals:
        m = evals[-1].get("m")
        ax.plot(
            [r["step"] for r in evals],
            [r["neg_elbo"] for r in evals],
            "o-",
            ms=3,
            label="valid −ELBO (one-hot, 1 sample)",
        )
        ax.plot(
            [r["step"] for r in evals],
            [r["iw_bound"] for r in evals],
            "s-",
            ms=3,
            label=f"valid −IW bound (m={m})",
        )
    values = [r["loss"] for r in train[len(train) // 10 :]]
    values += [r[k] for r in evals for k in ("neg_elbo", "iw_bound")]
    if values:
        ax.set_ylim(min(values) - 5, max(values) + 10)
    ax.set_xlabel("step")
    ax.set_ylabel("nats per image")
    if train or evals:
        ax.legend()
    ax.grid(alpha=0.3)
    temps = [(r["step"], r["temperature"]) for r in train if r.get("temperature") is not None]
    if temps:
        axt.plot(*zip(*temps, strict=True))
    axt.set_xlabel("step")
    axt.set_ylabel("temperature τ")
    axt.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@torch.no_grad()
def draw_all(
    model: DiscreteVAE, metrics: list[dict[str, Any]], images: Tensor, out_dir: Path, *, seed: int
) -> list[Path]:
    """Draw every figure of a run into ``out_dir``; return their paths.

    * ``curves.png``: training curves;
    * ``reconstructions.png``: test images (odd rows) and the decoder's mean at the posterior mode;
    * ``prior_samples.png``: decoder means at codes drawn from the prior;
    * ``latents.png``: what each latent variable does: starting from the posterior mode of one test
      image, each row sets one variable to each class ``k`` (columns), all else fixed; the rows are
      the (at most 20) variables with the largest effect on the picture, largest first, and a last
      column shows where each one acts (max - min over its classes, scaled to [0, 1] per row).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    g = torch.Generator(device=images.device).manual_seed(seed)
    n, k = model.n_latent, model.n_classes
    paths = [training_curves(metrics, out_dir / "curves.png")]

    x = images[:32]
    rows = max(1, x.shape[0] // 8)
    x = x[: rows * 8]
    mode = torch.nn.functional.one_hot(model.encode(x).argmax(-1), k).to(x.dtype)
    recon = torch.sigmoid(model.decode(mode))
    pairs = torch.stack([x.reshape(rows, 8, -1), recon.reshape(rows, 8, -1)], 1).reshape(-1, 784)
    paths.append(
        _save_grid(
            _grid(pairs, 2 * rows, 8),
            out_dir / "reconstructions.png",
            "test images (odd rows), reconstructions (even)",
        )
    )

    prior = model.prior_log_probs().expand(64, n, k)
    z = sample_categorical(prior, one_hot=True, generator=g)
    paths.append(
        _save_grid(
            _grid(torch.sigmoid(model.decode(z)), 8, 8),
            out_dir / "prior_samples.png",
            "samples from the prior (means)",
        )
    )

    # Every variable set to every class, the rest at the posterior mode of one test image.
    base = mode[:1].expand(n * k, n, k).clone()
    for var in range(n):
        base[var * k : (var + 1) * k, var] = torch.eye(k, dtype=base.dtype, device=base.device)
    pics = torch.sigmoid(model.decode(base)).reshape(n, k, -1)
    # Show the (at most 20) variables whose classes change the picture most, most first.
    effect = (pics - pics.mean(1, keepdim=True)).abs().sum((1, 2))
    order = effect.argsort(descending=True)[: min(n, 20)]
    shown = [int(i) for i in order]
    # Last column: where the variable acts, max - min over its classes, scaled per row.
    change = pics.amax(1) - pics.amin(1)
    change = change / change.amax(-1, keepdim=True).clamp_min(1e-6)
    table = torch.cat([pics, change.unsqueeze(1)], 1)[order]
    paths.append(
        _save_grid(
            _grid(table.reshape(-1, pics.shape[-1]), len(shown), k + 1),
            out_dir / "latents.png",
            "each latent variable set to each class; last column: where it acts",
            ylabel=f"variables {shown[:6]}... (largest effect first)"
            if n > 20
            else "variable (largest effect first)",
            xlabel=("class k" if model.latent == "categorical" else "bit on | off")
            + " | change (scaled)",
        )
    )
    model.train(was_training)
    return paths
