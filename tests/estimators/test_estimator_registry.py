"""Generic checks run over EVERY registered estimator (driven by ``available()``).

A new estimator is picked up automatically; it must construct with no arguments
(``get(name)``), accept ``(*batch, N, K)`` logits (K = 2 for ``binary_only`` ones), and follow
the interface in ``gumbel_softmax.estimators._base``. Estimators whose class sets
``supports_masks = False`` are not given ``-inf`` logits (binary-only ones never are).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch
from scipy import stats
from torch import Tensor, nn

import gumbel_softmax.estimators as estimators_pkg
from gumbel_softmax.diagnostics import gradient_stats
from gumbel_softmax.estimators import Estimator, PathwiseEstimator, available, get

NAMES = available()
BATCH, N = 4, 3


def _k(est: Estimator) -> int:
    return 2 if est.binary_only else 3


def _supports_masks(est: Estimator) -> bool:
    return not est.binary_only and getattr(est, "supports_masks", True)


class _Loss(nn.Module):
    """A quadratic loss with a parameter, defined on the simplex (relaxed samples too)."""

    def __init__(self, n: int, k: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, n * k, dtype=torch.float64))

    def forward(self, z: Tensor) -> Tensor:
        v = z.flatten(-2)
        return (v @ self.w.to(z.dtype) - 0.25) ** 2 + 0.1 * (v * v).sum(-1)


def _logits(k: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, N, k, generator=g, dtype=torch.float64).to(dtype)


def _check_trailing(t: Tensor, shape: torch.Size, what: str) -> None:
    # one sample: exactly `shape`; M samples: (M, *shape)
    assert t.dim() in (len(shape), len(shape) + 1), f"{what} has shape {tuple(t.shape)}"
    assert t.shape[t.dim() - len(shape) :] == shape, f"{what} has shape {tuple(t.shape)}"


def test_registry_is_not_empty_and_names_resolve() -> None:
    assert {"st", "st-annealed", "gs", "st-gs", "gumbel-rao", "reinmax", "gst"} <= set(NAMES)
    for name in NAMES:
        assert type(get(name)).registry_name == name  # type: ignore[attr-defined]


def test_every_estimator_class_is_registered() -> None:
    registered = {type(get(name)) for name in NAMES}
    missing = []
    for info in pkgutil.iter_modules(estimators_pkg.__path__):
        module = importlib.import_module(f"{estimators_pkg.__name__}.{info.name}")
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Estimator)
                and cls.__module__ == module.__name__
                and not cls_name.startswith("_")
                and cls not in (Estimator, PathwiseEstimator)
                and cls not in registered
            ):
                missing.append(f"{module.__name__}.{cls_name}")
    assert not missing, f"estimator classes not in the registry: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_gradient_reach_logits_and_parameters(name: str) -> None:
    est = get(name)
    k = _k(est)
    loss = _Loss(N, k)
    # logits produced by a layer, so the gradient must flow through them into its weight
    layer = nn.Linear(2, BATCH * N * k, dtype=torch.float64)
    inputs = torch.tensor([0.3, -0.7], dtype=torch.float64)
    logits = layer(inputs).reshape(BATCH, N, k)
    result = est(logits, loss, generator=torch.Generator().manual_seed(0))
    assert result.surrogate.shape == (BATCH,)
    _check_trailing(result.value, torch.Size([BATCH]), "value")
    _check_trailing(result.sample, logits.shape, "sample")
    assert not result.value.requires_grad and not result.sample.requires_grad
    # samples lie on the simplex (one-hot, or relaxed for Gumbel-Softmax)
    assert bool((result.sample >= 0).all())
    torch.testing.assert_close(result.sample.sum(-1), torch.ones_like(result.sample.sum(-1)))
    result.surrogate.sum().backward()
    for p, what in ((layer.weight, "logits' layer"), (loss.w, "parameter inside f")):
        assert p.grad is not None, f"no gradient reached the {what}"
        assert bool(torch.isfinite(p.grad).all())
        assert float(p.grad.abs().sum()) > 0, f"zero gradient at the {what}"


@pytest.mark.parametrize("name", NAMES)
def test_determinism_by_generator_and_global_rng_untouched(name: str) -> None:
    k = _k(get(name))
    loss = _Loss(N, k)

    def run(seed: int) -> tuple[Tensor, Tensor, Tensor]:
        # A fresh estimator each time: stateful ones (EMA, NVIL) move their statistics per call.
        est = get(name)
        x = _logits(k).requires_grad_(True)
        result = est(x, loss, generator=torch.Generator().manual_seed(seed))
        (grad,) = torch.autograd.grad(result.surrogate.sum(), x)
        return result.surrogate.detach(), result.sample, grad

    state = torch.get_rng_state()
    first, second = run(11), run(11)
    assert torch.equal(torch.get_rng_state(), state), "the global generator was used"
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    # another seed gives other samples (all five equal has probability < 1e-9 here)
    assert any(not torch.equal(run(seed)[1], first[1]) for seed in range(12, 17))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_extreme_logits_give_finite_values_and_gradients(name: str, dtype: torch.dtype) -> None:
    est = get(name)
    k = _k(est)
    base = _logits(k, torch.float64)
    base[0, 0] = 1e4
    base[1, 0] = -1e4
    base[2, 1, :] = torch.tensor([1e4, -1e4, 0.0][:k], dtype=torch.float64)
    if _supports_masks(est):
        base[3, :, 0] = -float("inf")
        base[3, 0, 1] = 1e4
    x = base.to(dtype).requires_grad_(True)
    loss = _Loss(N, k)
    result = est(x, loss, generator=torch.Generator().manual_seed(3))
    (grad,) = torch.autograd.grad(result.surrogate.sum(), x)
    assert grad.dtype == dtype
    for t, what in ((result.surrogate, "surrogate"), (result.sample, "sample"), (grad, "grad")):
        assert bool(torch.isfinite(t).all()), f"non-finite {what} in {dtype}"
    if _supports_masks(est):
        assert float(result.sample[..., 3, :, 0].abs().sum()) == 0.0, "a masked class was drawn"


@pytest.mark.parametrize("temperature", [1e-3, 1e3])
@pytest.mark.parametrize("name", NAMES)
def test_extreme_temperatures_give_finite_gradients(name: str, temperature: float) -> None:
    try:
        est = get(name, temperature=temperature)
    except (TypeError, ValueError):
        pytest.skip(f"{name} takes no temperature={temperature}")
    k = _k(est)
    base = _logits(k, torch.float32)
    base[0, 0] = 1e4
    x = base.requires_grad_(True)
    result = est(x, _Loss(N, k), generator=torch.Generator().manual_seed(5))
    (grad,) = torch.autograd.grad(result.surrogate.sum(), x)
    assert bool(torch.isfinite(result.surrogate).all()) and bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_exactly_categorical(name: str) -> None:
    est = get(name)
    k = 2 if est.binary_only else 4
    logits = torch.tensor([0.5, -1.0, 1.2, 0.0][:k], dtype=torch.float64)
    if _supports_masks(est):
        logits[1] = -float("inf")
    num = 4000
    x = logits.expand(num, 1, k).clone()
    result = est(x, lambda z: z.flatten(-2).sum(-1), generator=torch.Generator().manual_seed(7))
    sample = result.sample.reshape(-1, k)
    if not bool(((sample == 0) | (sample == 1)).all()):
        # relaxed samples (Gumbel-Softmax): their argmax is the exact categorical sample
        sample = torch.nn.functional.one_hot(sample.argmax(-1), k).to(sample.dtype)
    counts = sample.sum(0)
    probs = torch.softmax(logits, -1)
    keep = probs > 0
    assert float(counts[~keep].sum()) == 0.0
    expected = probs[keep] * sample.shape[0]
    p_value = stats.chisquare(counts[keep].numpy(), expected.numpy()).pvalue
    # false-alarm rate 1e-4 per estimator
    assert p_value > 1e-4, f"{name}: counts {counts.tolist()}, expected {expected.tolist()}"


@pytest.mark.parametrize("name", NAMES)
def test_bias_and_variance_are_reported(name: str) -> None:
    est = get(name)
    k = _k(est)
    loss = _Loss(2, k)
    logits = _logits(k)[0, :2]
    s = gradient_stats(est, loss, logits, num_samples=6, generator=torch.Generator().manual_seed(1))
    for t in (s.mean, s.bias, s.variance, s.exact):
        assert t.shape == logits.shape and bool(torch.isfinite(t).all())
    assert s.total_variance >= 0 and s.seconds_per_estimate > 0
    assert -1.0 <= s.cosine <= 1.0 and -1.0 <= s.mean_cosine <= 1.0


@pytest.mark.parametrize("name", [n for n in NAMES if isinstance(get(n), PathwiseEstimator)])
def test_pathwise_sample_is_a_drop_in_sampler(name: str) -> None:
    est = get(name)
    assert isinstance(est, PathwiseEstimator)
    k = _k(est)
    x = _logits(k, torch.float32).requires_grad_(True)
    z = est.sample(x, generator=torch.Generator().manual_seed(2))
    assert z.shape == x.shape and z.dtype == x.dtype
    (z * torch.arange(k, dtype=z.dtype)).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_naming_the_argument(name: str) -> None:
    est = get(name)
    k = _k(est)
    good = _logits(k)
    loss = _Loss(N, k)
    with pytest.raises(TypeError, match="logits"):
        est(good.tolist(), loss)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="logits"):
        est(good.long(), loss)
    with pytest.raises(ValueError, match="logits"):
        est(torch.tensor(0.5, dtype=torch.float64), loss)
    nan = good.clone()
    nan[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        est(nan, loss)
    with pytest.raises(TypeError, match="f must be"):
        est(good, 3)  # type: ignore[arg-type]
    if _supports_masks(est):
        masked = good.clone()
        masked[0, 0, :] = -float("inf")
        with pytest.raises(ValueError, match="masked"):
            est(masked, loss)
