"""The Concrete distribution on the 2-simplex: the README figure and the facts it illustrates.

``python -m gumbel_softmax.lab.simplex --out docs/concrete_simplex.png`` redraws the figure and
prints measured frequencies of the rounding property and distances to the nearest vertex.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import torch

import gumbel_softmax as gs
from gumbel_softmax.distributions import Concrete

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
    """Draw the log-density of Concrete(probs, tau) on the 2-simplex with samples on top."""
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    lines.append(
        f"zero temperature: E[1 - max y] / tau -> (1 - sum p^2) log 2 = {float(limit):.4f}; "
        f"measured {float((1 - gs.gumbel_softmax(logits.expand(num_samples, 3), 1e-3, generator=g).max(-1).values).mean()) / 1e-3:.4f} at tau = 1e-3"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/concrete_simplex.png", help="figure path")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    path = plot_concrete_simplex(args.out, seed=args.seed)
    for line in measured_facts(seed=args.seed):
        print(line)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
