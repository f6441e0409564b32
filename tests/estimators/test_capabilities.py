"""Declared capabilities, ``build``, temperatures, learned parts and checkpoints: what a training
loop relies on, each checked for every registered estimator it applies to (issue 9).

Each test of a bug of issue 9 names it; on the code before the fix (21b51cc) they fail: an ``f``
of the wrong output shape was accepted by the seven pathwise estimators; st and st-annealed gave
``inf`` gradients in float16 at temperature 1e-3; NVIL's and RELAX's networks were created at the
first call (no parameters after construction, a checkpoint of a used one did not load into a new
one); ReinMax accepted a schedule below 1 until the step where it went there.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from _sf_bench import BINARY, STANDARD, make, num_classes, train_steps
from torch import Tensor

from gumbel_softmax.estimators import (
    ReinMax,
    SlopeAnnealedStraightThrough,
    StraightThrough,
    TemperedEstimator,
    available,
    build,
    estimator_class,
    get,
    scale_gradient,
)
from gumbel_softmax.schedules import Constant, ExponentialAnneal, Schedule

NAMES = available()
TEMPERED = [n for n in NAMES if issubclass(estimator_class(n), TemperedEstimator)]
WITH_TEMPERATURE = [n for n in NAMES if estimator_class(n).temperature_kind is not None]
SHAPED = [n for n in NAMES if estimator_class(n).needs_event_shape]


def _logits(k: int, dtype: torch.dtype = torch.float64) -> Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, k, generator=g, dtype=torch.float64).to(dtype)


def _f(z: Tensor) -> Tensor:
    w = torch.linspace(-1.0, 1.0, z.shape[-1], dtype=z.dtype)
    return ((z * w).sum(-1) ** 2).sum(-1) + z[..., 0].sum(-1)


def _grad(est, x: Tensor, f=_f, seed: int = 0) -> tuple[Tensor, Tensor]:
    x = x.detach().clone().requires_grad_(True)
    r = est(x, f, generator=torch.Generator().manual_seed(seed))
    (g,) = torch.autograd.grad(r.surrogate.sum(), x)
    return r.surrogate.detach(), g


# ------------------------------------------------------------------------------------ build


def test_build_gives_the_shape_only_to_those_that_need_it() -> None:
    relax = build("relax", event_shape=(2, 3))
    assert relax.network.hidden.in_features == 6  # N*K
    nvil = build("nvil", event_shape=(2, 3), context_features=5)
    x = torch.zeros(4, 2, 3)
    nvil(x, _f, context=torch.zeros(4, 5))  # the baseline reads the 5 context features
    with pytest.raises(ValueError, match="pass context="):
        nvil(x, _f)
    # the others take neither: event_shape and context_features are not passed to them
    sf = build("sf", event_shape=(2, 3), context_features=5)
    assert list(sf.parameters()) == []
    st = build("st", event_shape=(2, 3), temperature=0.5)
    assert st.temperature == 0.5


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3,), r"event_shape must be \(N, K\), two ints"),
        ((2.0, 3), "two ints"),
        ((0, 3), "N >= 1"),
        ((3, 1), "K >= 2"),
        ((True, 3), "two ints"),
    ],
)
def test_build_refuses_a_bad_event_shape(shape, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build("sf", event_shape=shape)


def test_build_refuses_a_binary_only_estimator_on_more_classes() -> None:
    for name in [n for n in NAMES if estimator_class(n).binary_only]:
        with pytest.raises(ValueError, match=rf"estimator '{name}' handles binary variables only"):
            build(name, event_shape=(3, 4))
    with pytest.raises(ValueError, match="unknown estimator 'nope'"):
        build("nope", event_shape=(3, 4))


# ------------------------------------------------------------------- the output shape of f


@pytest.mark.parametrize("name", NAMES)
def test_f_of_the_wrong_output_shape_is_refused(name: str) -> None:
    # issue 9: gs, st-gs, st, st-annealed, gst, gumbel-rao and reinmax accepted it
    est = make(name)
    x = _logits(num_classes(name))
    pattern = r"f must map samples of shape \(.*\) to losses of shape \(.*\).*got "
    with pytest.raises(ValueError, match=pattern + r"\(.*4, 3\)"):
        est(x, lambda z: z.sum(-1))  # (*batch, N): one loss per variable
    with pytest.raises(ValueError, match=pattern + "float"):
        est(x, lambda z: 1.0)


# --------------------------------------------------------------------- context and generator


@pytest.mark.parametrize("name", [n for n in NAMES if not estimator_class(n).takes_context])
def test_a_context_for_an_estimator_without_one_is_refused(name: str) -> None:
    est = make(name)
    x = _logits(num_classes(name))
    with pytest.raises(TypeError, match=r"takes no context \(takes_context is False\)"):
        est(x, _f, context=torch.zeros(4, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator, got 123"):
        est(x, _f, generator=123)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ temperatures


def test_slope_annealed_temperature_and_slope_are_one_knob() -> None:
    assert SlopeAnnealedStraightThrough().temperature == 1.0
    est = SlopeAnnealedStraightThrough(temperature=0.25)
    assert est.slope == 4.0
    assert SlopeAnnealedStraightThrough(slope=4.0).temperature == 0.25
    est.slope = 2.0
    assert est.temperature == 0.5
    est.temperature = 0.125
    assert est.slope == 8.0
    assert get("st-annealed", temperature=0.5).slope == 2.0  # the lab's one name
    with pytest.raises(
        ValueError, match=r"give temperature or slope \(= 1/temperature\), not both"
    ):
        SlopeAnnealedStraightThrough(0.5, slope=2.0)
    with pytest.raises(ValueError, match="slope must be positive"):
        SlopeAnnealedStraightThrough(slope=0.0)
    with pytest.raises(TypeError, match="slope must be a positive float"):
        est.slope = "2"  # type: ignore[assignment]


def test_slope_annealed_st_is_st_at_temperature_one_over_slope() -> None:
    problem = STANDARD[2]
    for t in (0.25, 1.0, 3.0):
        a = _grad(SlopeAnnealedStraightThrough(temperature=t), problem.logits, problem.f, 9)
        b = _grad(SlopeAnnealedStraightThrough(slope=1 / t), problem.logits, problem.f, 9)
        c = _grad(StraightThrough(t), problem.logits, problem.f, 9)
        for u, v in zip(a + b, c + c, strict=True):
            assert torch.equal(u, v)


def test_the_deprecated_slope_schedule_warns_and_still_steps() -> None:
    with pytest.warns(DeprecationWarning, match=r"schedule=\.\.\.\) and step\(\) are deprecated"):
        est = SlopeAnnealedStraightThrough(schedule=lambda e: min(5.0, 1.0 + 0.04 * e))
    assert est.slope == 1.0
    for _ in range(10):
        est.step()
    assert est.num_steps == 10 and est.slope == pytest.approx(1.4)
    assert est.temperature == pytest.approx(1 / 1.4)
    restored = SlopeAnnealedStraightThrough()
    restored.load_state_dict(est.state_dict())
    assert restored.slope == pytest.approx(1.4)  # the temperature travels in the state_dict
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="schedule must be"):
        SlopeAnnealedStraightThrough(schedule=3)  # type: ignore[arg-type]
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="slope"):
        SlopeAnnealedStraightThrough(schedule=lambda e: 0.0)


@pytest.mark.parametrize("name", TEMPERED)
@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (0.0, ValueError),
        (-1.0, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("1", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_the_temperature_setter_validates(name: str, bad: object, error: type) -> None:
    est = make(name)
    before = est.temperature
    with pytest.raises(error, match="temperature"):
        est.temperature = bad  # type: ignore[assignment]
    with pytest.raises(error, match="temperature"):
        estimator_class(name).check_temperature(bad)
    assert est.temperature == before  # unchanged by a refused value


@pytest.mark.parametrize("name", TEMPERED)
def test_the_temperature_survives_a_state_dict_round_trip(name: str) -> None:
    est = make(name)
    t = 2.5 if estimator_class(name).min_temperature > 0 else 0.3
    est.temperature = t
    fresh = make(name)
    assert fresh.temperature != t
    fresh.load_state_dict(est.state_dict())
    assert fresh.temperature == t
    x = _logits(num_classes(name))
    for a, b in zip(_grad(est, x), _grad(fresh, x), strict=True):
        assert torch.equal(a, b)


def test_reinmax_refuses_temperatures_below_one() -> None:
    # issue 9: validated against the schedule before the first step, not mid-run
    with pytest.raises(ValueError, match=r"temperature must be >= 1, got 0\.5"):
        ReinMax.check_temperature(0.5)
    assert ReinMax.check_temperature(1) == 1.0
    with pytest.raises(ValueError, match="temperature must be >= 1"):
        ReinMax(0.5)
    with pytest.raises(TypeError, match="temperature"):
        ReinMax("1")  # type: ignore[arg-type]
    est = ReinMax(2.0)
    with pytest.raises(ValueError, match="temperature must be >= 1"):
        est.temperature = 0.999
    assert est.temperature == 2.0
    state = est.state_dict()
    state["_extra_state"] = {"temperature": 0.5}
    with pytest.raises(ValueError, match="temperature must be >= 1"):
        est.load_state_dict(state)
    # the lab's default annealing (down to 0.5) is refused from its lowest value
    with pytest.raises(ValueError, match="temperature must be >= 1"):
        ReinMax.check_temperature(ExponentialAnneal().lowest)


def test_schedule_lowest_is_the_infimum() -> None:
    assert Constant(0.3).lowest == 0.3
    anneal = ExponentialAnneal(tau0=1.0, rate=1e-2, tau_min=0.5, every=10)
    assert anneal.lowest == 0.5
    assert min(anneal(t) for t in range(0, 2000, 10)) == 0.5  # reached (at t = 70)
    assert ExponentialAnneal(tau0=2.0, rate=0.0, tau_min=0.5).lowest == 2.0  # never decays
    assert ExponentialAnneal(tau0=0.3, rate=0.0, tau_min=0.5).lowest == 0.5  # floor above tau0
    assert ExponentialAnneal(tau0=0.3, rate=0.0, tau_min=0.5)(100) == 0.5
    with pytest.raises(NotImplementedError):
        Schedule().lowest  # noqa: B018


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", WITH_TEMPERATURE)
def test_16_bit_logits_at_a_low_temperature_give_finite_gradients(
    name: str, dtype: torch.dtype
) -> None:
    # issue 9: the .to() cast of a float32 gradient beyond float16's range gave [inf, 0, -inf]
    # for st at temperature 1e-3; the saturating upcast gives +-finfo.max instead
    t = max(1e-3, estimator_class(name).min_temperature)
    k = num_classes(name)
    est = make(name, temperature=t)
    rows = [[2.0, 2.001, -3.0], [1e4, -1e4, 0.0], [0.0, 0.0, 0.0]]
    x = torch.tensor([[r[:k] for r in rows]] * 4, dtype=dtype)
    w = torch.linspace(1.0, -1.0, k, dtype=dtype)
    surrogate, grad = _grad(est, x, lambda z: 1000.0 * (z * w).sum((-1, -2)))
    assert grad.dtype == dtype
    assert bool(torch.isfinite(grad).all()), f"{name}: {grad[0].tolist()}"
    assert bool(torch.isfinite(surrogate).all())


# --------------------------------------------------- learned parts exist after construction


@pytest.mark.parametrize("name", NAMES)
def test_parameters_are_complete_after_build(name: str) -> None:
    # issue 9: NVIL's and RELAX's networks were created at the first call, after the optimiser
    problem = STANDARD[0] if num_classes(name) == 3 else BINARY[0]
    est = make(name, *problem.logits.shape)
    before = [(n, p) for n, p in est.named_parameters()]
    if estimator_class(name).needs_event_shape:
        assert before, f"{name} declares needs_event_shape but has no parameters after build"
    train_steps(est, problem, 1, lr=0.01)
    after = [(n, p) for n, p in est.named_parameters()]
    assert [n for n, _ in after] == [n for n, _ in before]
    assert all(p is q for (_, p), (_, q) in zip(before, after, strict=True))


@pytest.mark.parametrize("name", SHAPED)
def test_get_without_a_shape_says_what_to_pass(name: str) -> None:
    with pytest.raises(ValueError, match=r"pass event_shape=\(N, K\) \(or in_features="):
        get(name)


@pytest.mark.parametrize("name", SHAPED)
def test_logits_of_another_shape_than_built_for_are_refused(name: str) -> None:
    est = make(name, 3, 3)
    with pytest.raises(ValueError, match=r"built for inputs of 9 features .* got 6"):
        est(torch.zeros(4, 2, 3), _f)


@pytest.mark.parametrize("name", NAMES)
def test_a_used_estimators_state_loads_into_a_fresh_one(name: str) -> None:
    # issue 9: resuming an nvil or relax run crashed with 'Unexpected key(s) in state_dict'
    k = num_classes(name)
    problem = STANDARD[0] if k == 3 else BINARY[0]
    n = problem.logits.shape[0]
    est = make(name, n, k)
    train_steps(est, problem, steps=2, lr=0.05)
    fresh = make(name, n, k)
    fresh.load_state_dict(est.state_dict())  # strict: same keys, same shapes
    for a, b in zip(est.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b) if isinstance(a, Tensor) else a == b
    # ... and both continue identically, in training mode (running statistics move too)
    x = problem.logits.expand(8, n, k)
    for a, b in zip(
        _grad(est, x, problem.f, 3) + _grad(est, x, problem.f, 4),
        _grad(fresh, x, problem.f, 3) + _grad(fresh, x, problem.f, 4),
        strict=True,
    ):
        assert torch.equal(a, b)


# ------------------------------------------------------------ NVIL's scale and scale_gradient


def test_nvil_reports_the_scale_it_applied() -> None:
    problem = STANDARD[1]
    big = lambda z: 30.0 * problem.f(z)  # noqa: E731 - a signal of variance >> 1
    est = make("nvil", *problem.logits.shape)
    x = problem.logits.expand(64, *problem.logits.shape)
    scales = []
    for seed in range(5):
        before = est.scale
        r = est(x, big, generator=torch.Generator().manual_seed(seed))
        assert r.logits_scale == before
        scales.append(before)
    assert scales[0] == 1.0 and scales[-1] < 1.0  # normalised once the variance exceeds 1
    # the estimate is the unnormalised one times that scale, for the same samples and state
    state = est.state_dict()
    plain = make("nvil", *problem.logits.shape, normalize=False)
    plain.load_state_dict(state)
    est.eval()
    plain.eval()
    _, g = _grad(est, x, big, 9)
    _, g_plain = _grad(plain, x, big, 9)
    # the same products in another order: a few roundings apart, hence 4 eps
    eps = torch.finfo(torch.float64).eps
    torch.testing.assert_close(g, g_plain * est.scale, rtol=4 * eps, atol=0)
    assert est.scale == 1 / math.sqrt(float(est.signal_var))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "nvil"])
def test_the_others_report_a_scale_of_one(name: str) -> None:
    r = make(name)(_logits(num_classes(name)), _f, generator=torch.Generator().manual_seed(0))
    assert r.logits_scale == 1.0


def test_scale_gradient_keeps_values_and_scales_gradients() -> None:
    x = torch.tensor([0.5, -2.0, -math.inf, 3.0], dtype=torch.float64, requires_grad=True)
    y = scale_gradient(x, 0.25)
    assert torch.equal(y, x.detach())  # bit for bit, -inf included
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    (g,) = torch.autograd.grad((torch.where(torch.isfinite(y), y, 0.0) * w).sum(), x)
    assert torch.equal(g, torch.tensor([0.25, 0.5, 0.0, 1.0], dtype=torch.float64))
    # through a log-softmax, as the VAE's KL: -inf entries give no NaN
    (g,) = torch.autograd.grad(torch.log_softmax(scale_gradient(x, 0.25), -1)[0], x)
    (g1,) = torch.autograd.grad(torch.log_softmax(x, -1)[0], x)
    assert bool(torch.isfinite(g).all())
    torch.testing.assert_close(g, 0.25 * g1, rtol=0, atol=0)
    assert scale_gradient(x, 1.0) is x
    with pytest.raises(ValueError, match="scale must be positive"):
        scale_gradient(x, 0.0)
    with pytest.raises(TypeError, match="scale must be a positive float"):
        scale_gradient(x, "0.5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        scale_gradient([1.0], 0.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- single evaluation
@pytest.mark.parametrize("name", NAMES)
def test_single_evaluation_is_declared_exactly_where_f_is_called_once_on_one_sample(
    name: str,
) -> None:
    # The sequence GAN nests one node per token; it relies on this declaration for a cost
    # linear in the length. Counted, not inferred: the shapes of every call of f.
    cls = estimator_class(name)
    k = 2 if cls.binary_only else 3
    options = {"temperature": 1.0} if cls.temperature_kind is not None else {}
    est = build(name, event_shape=(1, k), context_features=4, **options)
    shapes: list[tuple[int, ...]] = []

    def f(z: Tensor) -> Tensor:
        shapes.append(tuple(z.shape))
        return _f(z)

    context = {"context": torch.randn(5, 4)} if cls.takes_context else {}
    x = torch.randn(5, 1, k, dtype=torch.float64, requires_grad=True)
    est(x, f, generator=torch.Generator().manual_seed(0), **context)
    assert (shapes == [(5, 1, k)]) == cls.single_evaluation, shapes


# --------------------------------------------------------------------------- learning signal
def _fresh(name: str) -> tuple[Any, int]:
    """A fresh ``name`` for three variables of K classes (2 if binary only, else 3), and K."""
    cls = estimator_class(name)
    k = 2 if cls.binary_only else 3
    options = {"temperature": 1.0} if cls.temperature_kind is not None else {}
    return build(name, event_shape=(3, k), **options), k


def _signal_grad(name: str, f, seed: int = 0) -> Tensor:
    """The logits' gradient of a fresh ``name`` for ``f`` (the same draws for every ``f``)."""
    est, k = _fresh(name)
    x = _logits(k).requires_grad_(True)
    r = est(x, f, generator=torch.Generator().manual_seed(seed))
    (g,) = torch.autograd.grad(r.surrogate.sum(), x)
    return g


@pytest.mark.parametrize("name", NAMES)
def test_learning_signal_is_declared_exactly_where_f_enters_by_its_values_affinely(
    name: str,
) -> None:
    # The sequence GAN replaces f(z) by a rollout estimate of its conditional mean for these;
    # that keeps the estimate unbiased only if f enters the logits' estimate through its values
    # at exact samples, affinely, and never through its gradient in z. All three checked, per
    # draw: (1) f sees one-hot points only; (2) the same values with another gradient in z give
    # the same estimate; (3) the estimate for f_a + f_b is that for f_a plus that for f_b minus
    # that for 0.
    w = torch.linspace(-1.0, 1.0, 2 if estimator_class(name).binary_only else 3)
    seen: list[Tensor] = []

    def f_a(z: Tensor) -> Tensor:
        seen.append(z.detach())
        return _f(z)

    def f_b(z: Tensor) -> Tensor:
        return torch.cos((z * w.to(z.dtype)).sum(-1)).sum(-1)

    def f_alt(z: Tensor) -> Tensor:  # f_a's values, another gradient in z
        h = (z * w.to(z.dtype)).sum((-1, -2)) ** 2
        return f_a(z) + (h - h.detach())

    def zero(z: Tensor) -> Tensor:
        return z.sum((-1, -2)) * 0.0

    g_a = _signal_grad(name, f_a)
    one_hot = all(bool(((z == 0) | (z == 1)).all()) for z in seen)
    values_only = torch.allclose(_signal_grad(name, f_alt), g_a, rtol=1e-12, atol=1e-12)
    total = _signal_grad(name, lambda z: f_a(z) + f_b(z))
    affine = torch.allclose(
        total, g_a + _signal_grad(name, f_b) - _signal_grad(name, zero), rtol=1e-9, atol=1e-12
    )
    holds = one_hot and values_only and affine
    assert holds == estimator_class(name).learning_signal, (one_hot, values_only, affine)


@pytest.mark.parametrize("name", NAMES)
def test_reports_signal_is_declared_exactly_where_the_result_carries_the_score_weight(
    name: str,
) -> None:
    # ``signal`` is what NVIL's variance normalisation divides by, so it must be the weight of
    # grad log q(z) in the logits' estimate: checked against the estimate itself, on an f whose
    # gradient in z the score-function estimators never see (and the Taylor baselines of darn
    # and muprop do: their signal is f less b(z), zero for a linear f).
    from gumbel_softmax.estimators._score import log_prob

    est, k = _fresh(name)
    x = _logits(k).requires_grad_(True)
    r = est(x, _f, generator=torch.Generator().manual_seed(0))
    assert (r.signal is not None) == estimator_class(name).reports_signal
    if r.signal is None:
        return
    assert r.signal.shape == r.surrogate.shape and not r.signal.requires_grad
    if name == "muprop":  # the correction term adds a pathwise part: check the linear case
        w = torch.linspace(-1.0, 1.0, 3 * k, dtype=x.dtype)
        linear = est(x, lambda z: z.flatten(-2) @ w, generator=torch.Generator().manual_seed(0))
        assert linear.signal is not None
        torch.testing.assert_close(linear.signal, torch.zeros_like(linear.signal))
        return
    (g,) = torch.autograd.grad(r.surrogate.sum(), x)
    score = r.logits_scale * r.signal * log_prob(x, r.sample)
    (expected,) = torch.autograd.grad(score.sum(), x)
    torch.testing.assert_close(g, expected, rtol=1e-10, atol=1e-12)
