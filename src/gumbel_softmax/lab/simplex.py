"""The Concrete distribution on the 2-simplex: the README figure and the facts it illustrates.

``python -m gumbel_softmax.lab.simplex --out docs/concrete_simplex.png`` redraws the README's
figure (without ``--out``: ``concrete_simplex.png`` in the current directory) and prints measured
frequencies of the rounding property and distances to the nearest vertex.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import torch

import gumbel_softmax as gs
from gumbel_softmax.distributions import Concrete

from .records import save_figure

#: The class probabilities of the figure (K = 3).
PROBS = (0.55, 0.3, 0.15)


def _to_plane(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Barycentric (x1, x2, x3) to the plane, vertices at (0, 0), (1, 0) and (1/2, sqrt(3)/2)."""
    return x[..., 1] + x[..., 2] / 2, x[..., 2] * math.sqrt(3) / 2


def plot_concrete_simplex(
    path: str | Path,
    temperatures: Sequence[float] = (5.0, 1.0, 0.5, 0.1),
    probs: Sequence[float] = PROBS,
    *,
    num_samples: int = 1500,
    seed: int = 0,
) -> Path:
    """Draw the log-density of Concrete(probs, tau) on the 2-simplex with samples on top, into
    ``path`` (format from its suffix; written atomically, missing directories created)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.tri as mtri

    logits = torch.tensor(probs, dtype=torch.float64).log()
    g = torch.Generator().manual_seed(seed)
    n = 120
    i, j = torch.meshgrid(torch.arange(1, n), torch.arange(1, n), indexing="ij")
    keep = i + j < n
    grid = torch.stack([i[keep], j[keep], n - i[keep] - j[keep]], -1).double() / n
    px, py = _to_plane(grid)
    tri = mtri.Triangulation(px.numpy(), py.numpy())
    fig, axes = plt.subplots(1, len(temperatures), figsize=(3.2 * len(temperatures), 3.2))
    for ax, tau in zip(axes, temperatures, strict=True):
        d = Concrete(tau, logits=logits)
        lp = d.log_prob(grid).clamp(min=-8, max=12)
        ax.tricontourf(tri, lp.numpy(), levels=30, cmap="viridis")
        sx, sy = _to_plane(d.sample((num_samples,), generator=g))
        ax.scatter(sx.numpy(), sy.numpy(), s=1.5, c="white", alpha=0.5, linewidths=0)
        ax.plot([0, 1, 0.5, 0], [0, 0, math.sqrt(3) / 2, 0], c="k", lw=0.8)
        ax.set_title(f"τ = {tau:g}")
        ax.set_aspect("equal")
        ax.axis("off")
    fig.suptitle(f"Concrete({', '.join(f'{p:g}' for p in probs)}; τ): log-density and samples")
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)


def measured_facts(
    probs: Sequence[float] = PROBS, *, num_samples: int = 200_000, seed: int = 0
) -> list[str]:
    """Measure the rounding property and the zero-temperature limit; return printable lines."""
    logits = torch.tensor(probs, dtype=torch.float64).log()
    p = torch.tensor(probs, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    lines = [f"class probabilities        {[round(v, 4) for v in p.tolist()]}"]
    for tau in (10.0, 1.0, 0.1, 0.001):
        y = gs.gumbel_softmax(logits.expand(num_samples, 3), tau, generator=g)
        freq = torch.bincount(y.argmax(-1), minlength=3).double() / num_samples
        dist = float((1 - y.max(-1).values).mean())
        lines.append(
            f"tau = {tau:<6g} argmax freq {[round(v, 4) for v in freq.tolist()]}  "
            f"E[1 - max_k y_k] = {dist:.3g}"
        )
    limit = (1 - (p * p).sum()) * math.log(2)
    # Near a tie of classes i, j (density p_i p_j) 1 - max y = sigmoid(-|gap|/tau), whose integral
    # over the gap is 2 tau log 2; the rest of the mass is exponentially small in 1/tau.
    d = (
        1 - gs.gumbel_softmax(logits.expand(num_samples, 3), 1e-3, generator=g).max(-1).values
    ) / 1e-3
    se = float(d.std()) / math.sqrt(num_samples)  # the draws are rare and large: the mean is noisy
    lines.append(
        f"zero temperature: E[1 - max y] / tau -> (1 - sum p^2) log 2 = {float(limit):.4f}; "
        f"measured {float(d.mean()):.4f} +- {se:.4f} (one standard error) at tau = 1e-3"
    )
    return lines


PROG = "python -m gumbel_softmax.lab.simplex"
DEFAULT_OUT = "concrete_simplex.png"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Draw the Concrete distribution on the 2-simplex (the README figure) and print "
        "measured frequencies of the rounding property and distances to the nearest vertex.",
        allow_abbrev=False,
    )
    p.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="PATH",
        help=f"where to write the figure; its format follows the suffix (.png, .pdf, .svg, ...); "
        f"missing parent directories are created (default: {DEFAULT_OUT} in the current "
        "directory; the README's figure is docs/concrete_simplex.png)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--samples",
        type=int,
        default=200_000,
        help="samples per measured frequency (default: 200000)",
    )
    return p


def _check_out(p: argparse.ArgumentParser, out: str) -> Path:
    """``out`` as a path the figure can be written to, else ``p.error`` naming it."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(out)
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.is_dir() or not path.name:
        p.error(f"--out {out!r} is a directory; give a file name, e.g. {path / DEFAULT_OUT}")
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        p.error(
            f"--out {out!r}: unknown figure format {path.suffix or '(no suffix)'!r}; "
            f"use one of {sorted('.' + f for f in formats)}"
        )
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            p.error(f"--out {out!r}: {str(parent)!r} is a file, not a directory")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: ``python -m gumbel_softmax.lab.simplex [--out PATH] [--seed S]
    [--samples N]``. Bad options end with ``<prog>: error: ...`` and exit status 2."""
    p = parser()
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    if args.samples < 1:
        p.error(f"--samples must be >= 1, got {args.samples}")
    out = _check_out(p, args.out)
    try:
        path = plot_concrete_simplex(out, seed=args.seed)
    except OSError as err:  # unwritable directory, disk full, ...
        p.exit(2, f"{PROG}: error: --out {args.out!r}: cannot write the figure: {err}\n")
    for line in measured_facts(num_samples=args.samples, seed=args.seed):
        print(line)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
