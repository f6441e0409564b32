"""One registry of examples drives the generic checks of every public distribution:
shapes, expand, support, gradients, determinism, numerics (issue item 7) and errors (item 8);
keyword-only parameters, constraints with their transforms, pickling and expand (issue 10)."""

from __future__ import annotations

import inspect
import pickle

import pytest
import torch
from tests.conftest import DTYPES, TEMPERATURES, HostReads
from torch.distributions import Distribution, biject_to, transform_to

import gumbel_softmax.distributions as D
from gumbel_softmax import _numerics

CATEGORICAL = [D.ExpConcrete, D.Concrete, D.StraightThroughConcrete]
BINARY = [D.LogitBinaryConcrete, D.BinaryConcrete, D.StraightThroughBinaryConcrete, D.HardConcrete]
GAUSSIAN = [D.IGR]  # on the simplex from a Gaussian; its own parameters (no masks, no probs)
EXAMPLES = CATEGORICAL + BINARY + GAUSSIAN


def make(cls, temperature, logits, **options):
    if cls is D.IGR:  # K classes from K - 1 Gaussians, located at all logits but the first
        loc = logits[..., 1:]
        return cls(temperature, loc=loc, scale=torch.ones_like(loc), **options)
    return cls(temperature, logits=logits, **options)


def example_logits(cls, batch=(2, 3), k=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    shape = batch + ((k,) if cls not in BINARY else ())
    return torch.randn(shape, generator=g).to(dtype)


def test_every_public_distribution_has_an_example():
    public = {
        obj
        for name in D.__all__
        if inspect.isclass(obj := getattr(D, name)) and issubclass(obj, Distribution)
    }
    assert public == set(EXAMPLES), public ^ set(EXAMPLES)


@pytest.mark.parametrize("cls", EXAMPLES)
def test_shapes_expand_and_support(cls, gen):
    logits = example_logits(cls)
    tau = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    d = make(cls, tau, logits)
    event = () if cls in BINARY else (4,)
    assert d.batch_shape == (2, 3) and d.event_shape == event
    x = d.rsample((5,), generator=gen)
    assert x.shape == (5, 2, 3, *event)
    assert bool(d.support.check(x).all())
    assert d.log_prob(x).shape == (5, 2, 3)
    e = d.expand((4, 2, 3))
    assert e.batch_shape == (4, 2, 3) and e.sample(generator=gen).shape == (4, 2, 3, *event)
    assert e.log_prob(x[:1].expand(4, 2, 3, *event)).shape == (4, 2, 3)


@pytest.mark.parametrize("cls", EXAMPLES)
def test_rsample_is_differentiable_in_logits_and_temperature(cls, gen):
    logits = example_logits(cls).requires_grad_(True)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    x = make(cls, tau, logits).rsample((3,), generator=gen)
    w = torch.randn(x.shape, dtype=x.dtype, generator=gen)
    (x * w).sum().backward()
    assert logits.grad is not None and bool(logits.grad.abs().sum() > 0)
    assert tau.grad is not None and bool(torch.isfinite(tau.grad))


@pytest.mark.parametrize("cls", EXAMPLES)
def test_determinism_and_global_rng(cls):
    state = torch.get_rng_state()
    d = make(cls, 0.5, example_logits(cls))
    a = d.sample((10,), generator=torch.Generator().manual_seed(1))
    b = d.sample((10,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("cls", [D.StraightThroughConcrete, D.StraightThroughBinaryConcrete])
def test_straight_through_forms(cls, gen):
    logits = example_logits(cls).requires_grad_(True)
    d = make(cls, 0.5, logits)
    hard, relaxed = d.rsample_with_relaxed((200,), generator=torch.Generator().manual_seed(3))
    if cls is D.StraightThroughConcrete:
        assert torch.equal(hard, torch.nn.functional.one_hot(relaxed.argmax(-1), 4).double())
    else:
        assert torch.equal(hard, (relaxed > 0.5).double())
    assert bool(torch.isfinite(d.log_prob(relaxed)).all())
    # The hard value carries the relaxed sample's gradient.
    w = torch.randn(hard.shape, dtype=hard.dtype, generator=gen)
    (g_hard,) = torch.autograd.grad((hard * w).sum(), logits)
    d2 = make(cls, 0.5, logits)  # d's graph (the logits' normalisation) was freed by backward
    _, relaxed2 = d2.rsample_with_relaxed((200,), generator=torch.Generator().manual_seed(3))
    (g_soft,) = torch.autograd.grad((relaxed2 * w).sum(), logits)
    assert torch.equal(g_hard, g_soft)


def _extreme(cls, dtype, scale, masked):
    logits = example_logits(cls, batch=(3,), k=6, dtype=torch.float32) * scale
    if masked and cls in CATEGORICAL:
        logits[:, 2] = -torch.inf
        logits[0, 3:] = -torch.inf
    return logits.to(dtype).requires_grad_(True)


# Masks (-inf logits) are a categorical notion; binary logits are tested unmasked.
MASK_CASES = [
    (cls, m) for cls in EXAMPLES for m in ([False, True] if cls in CATEGORICAL else [False])
]


@pytest.mark.parametrize(("cls", "masked"), MASK_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_numerics_grid(cls, masked, dtype, temperature, scale):
    logits = _extreme(cls, dtype, scale, masked)
    tau = torch.tensor(temperature, dtype=dtype, requires_grad=True)
    d = make(cls, tau, logits)
    x = d.rsample((16,), generator=torch.Generator().manual_seed(0))
    assert x.dtype == dtype and bool(torch.isfinite(x).all())
    if masked and cls is not D.ExpConcrete:
        assert bool((x[:, torch.isneginf(logits)] == 0).all())
    if cls in CATEGORICAL and cls is not D.ExpConcrete:
        sums = x.float().sum(-1)
        assert bool(((sums - 1).abs() < 1e-2).all())
    lp = d.log_prob(x.detach())
    assert bool(torch.isfinite(lp).all()), lp
    ((x * torch.linspace(-1, 1, x.shape[-1], dtype=dtype)).sum() + lp.sum()).backward()
    assert bool(torch.isfinite(logits.grad).all()) and bool(torch.isfinite(tau.grad).all())


@pytest.mark.parametrize("cls", CATEGORICAL + BINARY)
def test_bad_input(cls):
    logits = example_logits(cls)
    for bad in [0.0, -1.0, float("inf"), float("nan")]:
        with pytest.raises(ValueError, match="temperature must be positive and finite"):
            make(cls, bad, logits)
    with pytest.raises(ValueError, match="exactly one of logits or probs"):
        cls(1.0)
    with pytest.raises(ValueError, match="exactly one of logits or probs"):
        cls(1.0, logits=logits, probs=logits.softmax(-1))
    with pytest.raises(TypeError, match="logits must have a floating dtype"):
        cls(1.0, logits=torch.ones(3, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="temperature must be a float or a floating tensor"):
        cls(torch.tensor([1, 2]), logits=logits)
    nan = logits.clone()
    nan.view(-1)[0] = torch.nan
    with pytest.raises(ValueError, match="logits"):
        cls(1.0, logits=nan, validate_args=True)
    if cls in CATEGORICAL:
        with pytest.raises(ValueError, match=r"probs .* must lie on the simplex"):
            cls(1.0, probs=torch.tensor([0.5, 0.6]), validate_args=True)
        with pytest.raises(ValueError, match="all masked"):
            cls(1.0, logits=torch.full((2, 3), -torch.inf))
    else:
        with pytest.raises(ValueError, match=r"probs .* must lie in \[0, 1\]"):
            cls(1.0, probs=torch.tensor([0.5, 1.5]), validate_args=True)


def test_probs_parameterisation_matches_logits(gen):
    p = torch.tensor([0.2, 0.0, 0.5, 0.3], dtype=torch.float64)
    a = D.Concrete(0.5, probs=p)
    b = D.Concrete(0.5, logits=p.log())
    x = a.sample((4,), generator=gen)
    assert bool((x[:, 1] == 0).all())
    torch.testing.assert_close(a.log_prob(x), b.log_prob(x))
    q = torch.tensor([0.3, 0.9], dtype=torch.float64)
    torch.testing.assert_close(D.BinaryConcrete(0.5, probs=q).logits, torch.logit(q))


@pytest.mark.parametrize("cls", EXAMPLES)
def test_only_the_temperature_is_positional(cls):
    params = inspect.signature(cls).parameters
    assert [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD] == ["temperature"]
    with pytest.raises(TypeError, match="only positional argument"):
        cls(0.5, example_logits(cls))


@pytest.mark.parametrize("cls", CATEGORICAL + BINARY)
def test_probs_and_logits_are_keyword_only(cls):
    params = inspect.signature(cls).parameters
    assert {"probs", "logits", "validate_args"} <= {
        n for n, p in params.items() if p.kind is p.KEYWORD_ONLY
    }
    logits = example_logits(cls)
    # torch's relaxed distributions read a second positional argument as probs: refuse it.
    with pytest.raises(TypeError, match=r"only positional argument.*probs=\.\.\..*logits="):
        cls(0.5, torch.sigmoid(logits))
    with pytest.raises(TypeError, match="only positional argument"):
        cls(0.5, None, logits)


@pytest.mark.parametrize("cls", CATEGORICAL + BINARY)
def test_temperature_that_does_not_broadcast_is_named(cls):
    logits = example_logits(cls, batch=(4,))
    with pytest.raises(
        ValueError,
        match=r"temperature of shape \(3,\) does not broadcast with the batch shape \(4,\) of "
        r"logits",
    ):
        make(cls, torch.ones(3, dtype=logits.dtype), logits)
    p = torch.full((3, 2), 0.5)
    tau, batch = (torch.ones(2), r"\(3,\)") if cls in CATEGORICAL else (torch.ones(4), r"\(3, 2\)")
    with pytest.raises(
        ValueError, match=rf"temperature of shape \({len(tau)},\) .* {batch} of probs"
    ):
        cls(tau, probs=p)


@pytest.mark.parametrize("cls", CATEGORICAL + BINARY)
def test_nan_and_infinite_parameters_are_named(cls):
    logits = example_logits(cls)
    probs = logits.softmax(-1) if cls in CATEGORICAL else torch.sigmoid(logits)
    nan_probs = probs.clone()
    nan_probs.view(-1)[1] = torch.nan
    with pytest.raises(ValueError, match=r"^probs \(Tensor of shape \(2, 3"):
        cls(1.0, probs=nan_probs, validate_args=True)
    pos_inf = logits.clone()
    pos_inf.view(-1)[1] = torch.inf
    if cls in CATEGORICAL:
        with pytest.raises(
            ValueError,
            match=r"^logits \(Tensor of shape \(2, 3, 4\) and dtype torch.float64\) contains \+inf",
        ):
            cls(1.0, logits=pos_inf, validate_args=True)
    else:
        # +inf log-odds are probs = 1, a point mass at 1, not an error.
        x = cls(1.0, logits=pos_inf, validate_args=True).sample(generator=torch.Generator())
        assert bool(torch.isfinite(x).all())


@pytest.mark.parametrize("cls", EXAMPLES)
def test_arg_constraints_list_every_parameter(cls):
    d = make(cls, torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64), example_logits(cls))
    # The distribution's parameters are the constructor's arguments without a numeric default
    # (HardConcrete's stretch and IGR's delta are fixed options, not parameters).
    params = inspect.signature(cls).parameters.items()
    keywords = {n for n, p in params if p.default is p.empty or p.default is None}
    assert set(d.arg_constraints) == keywords - {"validate_args"}
    assert "temperature" in keywords
    if cls not in GAUSSIAN:
        assert {"probs", "logits"} <= keywords
    for name, constraint in d.arg_constraints.items():
        assert bool(constraint.check(getattr(d, name)).all()), name
    first = next(iter(sorted(set(d.arg_constraints) - {"temperature"})))
    assert repr(d).startswith(f"{cls.__name__}(temperature: ") and f"{first}: " in repr(d)


def _declared_constraints(cls):
    d = make(cls, torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64), example_logits(cls))
    shapes = {name: getattr(d, name).shape for name in d.arg_constraints}
    shapes["support"] = d.sample(generator=torch.Generator()).shape
    return [
        (n, d.support if n == "support" else d.arg_constraints[n], s) for n, s in shapes.items()
    ]


@pytest.mark.parametrize("cls", EXAMPLES)
@pytest.mark.parametrize("registry", [transform_to, biject_to], ids=["transform_to", "biject_to"])
def test_every_declared_constraint_has_transforms(cls, registry, gen):
    for name, constraint, shape in _declared_constraints(cls):
        t = registry(constraint)
        u = torch.randn(t.inverse_shape(shape), dtype=torch.float64, generator=gen)
        y = t(u)
        assert y.shape == shape and bool(constraint.check(y).all()), (name, t)
        if registry is biject_to:
            assert t.bijective
            torch.testing.assert_close(t.inv(y), u)
            ladj = t.log_abs_det_jacobian(u, y)
            assert bool(torch.isfinite(ladj).all()), (name, t)


@pytest.mark.parametrize("cls", EXAMPLES)
@pytest.mark.parametrize("validate", [None, False, True])
def test_pickle_and_expand_round_trip(cls, validate, gen):
    d = make(cls, torch.tensor([0.5, 1.0, 2.0]), example_logits(cls), validate_args=validate)
    for original in [d, d.expand((4, 2, 3))]:
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is cls
        assert (copy.batch_shape, copy.event_shape) == (original.batch_shape, original.event_shape)
        assert copy._validate_args == original._validate_args
        for name in copy.arg_constraints:
            assert torch.equal(getattr(copy, name), getattr(original, name)), name
        a = original.sample((3,), generator=torch.Generator().manual_seed(5))
        b = copy.sample((3,), generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
        torch.testing.assert_close(copy.log_prob(a), original.log_prob(a), rtol=0, atol=0)
    e = d.expand((4, 2, 3))
    assert e._validate_args == d._validate_args
    for name in d.arg_constraints:
        value = getattr(d, name)
        full = e.batch_shape + value.shape[len(d.batch_shape) :]  # its own event part
        assert torch.equal(getattr(e, name), value.expand(full)), name
    x = d.sample((4,), generator=gen)
    torch.testing.assert_close(e.log_prob(x), d.log_prob(x), rtol=0, atol=0)
    back = e.expand((4, 2, 3)).expand((2, 4, 2, 3))
    assert back.batch_shape == (2, 4, 2, 3)


@pytest.mark.parametrize("cls", EXAMPLES)
def test_compiled_fullgraph_equals_eager(cls, monkeypatch):
    """Construction, ``rsample`` and ``log_prob`` trace as one graph (``fullgraph=True``: no value
    check reads the host, so none syncs on CUDA either) and give what they give eagerly on the
    pure-PyTorch path (the one compiled code takes), gradients included."""
    monkeypatch.setenv("GUMBEL_SOFTMAX_BACKEND", "reference")
    logits = example_logits(cls).requires_grad_(True)

    def fn(p, g):
        d = make(cls, 0.5, p)
        x = d.rsample((3,), generator=g)
        return x, d.log_prob(x)

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    out = [f(logits, torch.Generator().manual_seed(3)) for f in (fn, compiled)]
    grads = [torch.autograd.grad(x.sum() + lp.sum(), logits) for x, lp in out]
    torch.testing.assert_close(out[1], out[0])
    torch.testing.assert_close(grads[1], grads[0])
    if cls in CATEGORICAL:  # the checks stay in the graph: a masked row still raises
        masked = logits.detach().clone()
        masked[0, 0] = -torch.inf
        with pytest.raises(ValueError, match="all masked"):
            compiled(masked, torch.Generator().manual_seed(3))


@pytest.mark.parametrize("validate_args", [None, False])
@pytest.mark.parametrize("cls", EXAMPLES)
def test_construction_rsample_and_log_prob_read_nothing_back(cls, validate_args, monkeypatch):
    """On CUDA a distribution costs no host synchronisation: its checks are queued on the device
    (``torch._assert_async``) and nothing else reads a value back. Checked on the CPU by making
    the checks take their CUDA path and recording every host read of a tensor (``bool()``,
    ``.item()``, ...): there must be none. torch's own validation, which this library's
    replaces, reads each parameter and each ``log_prob`` value back (4 reads here)."""
    monkeypatch.setattr(_numerics, "_queued", lambda x, strict: not strict)
    logits = example_logits(cls)
    tau = torch.full(logits.shape[:2], 0.5, dtype=logits.dtype)
    with HostReads() as reads:
        for t in (0.5, tau):
            d = make(cls, t, logits, validate_args=validate_args)
            x = d.rsample((2,), generator=torch.Generator().manual_seed(0))
            d.log_prob(x)
            d.expand((4, 2, 3)).log_prob(x[:1])
    assert reads.seen == []


@pytest.mark.parametrize("cls", EXAMPLES)
def test_validate_args_true_still_raises_value_errors(cls):
    """``validate_args=True`` asks for the ordinary, synchronous check with its ValueError (on
    CUDA too): a NaN parameter at construction, a value outside the support in ``log_prob``."""
    logits = example_logits(cls)
    bad = logits.clone()
    bad[0, 0] = torch.nan
    with pytest.raises(ValueError, match=r"NaN|simplex|interval"):
        make(cls, 0.5, bad, validate_args=True)
    d = make(cls, 0.5, logits, validate_args=True)
    x = d.rsample((2,), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="support"):
        d.log_prob(x.clone().fill_(torch.nan))
    assert make(cls, 0.5, bad, validate_args=False).batch_shape == d.batch_shape  # unchecked
