"""sf, sf-ema, rloo, nvil: state semantics, baseline training, NVIL's options and context.

Their unbiasedness against enumeration is checked for every unbiased estimator in
``test_unbiased.py``; here only what is particular to this family.
"""

from __future__ import annotations

import math

import pytest
import torch
from _sf_bench import CATEGORICAL, draw, make, spread, train_steps

from gumbel_softmax.diagnostics import ToyProblem, exact_expectation
from gumbel_softmax.estimators import NVIL, EMABaseline, LeaveOneOut
from gumbel_softmax.testing import assert_close_mean, assert_mean_less, z_quantile

N_DRAWS = 20_000


def test_nvil_without_normalisation_is_unbiased() -> None:
    problem = CATEGORICAL[3]
    est = make("nvil", *problem.logits.shape, hidden=16, normalize=False)
    train_steps(est, problem, steps=20, lr=0.02)
    est.eval()
    assert est.scale == 1.0 and float(est.signal_var) > 1.0  # normalize=True would scale
    draws = draw(est, problem.logits, problem.f, N_DRAWS, seed=5)
    assert_close_mean(draws, problem.exact, false_alarm=1e-3)


def test_sf_ema_state_moves_in_training_mode_only() -> None:
    problem = CATEGORICAL[0]
    est = EMABaseline(decay=0.5)
    x = problem.logits.expand(8, *problem.logits.shape)
    est.eval()
    est(x, problem.f, generator=torch.Generator().manual_seed(0))
    assert int(est.num_updates) == 0 and est.baseline == 0.0
    est.train()
    first = est(x, problem.f, generator=torch.Generator().manual_seed(0)).value.mean().item()
    # One update with bias correction: the baseline is exactly the first batch mean.
    assert int(est.num_updates) == 1
    assert est.baseline == pytest.approx(first, rel=1e-12)


def test_sf_ema_baseline_tracks_the_mean_of_f() -> None:
    problem = CATEGORICAL[1]
    est = EMABaseline(decay=0.9)
    train_steps(est, problem, steps=200, batch=256)
    mean = float(exact_expectation(problem.f, problem.logits))
    var = float(exact_expectation(lambda z: (problem.f(z) - mean) ** 2, problem.logits))
    # Stationary EMA of iid batch means: variance (1-b)/(1+b) * Var(f)/256; two-sided,
    # false-alarm rate 1e-6
    sd = math.sqrt((0.1 / 1.9) * var / 256)
    assert abs(est.baseline - mean) <= z_quantile(1e-6) * sd


def test_nvil_training_the_baseline_reduces_variance() -> None:
    problem = CATEGORICAL[1]
    shifted = ToyProblem(
        problem.name, problem.logits, lambda z: problem.f(z) + 5.0, problem.exact, "f + 5"
    )
    # built for its shape: the network exists before the optimiser does
    est = make("nvil", *shifted.logits.shape, hidden=16, normalize=False).eval()
    before = draw(est, shifted.logits, shifted.f, N_DRAWS, seed=6)
    train_steps(est, shifted, steps=50, lr=0.03)  # z about -177 at 50 steps, bound 3.1
    est.eval()
    after = draw(est, shifted.logits, shifted.f, N_DRAWS, seed=7)
    # total variance reduced: one-sided, passes by chance with probability <= 1e-3 if not
    assert_mean_less(spread(after), spread(before), level=1e-3)


def test_nvil_regression_term_has_no_gradient_for_the_logits() -> None:
    problem = CATEGORICAL[0]
    est = make("nvil", *problem.logits.shape, hidden=8)
    train_steps(est, problem, steps=5, lr=0.05)
    state = {k: v.clone() for k, v in est.state_dict().items()}
    x = problem.logits.expand(16, *problem.logits.shape).clone().requires_grad_(True)
    est.train()  # adds the regression term (then updates c, v after the estimate)
    r_train = est(x, problem.f, generator=torch.Generator().manual_seed(3))
    (g_train,) = torch.autograd.grad(r_train.surrogate.sum(), x)
    est.load_state_dict(state)
    est.eval()  # same state, same samples, no regression term
    r_eval = est(x, problem.f, generator=torch.Generator().manual_seed(3))
    (g_eval,) = torch.autograd.grad(r_eval.surrogate.sum(), x)
    assert torch.equal(r_train.sample, r_eval.sample)
    assert torch.equal(g_train, g_eval)
    # ... while the regression term does train the baseline network.
    grads = torch.autograd.grad(
        est.train()(x, problem.f, generator=torch.Generator().manual_seed(3)).surrogate.sum(),
        list(est.parameters()),
    )
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_nvil_context_is_the_baseline_input() -> None:
    problem = CATEGORICAL[0]
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))

        def forward(self, inp):
            seen.append(inp)
            return inp @ self.w

    est = NVIL(Probe())
    ctx = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    x = problem.logits.expand(4, *problem.logits.shape)
    est(x, problem.f, context=ctx, generator=torch.Generator().manual_seed(0))
    assert seen[0].shape == (4, 5) and not seen[0].requires_grad
    with pytest.raises(ValueError, match=r"context must have shape \(\*batch, D\)"):
        est(x, problem.f, context=torch.zeros(3, 5, dtype=torch.float64))


def test_rloo_shapes_and_single_call_of_f() -> None:
    problem = CATEGORICAL[0]
    calls = []

    def f(z):
        calls.append(z.shape)
        return problem.f(z)

    x = problem.logits.expand(7, *problem.logits.shape)
    r = make("rloo", 2, 3, num_samples=5)(x, f, generator=torch.Generator().manual_seed(0))
    assert calls == [torch.Size((5, 7, 2, 3))]
    assert r.value.shape == (5, 7) and r.sample.shape == (5, 7, 2, 3) and r.surrogate.shape == (7,)
    with pytest.raises(ValueError, match="num_samples must be >= 2"):
        LeaveOneOut(1)


def test_parameters_inside_f_get_their_exact_gradient_in_expectation() -> None:
    """The surrogate's gradient for a parameter of f is grad_phi f(z), unbiased."""
    problem = CATEGORICAL[0]
    phi = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def f(z):
        return problem.f(z) * phi.exp()

    (exact,) = torch.autograd.grad(exact_expectation(f, problem.logits), phi)
    for name in ("sf", "sf-ema", "rloo", "nvil"):
        x = problem.logits.expand(N_DRAWS, *problem.logits.shape)
        r = make(name, *problem.logits.shape)(x, f, generator=torch.Generator().manual_seed(8))
        # Per-draw gradients of phi: d/dphi f(z_i) = f(z_i) (since f = g e^phi), from value.
        per_draw = r.value if r.value.dim() == 1 else r.value.mean(0)
        (total,) = torch.autograd.grad(r.surrogate.sum(), phi)
        assert torch.allclose(total, per_draw.sum(), rtol=1e-10)
        assert_close_mean(per_draw, exact, false_alarm=1e-3)


@pytest.mark.parametrize(
    "make_estimator", [lambda: EMABaseline(0.5), lambda: NVIL(event_shape=(1, 3), normalize=True)]
)
def test_a_nested_call_does_not_move_the_outer_calls_baseline(make_estimator) -> None:
    """One estimator used at every token of a sequence: the inner call (inside f) updates the
    running baseline with the same samples; the outer call must still subtract the baseline
    (and NVIL's centre and scale) from before its own call, or its learning signal depends on
    its sample and the estimate is biased. The outer surrogate's gradient is checked against
    (f(z) - b_before) * scale * d log q(z) computed by hand."""
    est = make_estimator()
    g = torch.Generator().manual_seed(0)
    warm = torch.randn(8, 1, 3, generator=g)
    for _ in range(3):  # a state away from its initial values
        est(warm, lambda z: (z * torch.arange(3.0)).sum((-2, -1)) * 7.0, generator=g)
    before = {k: v.clone() for k, v in est.state_dict().items()}
    outer = torch.randn(8, 1, 3, generator=g, requires_grad=True)
    inner = torch.randn(8, 1, 3, generator=g)

    def f(z: torch.Tensor) -> torch.Tensor:
        nested = est(inner, lambda y: 5.0 * (y[..., 0] + z[..., 2]).sum(-1), generator=g)
        return nested.value + 3.0 * z[..., 1].sum(-1)

    result = est(outer, f, generator=g)
    moved = {k: v for k, v in est.state_dict().items() if not torch.equal(v, before[k])}
    assert moved  # the calls did update the running state
    (grad,) = torch.autograd.grad(result.surrogate.sum(), outer)
    if isinstance(est, EMABaseline):
        t = int(before["num_updates"])
        signal = result.value - float(before["running_mean"]) / (1 - est.decay**t)
        scale = 1.0
    else:
        centre = before["signal_mean"].to(outer.dtype)
        scale = 1.0 / max(1.0, math.sqrt(float(before["signal_var"])))
        inp = est._baseline_input(outer.detach(), None)
        with torch.no_grad():
            b = est.baseline(inp).reshape(result.value.shape)
        signal = result.value - centre - b
    log_q = (torch.log_softmax(outer, -1) * result.sample).sum((-2, -1))
    (expected,) = torch.autograd.grad((signal.detach() * scale * log_q).sum(), outer)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
