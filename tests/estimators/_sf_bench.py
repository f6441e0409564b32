"""The estimator tests' bench: how to build any registered estimator, the problems with their
exact answers, batched gradient draws and short training runs. The statistical assertions are
those of :mod:`gumbel_softmax.testing` (each states its false-alarm rate).

Helpers in a uniquely named module (not ``conftest``), imported as ``from _sf_bench import ...``.
Run as a script it prints the variance table of the unbiased estimators.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gumbel_softmax.diagnostics import ToyProblem, exact_gradient, toy_problems
from gumbel_softmax.estimators import Estimator, build, estimator_class

LossFn = Callable[[Tensor], Tensor]

#: The enumerated problems of :func:`gumbel_softmax.diagnostics.toy_problems` (float64): two
#: objectives at (N, K) = (2, 3) and (4, 4).
STANDARD = list(
    toy_problems(
        names=["quadratic-small", "quadratic-large", "nonlinear-small", "nonlinear-large"]
    ).values()
)


def num_classes(name: str, categorical: int = 3) -> int:
    """K for generic tests of ``name``: 2 for binary-only estimators, else ``categorical``."""
    return 2 if estimator_class(name).binary_only else categorical


def make(name: str, n: int = 3, k: int | None = None, **options: object) -> Estimator:
    """The registered estimator ``name`` built for latents ``(N, K)`` = ``(n, k)`` (default K:
    :func:`num_classes`), as a training loop builds it: the one way the tests build estimators
    by name, so a newly registered estimator is covered without editing a test."""
    return build(name, event_shape=(n, num_classes(name) if k is None else k), **options)


def _quadratic(n: int, k: int, g: torch.Generator) -> LossFn:
    a = torch.randn(n * k, n * k, generator=g, dtype=torch.float64)
    a = (a + a.T) / 2  # couples every pair of variables
    w = torch.randn(n, k, generator=g, dtype=torch.float64)

    def f(z: Tensor) -> Tensor:
        flat = z.flatten(-2)
        return (flat @ a.to(z.dtype) * flat).sum(-1) + (z * w.to(z.dtype)).sum((-1, -2))

    return f


def _nonlinear(n: int, k: int, g: torch.Generator) -> LossFn:
    w = torch.randn(n, k, generator=g, dtype=torch.float64)
    v = torch.randn(n, k, generator=g, dtype=torch.float64)

    def f(z: Tensor) -> Tensor:
        return torch.exp(0.7 * (z * w.to(z.dtype)).sum((-1, -2))) + torch.sin(
            3.0 * (z * v.to(z.dtype)).sum((-1, -2))
        )

    return f


def problems(sizes: tuple[tuple[int, int], ...]) -> list[ToyProblem]:
    """A quadratic (with couplings) and a non-linear objective at each (N, K), float64, with
    the exact gradient by enumeration."""
    out = []
    for n, k in sizes:
        g = torch.Generator().manual_seed(1000 * n + k)
        logits = torch.randn(n, k, generator=g, dtype=torch.float64)
        for kind, maker in (("quadratic", _quadratic), ("nonlinear", _nonlinear)):
            f = maker(n, k, g)
            name = f"{kind}-{n}x{k}"
            out.append(ToyProblem(name, logits, f, exact_gradient(f, logits), name))
    return out


CATEGORICAL = problems(((2, 3), (3, 4)))
BINARY = problems(((2, 2), (3, 2)))


def draw(estimator: Estimator, logits: Tensor, f: LossFn, num: int, seed: int) -> Tensor:
    """``num`` independent estimates ``(num, *logits.shape)`` of the gradient of E f, drawn in
    one batched call, each divided by the call's ``result.logits_scale`` (NVIL's normalisation,
    1 for the others), so that an unbiased estimator's draws average to the exact gradient.

    Each replica of the logits has its own sample, so the rows are independent draws provided
    the estimator's state is fixed during the call (true for every estimator: each reads its
    state before the call's samples, and ``eval()`` freezes learned parts).
    """
    x = logits.expand(num, *logits.shape).clone().requires_grad_(True)
    result = estimator(x, f, generator=torch.Generator().manual_seed(seed))
    (grad,) = torch.autograd.grad(result.surrogate.sum(), x)
    return grad.detach() / result.logits_scale


def train_steps(
    estimator: Estimator, problem: ToyProblem, steps: int, lr: float = 0.0, batch: int = 64
) -> None:
    """Training-mode calls on ``problem`` (running statistics move); with ``lr > 0`` also Adam
    steps on the estimator's own parameters, if it has any (from the terms its surrogate
    carries for them). Leaves it in train mode."""
    params = [p for p in estimator.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr) if lr > 0 and params else None
    g = torch.Generator().manual_seed(99)
    estimator.train()
    for _ in range(steps):
        x = problem.logits.expand(batch, *problem.logits.shape).clone().requires_grad_(True)
        surrogate = estimator(x, problem.f, generator=g).surrogate.sum()
        if opt is not None:
            opt.zero_grad()
            surrogate.backward()
            opt.step()


def spread(draws: Tensor) -> Tensor:
    """Per-draw squared distance to the mean, ``(n,)``: its mean is the total variance."""
    flat = draws.reshape(draws.shape[0], -1)
    return (flat - flat.mean(0)).pow(2).sum(-1)


def total_variance(draws: Tensor) -> float:
    return float(spread(draws).mean())


__all__ = [
    "BINARY",
    "CATEGORICAL",
    "STANDARD",
    "draw",
    "make",
    "num_classes",
    "problems",
    "spread",
    "total_variance",
    "train_steps",
]


def variance_table(num: int = 100_000) -> str:
    """Markdown: total variance of each unbiased estimator relative to ``sf`` on one problem.

    Categorical estimators on ``nonlinear-3x4``; ARM/DisARM (and ``sf`` again) on
    ``nonlinear-3x2``. Learned parts are reported at their defaults and after a short training
    run (``train_steps``: 150 Adam steps of batch 64), frozen with ``eval()`` while measured.
    """

    def row(label: str, est: Estimator, problem: ToyProblem, ref: float) -> str:
        est.eval()
        v = total_variance(draw(est, problem.logits, problem.f, num, seed=2024))
        return f"| {label} | {problem.name} | {v:.4g} | {v / ref:.3f} |"

    lines = ["| estimator | problem | tr Var | / sf |", "|---|---|---|---|"]
    for problem, names in ((CATEGORICAL[3], None), (BINARY[3], ("arm", "disarm"))):
        n, k = problem.logits.shape
        ref = total_variance(draw(make("sf", n, k), problem.logits, problem.f, num, seed=2024))
        lines.append(f"| sf | {problem.name} | {ref:.4g} | 1.000 |")
        if names is not None:
            lines += [row(name, make(name, n, k), problem, ref) for name in names]
            continue
        ema = make("sf-ema", n, k)
        train_steps(ema, problem, steps=50)
        lines.append(row("sf-ema (after 50 updates)", ema, problem, ref))
        lines.append(row("rloo (M=4: 4 evaluations of f)", make("rloo", n, k), problem, ref))
        lines.append(row("muprop", make("muprop", n, k), problem, ref))
        for name, lr in (("nvil", 0.03), ("rebar", 0.05), ("relax", 0.02)):
            kw = {"normalize": False} if name == "nvil" else {}
            lines.append(row(f"{name} (initial)", make(name, n, k, **kw), problem, ref))
            est = make(name, n, k, **kw)
            train_steps(est, problem, steps=150, lr=lr)
            lines.append(row(f"{name} (trained 150 steps)", est, problem, ref))
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(variance_table())
