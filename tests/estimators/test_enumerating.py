"""``exact`` and ``unordered-set``, the estimators that enumerate joint states (issue 14): their
limits, the exact answers they must reproduce, and the set probabilities of the unordered set
estimator against a brute-force sum over orderings. Their unbiasedness is checked by the
registry-driven ``test_unbiased.py`` (both declare ``unbiased``)."""

from __future__ import annotations

import itertools

import pytest
import torch
from _sf_bench import STANDARD
from torch import Tensor, nn

from gumbel_softmax.diagnostics import exact_expectation, exact_gradient
from gumbel_softmax.estimators import Exact, UnorderedSet, build, get, log_set_probabilities


def _grad(est, logits: Tensor, f, seed: int = 0) -> tuple[Tensor, object]:
    x = logits.detach().clone().requires_grad_(True)
    r = est(x, f, generator=torch.Generator().manual_seed(seed))
    (g,) = torch.autograd.grad(r.surrogate.sum(), x)
    return g, r


@pytest.mark.parametrize(("name", "limit"), [("exact", 4096), ("unordered-set", 65536)])
def test_a_state_space_beyond_max_states_is_refused_naming_its_size(name: str, limit: int) -> None:
    n = limit.bit_length()  # 2**n = 2 * limit binary states
    pattern = rf"K\*\*N = {2**n} states exceeds its max_states = {limit}"
    with pytest.raises(ValueError, match=pattern):
        build(name, event_shape=(n, 2))
    with pytest.raises(ValueError, match=pattern):
        get(name)(torch.zeros(3, n, 2), lambda z: z.sum((-1, -2)))
    build(name, event_shape=(n - 1, 2))  # exactly the limit is accepted


def test_exact_is_the_enumerated_expectation_and_gradient() -> None:
    for problem in STANDARD:
        g, r = _grad(Exact(), problem.logits, problem.f)
        # the same sum, computed independently (diagnostics' chunked loop): rounding only
        torch.testing.assert_close(g, problem.exact, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(
            r.estimate, exact_expectation(problem.f, problem.logits), rtol=1e-12, atol=0
        )
        n, k = problem.logits.shape
        assert r.value.shape == (k**n,) and r.sample.shape == (k**n, n, k)


def test_exact_gives_parameters_inside_f_the_expected_gradient() -> None:
    w = nn.Parameter(torch.linspace(-1.0, 1.0, 6, dtype=torch.float64))
    logits = torch.randn(4, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def f(z: Tensor) -> Tensor:
        return torch.sin(z.flatten(-2) @ w) ** 2

    r = Exact()(logits, f)
    (got,) = torch.autograd.grad(r.surrogate.sum(), w)
    (want,) = torch.autograd.grad(exact_expectation(f, logits).sum(), w)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------- unordered set


def _set_probability(p: Tensor, members: list[int], removed: list[int]) -> float:
    """P(the members are drawn first, in any order, from the domain without ``removed``), by
    summing over every ordering (the definition)."""
    total = 0.0
    for order in itertools.permutations(members):
        prob, mass = 1.0, 1.0 - float(p[removed].sum())
        for s in order:
            prob *= float(p[s]) / mass
            mass -= float(p[s])
        total += prob
    return total


def test_set_probabilities_match_the_sum_over_orderings() -> None:
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(3 * torch.randn(9, dtype=torch.float64, generator=g), 0)
    chosen = [1, 4, 5, 8]
    log_g = log_set_probabilities(p[chosen].log(), torch.log1p(-p[chosen].sum()))
    for b in range(16):
        removed = [c for i, c in enumerate(chosen) if b >> i & 1]
        members = [c for c in chosen if c not in removed]
        want = _set_probability(p, members, removed)
        assert abs(float(log_g[b].exp()) - want) <= 1e-12 * max(want, 1e-300), (b, want)


def test_set_probabilities_treat_a_minus_inf_slot_as_no_member() -> None:
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    log_p = torch.tensor([0.5, 0.3, 0.0], dtype=torch.float64).log()  # slot 2: not a member
    log_g = log_set_probabilities(log_p, torch.log(p[2:]).sum())
    assert float(log_g[0].exp()) == pytest.approx(_set_probability(p, [0, 1], []), rel=1e-12)
    assert float(log_g[1].exp()) == pytest.approx(_set_probability(p, [1], [0]), rel=1e-12)


def test_a_set_that_covers_the_support_gives_the_exact_gradient_on_every_draw() -> None:
    problem = STANDARD[2]  # (N, K) = (2, 3): 9 states
    est = UnorderedSet(num_samples=9)
    x = problem.logits.expand(50, 2, 3)
    g, r = _grad(est, x, problem.f, seed=4)
    torch.testing.assert_close(g, problem.exact.expand_as(g), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(r.estimate, exact_expectation(problem.f, x), rtol=1e-12, atol=1e-12)
    # more samples than states: all 9, each once
    g2, r2 = _grad(UnorderedSet(num_samples=20), problem.logits, problem.f)
    assert r2.sample.shape == (9, 2, 3) and r2.sample.flatten(1).unique(dim=0).shape[0] == 9
    torch.testing.assert_close(g2, problem.exact, rtol=1e-10, atol=1e-12)


def test_a_support_smaller_than_the_set_repeats_the_first_sample_with_weight_zero() -> None:
    logits = torch.tensor([[[0.3, -torch.inf, 1.0, -torch.inf]]], dtype=torch.float64)
    logits = logits.expand(200, 1, 4)

    def f(z: Tensor) -> Tensor:
        return (z * torch.tensor([1.0, 5.0, -2.0, 7.0], dtype=z.dtype)).sum((-1, -2))

    g, r = _grad(UnorderedSet(num_samples=4), logits, f, seed=1)
    assert bool((r.sample[2:] == r.sample[:1]).all()), "the padding rows repeat the first"
    assert float(r.sample[..., [1, 3]].sum()) == 0.0  # masked classes never appear
    torch.testing.assert_close(g, exact_gradient(f, logits), rtol=1e-10, atol=1e-12)
    assert bool(torch.isfinite(g).all()) and float(g[..., [1, 3]].abs().sum()) == 0.0


def test_the_lab_refuses_exact_on_too_many_states_before_writing_anything(tmp_path, capsys):
    from gumbel_softmax.lab import cli

    run = tmp_path / "run"
    argv = ["vae", "--estimator", "exact", "--latent", "categorical", "--n-latent", "4"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--run-dir", str(run), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "gumbel-softmax: error: " in err and "'exact'" in err and "Traceback" not in err
    assert "n_classes**n_latent = 10**4 exceeds its max_states = 4096" in err
    assert not run.exists()
