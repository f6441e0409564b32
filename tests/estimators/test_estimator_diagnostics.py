"""gradient_stats and the toy problems of gumbel_softmax.diagnostics."""

from __future__ import annotations

import pytest
import torch
from _sf_bench import make, train_steps

from gumbel_softmax.diagnostics import (
    ToyProblem,
    exact_expectation,
    exact_gradient,
    gradient_stats,
    separable_expectation,
    toy_problems,
)
from gumbel_softmax.estimators import get
from gumbel_softmax.testing import z_quantile


def test_toy_problems_are_deterministic_and_exact() -> None:
    a, b = toy_problems(), toy_problems()
    assert set(a) == {
        "quadratic-small",
        "quadratic-large",
        "nonlinear-small",
        "nonlinear-large",
        "simplex-qp",
        "poly-1.5",
        "poly-2",
        "poly-3",
    }
    for name, p in a.items():
        assert p.name == name and p.exact.shape == p.logits.shape
        torch.testing.assert_close(p.logits, b[name].logits, rtol=0, atol=0)
        if p.logits.shape[-2] <= 4:  # enumerable: the stored exact gradient is exact_gradient's
            torch.testing.assert_close(p.exact, exact_gradient(p.f, p.logits))
        z = torch.softmax(p.logits, -1).expand(3, *p.logits.shape)  # relaxed points work too
        assert p.f(z).shape == (3,)
    assert toy_problems(seed=1)["quadratic-small"].logits.ne(a["quadratic-small"].logits).any()
    assert list(toy_problems(names=["poly-2"])) == ["poly-2"]
    with pytest.raises(ValueError, match="unknown toy problem"):
        toy_problems(names=["nope"])


def test_simplex_qp_is_the_gumbel_rao_papers_objective() -> None:
    p = toy_problems(names=["simplex-qp"])["simplex-qp"]
    i = torch.arange(3.0, dtype=torch.float64)
    q = torch.exp(-2 * (i[:, None] - i[None, :]).abs())
    e0 = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    v = e0[0] - 1.0 / 3.0
    torch.testing.assert_close(p.f(e0), v @ q @ v)


def test_separable_expectation_matches_enumeration() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)

    def per_var(z: torch.Tensor) -> torch.Tensor:
        return (z[..., 0] - 0.45).abs() ** 1.5 + 2.0 * z[..., 2]

    exact = exact_expectation(lambda z: per_var(z).mean(-1), logits)
    torch.testing.assert_close(separable_expectation(per_var, logits), exact)


def test_poly_exact_gradient_in_closed_form() -> None:
    # d/dtheta_0 of q0 a + q1 b (a = 0.55^p, b = 0.45^p) is (a - b) q0 q1, divided by N = 128
    p = toy_problems(names=["poly-3"])["poly-3"]
    q = torch.softmax(p.logits, -1)
    slope = (0.55**3 - 0.45**3) * q[:, 0] * q[:, 1] / 128
    torch.testing.assert_close(p.exact, torch.stack([slope, -slope], -1))


def test_gradient_stats_loop_and_vectorized_agree_and_validate() -> None:
    p = toy_problems(names=["quadratic-small"])["quadratic-small"]
    est = get("st")
    loop = gradient_stats(
        est, p.f, p.logits, num_samples=400, generator=torch.Generator().manual_seed(0)
    )
    vec = gradient_stats(
        est,
        p.f,
        p.logits,
        num_samples=400,
        vectorize=True,
        generator=torch.Generator().manual_seed(1),
    )
    torch.testing.assert_close(loop.exact, p.exact)
    se = (loop.variance / 400 + vec.variance / 400).sqrt()
    # two independent estimates of the same mean: false-alarm rate 1e-4, Bonferroni
    z = z_quantile(1e-4, tests=se.numel())
    assert bool(((loop.mean - vec.mean).abs() <= z * se).all())
    assert loop.mse == pytest.approx(loop.bias_norm**2 + loop.total_variance * 399 / 400, rel=1e-6)
    torch.testing.assert_close(loop.stderr, (loop.variance / 400).sqrt())
    with pytest.raises(ValueError, match="num_samples"):
        gradient_stats(est, p.f, p.logits, num_samples=1)
    with pytest.raises(ValueError, match="exact must have"):
        gradient_stats(est, p.f, p.logits, num_samples=2, exact=torch.zeros(3))
    with pytest.raises(TypeError, match="logits"):
        gradient_stats(est, p.f, [[0.0]], num_samples=2)  # type: ignore[arg-type]


def test_gradient_stats_undoes_nvils_normalisation() -> None:
    p = toy_problems(names=["quadratic-small"])["quadratic-small"]
    big = ToyProblem(p.name, p.logits, lambda z: 30.0 * p.f(z), 30.0 * p.exact, "30 f")
    est = make("nvil", *p.logits.shape)
    train_steps(est, big, steps=10)  # running variance of the signal >> 1
    est.eval()
    assert est.scale < 0.5
    s = gradient_stats(
        est,
        big.f,
        big.logits,
        num_samples=20_000,
        exact=big.exact,
        vectorize=True,
        generator=torch.Generator().manual_seed(2),
    )
    z = z_quantile(1e-3, tests=s.bias.numel())  # false-alarm rate 1e-3, Bonferroni
    assert bool((s.bias.abs() <= z * s.stderr).all()), (s.bias, s.stderr)
    # the normalised estimate's mean, scale * exact, would be rejected by the same bound
    assert bool(((1 - est.scale) * big.exact).abs().gt(2 * z * s.stderr).any())
