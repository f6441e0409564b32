"""The interface expectations, checked for the score-function family and its relatives (every
registered estimator that is not pathwise): shapes, detached samples, determinism, no global
RNG, clear errors, finite numerics. Their declared capabilities are checked in
``test_estimator_registry.py``."""

from __future__ import annotations

import pytest
import torch
from _sf_bench import make, num_classes

from gumbel_softmax.estimators import PathwiseEstimator, available, estimator_class

NAMES = [n for n in available() if not issubclass(estimator_class(n), PathwiseEstimator)]
MULTI = {"rloo": 4, "arm": 2, "disarm": 2}  # value is (M, *batch)


def _rows(name: str, est: object, n: int, k: int) -> int | None:
    """M of a ``(M, *batch)`` value: K**N for an estimator that evaluates every state, else the
    table above or the estimator's ``num_samples`` (vimco, unordered-set), else None."""
    if estimator_class(name).draws == "every-state":
        return k**n
    return MULTI.get(name, getattr(est, "num_samples", None))


def _k(name: str) -> int:
    return num_classes(name)


def test_the_family_is_the_expected_one() -> None:
    expected = {"sf", "sf-ema", "rloo", "nvil", "darn", "muprop", "rebar", "relax", "arm", "disarm"}
    assert expected <= set(NAMES)


def _f(z: torch.Tensor) -> torch.Tensor:
    w = torch.arange(z.shape[-1], dtype=z.dtype)
    return ((z * w).sum(-1) ** 2).sum(-1) + torch.sin(z[..., 0]).sum(-1)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_detached_outputs(name: str) -> None:
    k = _k(name)
    logits = torch.randn(5, 4, 3, k, requires_grad=True)
    est = make(name, 3, k)
    r = est(logits, _f, generator=torch.Generator().manual_seed(0))
    m = _rows(name, est, 3, k)
    assert r.surrogate.shape == (5, 4)
    assert r.value.shape == ((m, 5, 4) if m else (5, 4))
    assert r.sample.shape == ((m, 5, 4, 3, k) if m else (5, 4, 3, k))
    assert not r.value.requires_grad and not r.sample.requires_grad
    assert torch.all(r.sample.sum(-1) == 1)  # every f(z) sees exact one-hot samples (or relaxed
    # ones in addition, for the control variates); the returned sample is discrete
    r.surrogate.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_a_generator_and_global_rng_untouched(name: str) -> None:
    k = _k(name)
    logits = torch.randn(6, 2, k, dtype=torch.float64)
    grads = []
    for _ in range(2):
        est = make(name, 2, k)
        state = torch.random.get_rng_state()
        x = logits.clone().requires_grad_(True)
        r = est(x, _f, generator=torch.Generator().manual_seed(7))
        r.surrogate.sum().backward()
        assert torch.equal(torch.random.get_rng_state(), state)
        grads.append((x.grad, r.sample, r.surrogate.detach()))
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_clear_errors(name: str) -> None:
    est = make(name, 2, _k(name))
    with pytest.raises(TypeError, match=r"logits must be a torch\.Tensor"):
        est([[0.0, 1.0]], _f)
    with pytest.raises(TypeError, match="floating dtype"):
        est(torch.zeros(2, 2, dtype=torch.long), _f)
    with pytest.raises(TypeError, match="f must be"):
        est(torch.zeros(2, 2), "not a function")
    with pytest.raises(ValueError, match=r"shape \(\*batch, N, "):
        est(torch.zeros(3), _f)
    with pytest.raises(ValueError, match="NaN"):
        est(torch.tensor([[0.0, float("nan")]]), _f)
    if not est.binary_only:
        with pytest.raises(ValueError, match="all masked"):
            est(torch.tensor([[0.0, 0.0, 0.0], [-torch.inf] * 3]), _f)
    with pytest.raises(ValueError, match=r"f must map samples of shape .* to losses of shape"):
        est(torch.zeros(4, 2, _k(name)), lambda z: z.sum(-1))


def test_binary_only_estimators_reject_three_classes() -> None:
    for name in [n for n in NAMES if estimator_class(n).binary_only]:
        with pytest.raises(ValueError, match=r"binary-only.*got shape \(4, 2, 3\)"):
            make(name, 2, 2)(torch.zeros(4, 2, 3), _f)


def test_estimators_that_differentiate_f_say_so() -> None:
    def black_box(z):
        return z.argmax(-1).sum(-1).to(z.dtype)

    # declared: the score-function relatives that evaluate f off the vertices differentiate it
    for name in [n for n in NAMES if estimator_class(n).evaluates_relaxed]:
        with pytest.raises(ValueError, match="differentiates f with respect to its input"):
            make(name, 2, 3)(torch.zeros(3, 2, 3), black_box)
    for name in [n for n in NAMES if not estimator_class(n).evaluates_relaxed]:
        make(name, 2, 2)(torch.zeros(3, 2, 2), black_box)  # black boxes are fine for these


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_finite_for_extreme_and_masked_logits(name: str, dtype: torch.dtype) -> None:
    k = _k(name)
    rows = [[1e4] + [-1e4] * (k - 1), [0.0] * k, [-torch.inf] + [0.0] * (k - 1)]
    logits = torch.tensor([rows], dtype=dtype).repeat(8, 1, 1).requires_grad_(True)

    def f(z):
        return ((z.float() * torch.arange(k)).sum((-1, -2)) ** 2).to(z.dtype)

    r = make(name, 3, k)(logits, f, generator=torch.Generator().manual_seed(1))
    r.surrogate.sum().backward()
    assert torch.isfinite(logits.grad).all(), logits.grad
    assert torch.isfinite(r.surrogate).all() and torch.isfinite(r.value).all()
    if estimator_class(name).draws == "every-state":
        # nothing is drawn: the masked class's states are evaluated but carry no gradient
        assert torch.all(logits.grad[:, 2, 0] == 0)
        return
    # the masked class is never drawn, the certain one always
    sample = r.sample if r.sample.dim() == 3 else r.sample.flatten(0, 1)
    assert torch.all(sample[:, 2, 0] == 0) and torch.all(sample[:, 0, 0] == 1)
