"""Exact test bench for the score-function family: toy problems, batched draws, and the
statistical assertions (each states its false-alarm rate).

Helpers in a uniquely named module (not ``conftest``), imported as ``from _sf_bench import ...``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import torch
from torch import Tensor

from gumbel_softmax.diagnostics import exact_gradient
from gumbel_softmax.estimators import Estimator

LossFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Problem:
    name: str
    logits: Tensor  # (N, K), float64
    f: LossFn


def _quadratic(n: int, k: int, g: torch.Generator) -> LossFn:
    a = torch.randn(n * k, n * k, generator=g, dtype=torch.float64)
    a = (a + a.T) / 2  # couples every pair of variables
    w = torch.randn(n, k, generator=g, dtype=torch.float64)

    def f(z: Tensor) -> Tensor:
        flat = z.flatten(-2)
        return (flat @ a * flat).sum(-1) + (z * w).sum((-1, -2))

    return f


def _nonlinear(n: int, k: int, g: torch.Generator) -> LossFn:
    w = torch.randn(n, k, generator=g, dtype=torch.float64)
    v = torch.randn(n, k, generator=g, dtype=torch.float64)

    def f(z: Tensor) -> Tensor:
        return torch.exp(0.7 * (z * w).sum((-1, -2))) + torch.sin(3.0 * (z * v).sum((-1, -2)))

    return f


def problems(sizes: tuple[tuple[int, int], ...]) -> list[Problem]:
    """A quadratic (with couplings) and a non-linear objective at each (N, K)."""
    out = []
    for n, k in sizes:
        g = torch.Generator().manual_seed(1000 * n + k)
        logits = torch.randn(n, k, generator=g, dtype=torch.float64)
        out.append(Problem(f"quadratic-{n}x{k}", logits, _quadratic(n, k, g)))
        out.append(Problem(f"nonlinear-{n}x{k}", logits, _nonlinear(n, k, g)))
    return out


CATEGORICAL = problems(((2, 3), (3, 4)))
BINARY = problems(((2, 2), (3, 2)))


def draw(estimator: Estimator, logits: Tensor, f: LossFn, num: int, seed: int) -> Tensor:
    """``num`` independent estimates ``(num, *logits.shape)``, drawn in one batched call.

    Each replica of the logits has its own sample, so the rows are independent draws provided
    the estimator's state is fixed during the call (true for all estimators here: they read their
    state before the call's samples).
    """
    x = logits.expand(num, *logits.shape).clone().requires_grad_(True)
    result = estimator(x, f, generator=torch.Generator().manual_seed(seed))
    (grad,) = torch.autograd.grad(result.surrogate.sum(), x)
    return grad.detach()


def train_steps(
    estimator: Estimator, problem: Problem, steps: int, lr: float = 0.0, batch: int = 64
) -> None:
    """Training-mode calls on ``problem``; with ``lr > 0`` also Adam steps on the estimator's
    own parameters (from the terms its surrogate carries for them). Leaves it in train mode."""
    opt = torch.optim.Adam(estimator.parameters(), lr=lr) if lr > 0 else None
    g = torch.Generator().manual_seed(99)
    estimator.train()
    for _ in range(steps):
        x = problem.logits.expand(batch, *problem.logits.shape).clone().requires_grad_(True)
        surrogate = estimator(x, problem.f, generator=g).surrogate.sum()
        if opt is not None:
            opt.zero_grad()
            surrogate.backward()
            opt.step()


def z_two_sided(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


def z_scores(draws: Tensor, expected: Tensor) -> Tensor:
    """Per-coordinate ``(mean - expected) / (s / sqrt(n))``; 0 where both s and the gap are 0."""
    n = draws.shape[0]
    flat = draws.reshape(n, -1)
    gap = flat.mean(0) - expected.reshape(-1)
    se = flat.std(0) / n**0.5
    # A zero-variance coordinate must match exactly (up to rounding).
    exact = se <= 1e-12 * (1 + expected.reshape(-1).abs())
    return torch.where(exact, torch.where(gap.abs() <= 1e-9, 0.0, torch.inf), gap / se)


def bonferroni_bound(draws: Tensor, alpha: float) -> float:
    """The |z| bound for a family-wise false-alarm rate ``alpha`` over every coordinate."""
    return z_two_sided(alpha / draws[0].numel())


def assert_unbiased(draws: Tensor, expected: Tensor, alpha: float = 1e-3) -> None:
    """Mean of ``draws`` equals ``expected``: per-coordinate z-tests with a Bonferroni bound.

    With n >= 10^4 independent draws the normal approximation of each mean is accurate; the
    family-wise false-alarm rate is at most ``alpha``.
    """
    z = z_scores(draws, expected)
    bound = bonferroni_bound(draws, alpha)
    assert float(z.abs().max()) <= bound, (
        f"estimator mean differs from the exact gradient: max |z| = {float(z.abs().max()):.2f} "
        f"> {bound:.2f} (Bonferroni, alpha={alpha}); z = {z.tolist()}"
    )


def spread(draws: Tensor) -> Tensor:
    """Per-draw squared distance to the mean, ``(n,)``: its mean is the total variance."""
    flat = draws.reshape(draws.shape[0], -1)
    return (flat - flat.mean(0)).pow(2).sum(-1)


def total_variance(draws: Tensor) -> float:
    return float(spread(draws).mean())


def assert_variance_reduced(before: Tensor, after: Tensor, alpha: float = 1e-3) -> None:
    """One-sided Welch z-test that tr Var(after) < tr Var(before) (false-alarm rate ``alpha``)."""
    a, b = spread(before), spread(after)
    se = (a.var() / a.numel() + b.var() / b.numel()).sqrt()
    z = float((a.mean() - b.mean()) / se)
    bound = NormalDist().inv_cdf(1 - alpha)
    assert z > bound, (
        f"variance not reduced: before {float(a.mean()):.4g}, after {float(b.mean()):.4g}, "
        f"z = {z:.2f} <= {bound:.2f}"
    )


__all__ = [
    "BINARY",
    "CATEGORICAL",
    "Problem",
    "assert_unbiased",
    "assert_variance_reduced",
    "bonferroni_bound",
    "draw",
    "exact_gradient",
    "problems",
    "spread",
    "total_variance",
    "train_steps",
    "z_scores",
    "z_two_sided",
]


def variance_table(num: int = 100_000) -> str:
    """Markdown: total variance of each unbiased estimator relative to ``sf`` on one problem.

    Categorical estimators on ``nonlinear-3x4``; ARM/DisARM (and ``sf`` again) on
    ``nonlinear-3x2``. Learned parts are reported at their defaults and after a short training
    run (``train_steps``: 150 Adam steps of batch 64), frozen with ``eval()`` while measured.
    """
    from gumbel_softmax.estimators import get

    def row(label: str, est: Estimator, problem: Problem, ref: float) -> str:
        est.eval()
        v = total_variance(draw(est, problem.logits, problem.f, num, seed=2024))
        return f"| {label} | {problem.name} | {v:.4g} | {v / ref:.3f} |"

    lines = ["| estimator | problem | tr Var | / sf |", "|---|---|---|---|"]
    for problem, names in ((CATEGORICAL[3], None), (BINARY[3], ("arm", "disarm"))):
        ref = total_variance(draw(get("sf"), problem.logits, problem.f, num, seed=2024))
        lines.append(f"| sf | {problem.name} | {ref:.4g} | 1.000 |")
        if names is not None:
            lines += [row(n, get(n), problem, ref) for n in names]
            continue
        ema = get("sf-ema")
        train_steps(ema, problem, steps=50)
        lines.append(row("sf-ema (after 50 updates)", ema, problem, ref))
        lines.append(row("rloo (M=4: 4 evaluations of f)", get("rloo"), problem, ref))
        lines.append(row("muprop", get("muprop"), problem, ref))
        for name, lr in (("nvil", 0.03), ("rebar", 0.05), ("relax", 0.02)):
            kw = {"in_features": problem.logits.numel()} if name != "rebar" else {}
            if name == "nvil":
                kw["normalize"] = False
            lines.append(row(f"{name} (initial)", get(name, **kw), problem, ref))
            est = get(name, **kw)
            train_steps(est, problem, steps=150, lr=lr)
            lines.append(row(f"{name} (trained 150 steps)", est, problem, ref))
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(variance_table())
