"""Figures of a VAE run (matplotlib, Agg backend): training curves, reconstructions, samples from
the prior, and what each latent variable does (:func:`latent_sweep`, :func:`draw_latents`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gumbel_softmax import sample_categorical

from .models import DiscreteVAE
from .records import save_figure

__all__ = [
    "LatentSweep",
    "draw_all",
    "draw_latents",
    "draw_sbn",
    "latent_sweep",
    "sbn_completions",
    "sbn_curves",
]


def _finish(fig: Any, path: Path) -> Path:
    """Lay ``fig`` out, write it atomically to ``path`` and free it; returns ``path``."""
    fig.tight_layout()
    save_figure(fig, path)
    _plt().close(fig)
    return path


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
    return _finish(fig, path)


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
    return _finish(fig, path)


@dataclass(frozen=True)
class LatentSweep:
    """What :func:`latent_sweep` computed: the decoder's pixel means at a base code (the posterior
    mode of one image) and at codes that differ from it in one latent variable.

    Attributes:
        latent: the model's latent type, ``"categorical"`` or ``"bernoulli"``.
        image: ``(D,)`` the image whose posterior mode is the base code.
        base: ``(D,)`` pixel means at the base code (the image's reconstruction).
        pictures: ``(rows, cols, D)`` pixel means at the changed codes.
        change: ``(rows, cols, D)``, ``pictures - base``.
        variables: the latent variable of each row (categorical) or column (Bernoulli).
        unchanged: the ``(row, col)`` cells whose code is the base code itself (categorical: the
            class each variable has in it), framed in the figure.
        row_labels, col_labels: tick labels; ``title``, ``xlabel``, ``ylabel``: the axes' texts.
    """

    latent: str
    image: Tensor
    base: Tensor
    pictures: Tensor
    change: Tensor
    variables: list[int]
    unchanged: list[tuple[int, int]]
    row_labels: list[str]
    col_labels: list[str]
    title: str
    xlabel: str
    ylabel: str


def _check_images(images: object, name: str, dim: int, *, single: bool = False) -> Tensor:
    """``images`` as a ``(n, dim)`` float tensor with ``n >= 1`` and values in [0, 1], else a
    TypeError/ValueError naming ``name``; ``single``: exactly one image, ``(dim,)`` or ``(1, dim)``."""
    if not isinstance(images, Tensor) or not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got {images!r:.80}")
    want = f"({dim},) or (1, {dim})" if single else f"(n, {dim}) with n >= 1"
    shape = tuple(images.shape)
    ok = shape in ((dim,), (1, dim)) if single else (len(shape) == 2 and shape[1] == dim)
    if not ok or images.numel() == 0:
        raise ValueError(f"{name} must have shape {want}, got {shape}")
    if not bool(((images >= 0) & (images <= 1)).all()):
        raise ValueError(f"{name} must hold pixel values in [0, 1] (NaN is not one)")
    return images.reshape(-1, dim)


@torch.no_grad()
def latent_sweep(model: DiscreteVAE, image: Tensor, *, max_variables: int = 20) -> LatentSweep:
    r"""What each latent variable does to the decoding of one image's code.

    The base code is the posterior mode :math:`\hat z = \arg\max_k q(z_n = k \mid x)` of
    ``image``. Categorical: cell ``(row, k)`` decodes :math:`\hat z` with variable
    :math:`n_{\text{row}}` set to class :math:`k` (rows: the ``max_variables`` variables with the
    largest effect :math:`\sum_k \lVert \mu(\hat z_{n \leftarrow k}) - \mu(\hat z) \rVert_1`,
    largest first; columns: the K classes). Bernoulli: one row; column ``j`` decodes
    :math:`\hat z` with bit :math:`n_j` flipped, for the ``max_variables`` bits whose flip changes
    the picture most. :math:`\mu` is the decoder's pixel mean (sigmoid of its logits).

    Args:
        model: the trained VAE (put in eval mode by the caller when that matters).
        image: ``(D,)`` or ``(1, D)`` pixel values in [0, 1].
        max_variables: at most this many variables are shown.

    Raises:
        TypeError: ``model`` is not a :class:`DiscreteVAE`, ``image`` not a float tensor,
            ``max_variables`` not an int.
        ValueError: ``image`` of another shape or with values outside [0, 1]; ``max_variables < 1``.
    """
    if not isinstance(model, DiscreteVAE):
        raise TypeError(f"model must be a DiscreteVAE, got {type(model).__name__}")
    if isinstance(max_variables, bool) or not isinstance(max_variables, int):
        raise TypeError(f"max_variables must be an int, got {max_variables!r}")
    if max_variables < 1:
        raise ValueError(f"max_variables must be >= 1, got {max_variables}")
    like = next(model.parameters())
    x = _check_images(image, "image", model.image_dim, single=True).to(like)
    n, k = model.n_latent, model.n_classes
    mode = model.encode(x)[0].argmax(-1)  # (N,): the class of each variable in the base code
    base_code = torch.nn.functional.one_hot(mode, k).to(x.dtype)

    def decode(codes: Tensor) -> tuple[Tensor, Tensor]:
        # The base code decoded in one batch with the others, so the framed cells (the base
        # code itself) match it up to the rounding of their place in the batch.
        out = torch.sigmoid(model.decode(torch.cat([base_code[None], codes.reshape(-1, n, k)])))
        return out[0], out[1:].reshape(*codes.shape[:-2], -1)

    if model.latent == "categorical":
        # codes[v, c]: the base code with variable v set to class c.
        codes = base_code.expand(n, k, n, k).clone()
        codes[torch.arange(n), :, torch.arange(n)] = torch.eye(k, dtype=x.dtype, device=x.device)
        base, pics = decode(codes)  # (D,), (N, K, D)
        change = pics - base
        order = change.abs().sum((1, 2)).argsort(descending=True)[:max_variables].tolist()
        return LatentSweep(
            latent="categorical",
            image=x[0],
            base=base,
            pictures=pics[order],
            change=change[order],
            variables=order,
            unchanged=[(row, int(mode[v])) for row, v in enumerate(order)],
            row_labels=[f"z{v}" for v in order],
            col_labels=[str(c) for c in range(k)],
            title="the test image's code with one variable set to each class",
            xlabel="class k the variable is set to (framed: the code's own class)",
            ylabel="latent variable (largest effect first)",
        )
    flipped = base_code.expand(n, n, k).clone()
    flipped[torch.arange(n), torch.arange(n)] = 1 - base_code  # bit v flipped in row v
    base, pics = decode(flipped)  # (D,), (N, D)
    change = pics - base
    order = change.abs().sum(-1).argsort(descending=True)[:max_variables].tolist()
    bit = (mode == 0).long().tolist()  # class 0 is "bit on"
    return LatentSweep(
        latent="bernoulli",
        image=x[0],
        base=base,
        pictures=pics[order].unsqueeze(0),
        change=change[order].unsqueeze(0),
        variables=order,
        unchanged=[],
        row_labels=["flipped"],
        col_labels=[f"{v}\n{bit[v]}→{1 - bit[v]}" for v in order],
        title="the test image's code with one bit flipped",
        xlabel="bit n and its flip (the bits whose flip changes the picture most, most first)",
        ylabel="",
    )


def _cells(ax: Any, values: Tensor, sweep: LatentSweep, side: int, **imshow: Any) -> Any:
    """Show ``values (rows, cols, side*side)`` as a grid of cells with the sweep's tick labels."""
    rows, cols = values.shape[:2]
    picture = values.reshape(rows, cols, side, side).permute(0, 2, 1, 3)
    shown = ax.imshow(
        picture.reshape(rows * side, cols * side).cpu().numpy(), interpolation="nearest", **imshow
    )
    ax.set_xticks([side * c + (side - 1) / 2 for c in range(cols)], sweep.col_labels, fontsize=7)
    ax.set_yticks([side * r + (side - 1) / 2 for r in range(rows)], sweep.row_labels, fontsize=7)
    ax.tick_params(length=0)
    for c in range(1, cols):
        ax.axvline(side * c - 0.5, color="0.6", lw=0.5)
    for r in range(1, rows):
        ax.axhline(side * r - 0.5, color="0.6", lw=0.5)
    for r, c in sweep.unchanged:
        ax.add_patch(
            _plt().Rectangle(
                (side * c - 0.5, side * r - 0.5),
                side,
                side,
                fill=False,
                ec="gold",
                lw=1.5,
                clip_on=False,
            )
        )
    return shown


def draw_latents(sweep: LatentSweep, path: str | Path) -> Path:
    """Draw :func:`latent_sweep`'s result into ``path`` (PNG): the image and its reconstruction;
    the decoded pictures of the changed codes; and their change from the reconstruction
    (red: more ink, blue: less, on one colour scale: the largest change in the sweep).

    Raises:
        TypeError: ``sweep`` is not a :class:`LatentSweep`.
        ValueError: ``path``'s directory does not exist.
    """
    if not isinstance(sweep, LatentSweep):
        raise TypeError(f"sweep must be a LatentSweep (from latent_sweep), got {sweep!r:.80}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"path {str(path)!r}: the directory {str(path.parent)!r} does not exist")
    plt = _plt()
    side = math.isqrt(sweep.base.numel())
    rows, cols = sweep.pictures.shape[:2]
    tall = rows >= cols  # categorical: the two panels side by side; Bernoulli: one above the other
    cell = 0.45  # inches
    # The colour bar has its own column (next to the change panel), so the panels stay aligned.
    if tall:
        fig = plt.figure(figsize=(cell * (2 * cols + 2) + 3.4, cell * rows + 1.6))
        grid = fig.add_gridspec(2, 4, width_ratios=[1.6, cols, cols, 0.35])
        ref = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0])]
        pics_ax, change_ax = fig.add_subplot(grid[:, 1]), fig.add_subplot(grid[:, 2])
        bar_ax = fig.add_subplot(grid[:, 3])
    else:
        fig = plt.figure(figsize=(cell * (cols + 2) + 3.0, 2 * cell * rows + 3.6))
        grid = fig.add_gridspec(2, 3, width_ratios=[1.6, cols, 0.35])
        ref = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0])]
        pics_ax, change_ax = fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1])
        bar_ax = fig.add_subplot(grid[1, 2])
    for ax, picture, label in zip(
        ref,
        (sweep.image, sweep.base),
        ("test image", "its reconstruction\n(the base code)"),
        strict=True,
    ):
        ax.imshow(picture.reshape(side, side).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    _cells(pics_ax, sweep.pictures, sweep, side, cmap="gray", vmin=0, vmax=1)
    pics_ax.set_title("decoded pixel means", fontsize=9)
    scale = max(float(sweep.change.abs().max()), 1e-6)
    shown = _cells(change_ax, sweep.change, sweep, side, cmap="RdBu_r", vmin=-scale, vmax=scale)
    change_ax.set_title("change from the reconstruction", fontsize=9)
    bar = fig.colorbar(shown, cax=bar_ax)
    bar.set_label("Δ pixel mean (red: more ink)", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    for ax in (pics_ax, change_ax):
        ax.set_xlabel(sweep.xlabel, fontsize=8)
        ax.set_ylabel(sweep.ylabel, fontsize=8)
    fig.suptitle(f"What the latent variables do: {sweep.title}", fontsize=10)
    return _finish(fig, path)


@torch.no_grad()
def draw_all(
    model: DiscreteVAE, metrics: list[dict[str, Any]], images: Tensor, out_dir: Path, *, seed: int
) -> list[Path]:
    """Draw every figure of a run into ``out_dir``; return their paths.

    * ``curves.png``: training curves;
    * ``reconstructions.png``: test images (odd rows) and the decoder's mean at the posterior mode;
    * ``prior_samples.png``: decoder means at codes drawn from the prior;
    * ``latents.png``: what each latent variable does (:func:`latent_sweep` of the first image,
      drawn by :func:`draw_latents`).

    Args:
        images: ``(n, D)`` test images, ``n >= 1``, values in [0, 1] (the first 32 are shown).

    Raises:
        TypeError / ValueError: ``model`` is not a :class:`DiscreteVAE`, ``images`` is not as
            above, ``out_dir`` is an existing file.
    """
    if not isinstance(model, DiscreteVAE):
        raise TypeError(f"model must be a DiscreteVAE, got {type(model).__name__}")
    images = _check_images(images, "images", model.image_dim)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {str(out_dir)!r} is a file, not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    g = torch.Generator(device=images.device).manual_seed(seed)
    n, k = model.n_latent, model.n_classes
    paths = [training_curves(metrics, out_dir / "curves.png")]

    x = images[:32]
    rows = max(1, x.shape[0] // 8)
    x = x[: rows * 8] if x.shape[0] >= 8 else x
    cols = x.shape[0] // rows
    mode = torch.nn.functional.one_hot(model.encode(x).argmax(-1), k).to(x.dtype)
    recon = torch.sigmoid(model.decode(mode))
    pairs = torch.stack([x.reshape(rows, cols, -1), recon.reshape(rows, cols, -1)], 1)
    paths.append(
        _save_grid(
            _grid(pairs.reshape(-1, x.shape[-1]), 2 * rows, cols),
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
    paths.append(draw_latents(latent_sweep(model, images[0]), out_dir / "latents.png"))
    model.train(was_training)
    return paths


# ------------------------------------------------------------------------------------- SBN
def sbn_curves(metrics: list[dict[str, Any]], path: Path) -> Path:
    """The training cost (one sample) and the validation NLL (m samples) against the step."""
    plt = _plt()
    train = [r for r in metrics if r.get("kind") == "train"]
    evals = [r for r in metrics if r.get("kind") == "eval"]
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=0.8,
                label="train −log p(y|h), one sample of h")  # fmt: skip
    if evals:
        m = evals[-1].get("m")
        ax.plot([r["step"] for r in evals], [r["nll"] for r in evals], "o-", ms=3,
                label=f"valid NLL (m={m})")  # fmt: skip
        ax.legend()
    ax.set_xlabel("step")
    ax.set_ylabel("nats per lower half")
    ax.grid(alpha=0.3)
    return _finish(fig, path)


@torch.no_grad()
def sbn_completions(
    model: Any, images: Tensor, path: Path, *, samples: int = 6, rows: int = 8, seed: int = 0
) -> Path:
    """Upper halves of ``rows`` test images (evenly spaced through ``images``) completed by the
    model: column 0 the test image, then
    ``samples`` completions (the upper half given, the lower half the pixel means of
    :math:`p(y \\mid h)` at independent one-hot samples :math:`h \\sim p(h \\mid x)`)."""
    images = _check_images(images, "images", 784)
    # evenly spaced through ``images`` (the test split is sorted by digit: the first are zeros)
    x = images[torch.linspace(0, images.shape[0] - 1, min(rows, images.shape[0])).long()]
    upper = x[:, :392]
    g = torch.Generator(device=x.device).manual_seed(seed)
    cells = [x]
    for _ in range(samples):
        z = model.sample(model.layer_logits(0, upper), generator=g)
        for layer in range(1, model.layers):
            z = model.sample(model.layer_logits(layer, model.code(z)), generator=g)
        lower = torch.sigmoid(model.output(model.code(z)))
        cells.append(torch.cat([upper, lower], -1))
    picture = _grid(torch.stack(cells, 1).reshape(-1, 784), x.shape[0], samples + 1)
    return _save_grid(
        picture,
        path,
        "upper halves given,\nlower halves sampled",
        ylabel="test image",
        xlabel=f"1: test image\n2-{samples + 1}: samples (means)",
    )


@torch.no_grad()
def draw_sbn(
    model: Any, metrics: list[dict[str, Any]], images: Tensor, out_dir: Path, *, seed: int
) -> list[Path]:
    """``curves.png`` (:func:`sbn_curves`) and ``completions.png`` (:func:`sbn_completions`)
    of an SBN run, drawn from ``images`` (test images, ``(n, 784)``) into ``out_dir``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {str(out_dir)!r} is a file, not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        return [
            sbn_curves(metrics, out_dir / "curves.png"),
            sbn_completions(model, images, out_dir / "completions.png", seed=seed),
        ]
    finally:
        model.train(was_training)
