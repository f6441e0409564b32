"""Generic checks run over EVERY registered estimator (driven by ``available()``).

A new estimator is picked up automatically; it is built as a training loop builds it,
``build(name, event_shape=(N, K))`` (``_sf_bench.make``), with K = 2 for ``binary_only`` ones,
must accept ``(*batch, N, K)`` logits and follow the interface in
``gumbel_softmax.estimators._base``. What a test needs to know of an estimator is read from its
declared capabilities (``estimator_class(name)``), never from its constructor's signature:
estimators whose class sets ``supports_masks = False`` are not given ``-inf`` logits (binary-only
ones never are), and the temperature tests run on those whose ``temperature_kind`` is not None,
at temperatures no lower than their ``min_temperature``, and on every temperature named in
``extra_temperatures``. How the samples of a call are drawn (``draws``) decides what the
sampling tests check: every sample of ``"independent"`` ones is categorical, the first of a
``"without-replacement"`` set is (the others are distinct from it), and ``"every-state"``
estimators return every joint state once, whatever the seed.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import torch
from _sf_bench import make, num_classes
from torch import Tensor, nn

import gumbel_softmax.estimators as estimators_pkg
from gumbel_softmax.diagnostics import all_states, gradient_stats
from gumbel_softmax.estimators import (
    Estimator,
    PathwiseEstimator,
    TemperedEstimator,
    available,
    estimator_class,
)
from gumbel_softmax.testing import assert_categorical

NAMES = available()
BATCH, N = 4, 3

# What each estimator's paper says it is, written down independently of the classes: (unbiased,
# binary_only, evaluates_relaxed, temperature_kind, learnable_temperature, min_temperature,
# needs_event_shape, takes_context), pinned so that a change to one is deliberate. A newly
# registered estimator needs no entry: test_declared_capabilities_hold checks what it declares.
CAPABILITIES: dict[str, tuple[bool, bool, bool, str | None, bool, float, bool, bool]] = {
    "arm": (True, True, False, None, False, 0.0, False, False),
    "darn": (False, False, True, None, False, 0.0, False, False),
    "decoupled-st-gs": (False, False, False, "scheduled", False, 0.0, False, False),
    "disarm": (True, True, False, None, False, 0.0, False, False),
    "exact": (True, False, False, None, False, 0.0, False, False),
    "gs": (False, False, True, "scheduled", True, 0.0, False, False),
    "gst": (False, False, False, "scheduled", False, 0.0, False, False),
    "gumbel-rao": (False, False, False, "scheduled", False, 0.0, False, False),
    "muprop": (True, False, True, None, False, 0.0, False, False),
    "nvil": (True, False, False, None, False, 0.0, True, True),
    "rebar": (True, False, True, "learned", False, 0.0, False, False),
    "reinmax": (False, False, False, "scheduled", False, 1.0, False, False),
    "relax": (True, False, True, "learned", False, 0.0, True, False),
    "rloo": (True, False, False, None, False, 0.0, False, False),
    "sf": (True, False, False, None, False, 0.0, False, False),
    "sf-ema": (True, False, False, None, False, 0.0, False, False),
    "st": (False, False, False, "fixed", False, 0.0, False, False),
    "st-annealed": (False, False, False, "scheduled", False, 0.0, False, False),
    "st-gs": (False, False, False, "scheduled", True, 0.0, False, False),
    "unordered-set": (True, False, False, None, False, 0.0, False, False),
    "vimco": (True, False, False, None, False, 0.0, False, False),
}
# The declarations added with issue 14, pinned the same way: (draws, max_states,
# multi_sample_bound, extra_temperatures); every other estimator has the defaults.
DRAWS_AND_OBJECTIVE: dict[str, tuple[str, int | None, bool, tuple[str, ...]]] = {
    "decoupled-st-gs": ("independent", None, False, ("forward_temperature",)),
    "exact": ("every-state", 4096, False, ()),
    "unordered-set": ("without-replacement", 65536, False, ()),
    "vimco": ("independent", None, True, ()),
}

#: Estimators whose logits' estimate weights score-function terms by f's values at exact samples
#: (``learning_signal``, issue 13), pinned the same way.
LEARNING_SIGNAL = {"arm", "disarm", "exact", "nvil", "rloo", "sf", "sf-ema", "unordered-set"}


def _k(name: str) -> int:
    return num_classes(name)


def _supports_masks(name: str) -> bool:
    cls = estimator_class(name)
    return cls.supports_masks and not cls.binary_only


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
        assert estimator_class(name).registry_name == name
        assert type(make(name)) is estimator_class(name)
    assert estimator_class("straight-through") is estimator_class("st")  # an alias
    with pytest.raises(ValueError, match="unknown estimator 'nope'; available: arm, "):
        estimator_class("nope")
    with pytest.raises(TypeError, match="name must be a str"):
        estimator_class(3)  # type: ignore[arg-type]


def test_declared_capabilities_are_the_papers() -> None:
    assert set(CAPABILITIES) <= set(NAMES), "an estimator of the paper table left the registry"
    for name, expected in CAPABILITIES.items():
        cls = estimator_class(name)
        declared = (
            cls.unbiased,
            cls.binary_only,
            cls.evaluates_relaxed,
            cls.temperature_kind,
            cls.learnable_temperature,
            cls.min_temperature,
            cls.needs_event_shape,
            cls.takes_context,
        )
        assert declared == expected, f"{name}: declared {declared}, expected {expected}"
        assert cls.supports_masks, name
    for name in CAPABILITIES:
        cls = estimator_class(name)
        declared2 = (cls.draws, cls.max_states, cls.multi_sample_bound, cls.extra_temperatures)
        expected2 = DRAWS_AND_OBJECTIVE.get(name, ("independent", None, False, ()))
        assert declared2 == expected2, f"{name}: declared {declared2}, expected {expected2}"
        # REBAR and RELAX learn their control variate from the gradient of f's gradient
        assert cls.differentiates_twice == (name in ("rebar", "relax")), name
        # score-function terms weighted by f's values at exact samples (issue 13's rollouts)
        assert cls.learning_signal == (name in LEARNING_SIGNAL), name
        # slope-annealed ST is its annealing: the paper's SBN, fixed tau, still anneals it
        assert cls.annealed == (name == "st-annealed"), name
        assert not cls.annealed or cls.temperature_kind == "scheduled", name


@pytest.mark.parametrize("name", NAMES)
def test_declared_capabilities_hold(name: str) -> None:
    """What a class declares is what its instances do (declared, then checked here once)."""
    cls = estimator_class(name)
    est = make(name)
    if cls.temperature_kind is None:
        with pytest.raises(TypeError, match="has no temperature"):
            cls.check_temperature(1.0)
    if cls.temperature_kind in ("fixed", "scheduled"):
        assert isinstance(est, TemperedEstimator)  # a settable float, saved in state_dict
        assert isinstance(est.temperature, float)
    if cls.temperature_kind == "learned":
        assert any(p.requires_grad for p in est.parameters())
        assert float(est.temperature) > 0  # type: ignore[arg-type]
    if cls.learnable_temperature:
        learned = make(name, learn_temperature=True)
        assert [n for n, _ in learned.named_parameters()] == ["log_temperature"]
    if cls.needs_event_shape:
        assert list(est.parameters()), "shape-dependent learned parts must exist after build"
    for attr in cls.extra_temperatures:
        assert isinstance(getattr(est, attr), float), attr
        assert attr in est.get_extra_state(), f"{attr} is not saved in state_dict()"
    if cls.multi_sample_bound:
        assert isinstance(est.num_samples, int) and est.num_samples >= 2
    # f is called off the vertices of the simplex exactly when evaluates_relaxed says so
    seen: list[Tensor] = []
    loss = _Loss(N, _k(name))

    def f(z: Tensor) -> Tensor:
        seen.append(z.detach())
        return loss(z)

    est(_logits(_k(name)), f, generator=torch.Generator().manual_seed(0))
    off_vertex = any(bool(((z != 0) & (z != 1)).any()) for z in seen)
    assert off_vertex == cls.evaluates_relaxed, f"{name}: f saw relaxed samples: {off_vertex}"


def test_every_estimator_class_is_registered() -> None:
    registered = {estimator_class(name) for name in NAMES}
    missing = []
    for info in pkgutil.iter_modules(estimators_pkg.__path__):
        module = importlib.import_module(f"{estimators_pkg.__name__}.{info.name}")
        for cls_name, cls in vars(module).items():
            if (
                isinstance(cls, type)
                and issubclass(cls, Estimator)
                and cls.__module__ == module.__name__
                and not cls_name.startswith("_")
                and cls not in (Estimator, PathwiseEstimator, TemperedEstimator)
                and cls not in registered
            ):
                missing.append(f"{module.__name__}.{cls_name}")
    assert not missing, f"estimator classes not in the registry: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_gradient_reach_logits_and_parameters(name: str) -> None:
    est = make(name)
    k = _k(name)
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
    k = _k(name)
    loss = _Loss(N, k)

    def fresh() -> Estimator:
        # A fresh estimator for each run: stateful ones (EMA, NVIL) move their statistics per
        # call. Building it must not touch the global generator either (NVIL's and RELAX's
        # networks are drawn from a private one).
        return make(name)

    def run(est: Estimator, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        x = _logits(k).requires_grad_(True)
        result = est(x, loss, generator=torch.Generator().manual_seed(seed))
        (grad,) = torch.autograd.grad(result.surrogate.sum(), x)
        return result.surrogate.detach(), result.sample, grad

    state = torch.get_rng_state()
    first, second = run(fresh(), 11), run(fresh(), 11)
    assert torch.equal(torch.get_rng_state(), state), "the global generator was used"
    for x, y in zip(first, second, strict=True):
        assert torch.equal(x, y)
    if estimator_class(name).draws == "every-state":
        # nothing is drawn: every seed gives the same states and gradient
        for x, y in zip(run(fresh(), 12), first, strict=True):
            assert torch.equal(x, y)
        return
    # another seed gives other samples (all five equal has probability < 1e-9 here)
    assert any(not torch.equal(run(fresh(), seed)[1], first[1]) for seed in range(12, 17))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_extreme_logits_give_finite_values_and_gradients(name: str, dtype: torch.dtype) -> None:
    est = make(name)
    k = _k(name)
    base = _logits(k, torch.float64)
    base[0, 0] = 1e4
    base[1, 0] = -1e4
    base[2, 1, :] = torch.tensor([1e4, -1e4, 0.0][:k], dtype=torch.float64)
    if _supports_masks(name):
        base[3, :, 0] = -float("inf")
        base[3, 0, 1] = 1e4
    x = base.to(dtype).requires_grad_(True)
    loss = _Loss(N, k)
    result = est(x, loss, generator=torch.Generator().manual_seed(3))
    (grad,) = torch.autograd.grad(result.surrogate.sum(), x)
    assert grad.dtype == dtype
    for t, what in ((result.surrogate, "surrogate"), (result.sample, "sample"), (grad, "grad")):
        assert bool(torch.isfinite(t).all()), f"non-finite {what} in {dtype}"
    if _supports_masks(name) and estimator_class(name).draws == "every-state":
        # every state is evaluated, masked ones too: they must carry no gradient
        assert float(grad[3, :, 0].abs().sum()) == 0.0, "gradient at a masked class"
    elif _supports_masks(name):
        assert float(result.sample[..., 3, :, 0].abs().sum()) == 0.0, "a masked class was drawn"


def _temperature_cases() -> list[tuple[str, str, float]]:
    """(name, option, temperature) for every estimator with a temperature (declared
    ``temperature_kind``), at the extremes it accepts (``min_temperature``: ReinMax's is 1),
    and for each of its ``extra_temperatures`` at both extremes."""
    cases = []
    for name in NAMES:
        cls = estimator_class(name)
        if cls.temperature_kind is not None:
            cases += [(name, "temperature", max(t, cls.min_temperature)) for t in (1e-3, 1e3)]
        cases += [(name, attr, t) for attr in cls.extra_temperatures for t in (1e-3, 1e3)]
    return cases


@pytest.mark.parametrize(("name", "option", "temperature"), _temperature_cases())
def test_extreme_temperatures_give_finite_gradients(
    name: str, option: str, temperature: float
) -> None:
    est = make(name, **{option: temperature})
    k = _k(name)
    base = _logits(k, torch.float32)
    base[0, 0] = 1e4
    x = base.requires_grad_(True)
    result = est(x, _Loss(N, k), generator=torch.Generator().manual_seed(5))
    (grad,) = torch.autograd.grad(result.surrogate.sum(), x)
    assert bool(torch.isfinite(result.surrogate).all()) and bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_exactly_categorical(name: str) -> None:
    k = num_classes(name, categorical=4)
    est = make(name, 1, k)
    logits = torch.tensor([0.5, -1.0, 1.2, 0.0][:k], dtype=torch.float64)
    if _supports_masks(name):
        logits[1] = -float("inf")
    num = 4000
    x = logits.expand(num, 1, k).clone()
    f = lambda z: z.flatten(-2).sum(-1)  # noqa: E731
    result = est(x, f, generator=torch.Generator().manual_seed(7))
    draws = estimator_class(name).draws
    if draws == "every-state":
        # no draw: each row holds every state once (a masked one too, with probability 0)
        expected = all_states(1, k, dtype=x.dtype).reshape(k, 1, 1, k).expand(k, num, 1, k)
        assert torch.equal(result.sample, expected)
        return
    if draws == "without-replacement":
        # only the first of each set is a draw of q; the others differ from it where the
        # support has room (3 unmasked classes here, or 4)
        first = result.sample[0]
        others = result.sample[1:]
        support = int(torch.isfinite(logits).sum())
        for j in range(min(others.shape[0], support - 1)):
            assert not bool((others[j] == first).all(-1).all(-1).any()), "a state drawn twice"
        result = type(result)(result.surrogate, result.value[0], first)
    sample = result.sample.reshape(-1, k)
    # relaxed samples (Gumbel-Softmax): their argmax is the exact categorical sample; a masked
    # class drawn even once gives p = 0
    assert_categorical(sample.argmax(-1), torch.softmax(logits, -1), false_alarm=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_bias_and_variance_are_reported(name: str) -> None:
    k = _k(name)
    est = make(name, 2, k)
    loss = _Loss(2, k)
    logits = _logits(k)[0, :2]
    s = gradient_stats(est, loss, logits, num_samples=6, generator=torch.Generator().manual_seed(1))
    for t in (s.mean, s.bias, s.variance, s.exact):
        assert t.shape == logits.shape and bool(torch.isfinite(t).all())
    assert s.total_variance >= 0 and s.seconds_per_estimate > 0
    assert -1.0 <= s.cosine <= 1.0 and -1.0 <= s.mean_cosine <= 1.0


@pytest.mark.parametrize(
    "name", [n for n in NAMES if issubclass(estimator_class(n), PathwiseEstimator)]
)
def test_pathwise_sample_is_a_drop_in_sampler(name: str) -> None:
    est = make(name)
    assert isinstance(est, PathwiseEstimator)
    k = _k(name)
    x = _logits(k, torch.float32).requires_grad_(True)
    z = est.sample(x, generator=torch.Generator().manual_seed(2))
    assert z.shape == x.shape and z.dtype == x.dtype
    (z * torch.arange(k, dtype=z.dtype)).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_naming_the_argument(name: str) -> None:
    est = make(name)
    k = _k(name)
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
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator, got 123"):
        est(good, loss, generator=123)  # type: ignore[arg-type]
    if _supports_masks(name):
        masked = good.clone()
        masked[0, 0, :] = -float("inf")
        with pytest.raises(ValueError, match="masked"):
            est(masked, loss)
