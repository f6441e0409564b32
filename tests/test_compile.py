"""The samplers inside ``torch.compile``, on meta and on fake tensors.

Compilation is slow on a small CPU, so there are two compiled functions for the whole module,
each compiled once and reused across shapes (``dynamic=True``), each returning a relaxed and a
straight-through sample: ``soft`` with the compiler's own random numbers, under Inductor, and
``hard`` from a ``torch.Generator``, under ``aot_eager``, which runs the same tracing (Dynamo,
fake tensors, AOT autograd) without generating code. Statistical assertions fail with probability ``1e-3``
when the code is correct (written next to each); seeds are fixed.
"""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import gumbel_softmax as gs
from gumbel_softmax import backends
from gumbel_softmax.testing import assert_categorical

FALSE_ALARM = 1e-3
LOGITS = torch.tensor([1.5, 0.0, -0.7, 0.4, -2.0, 0.9, -torch.inf, 0.2])
SHAPES = [(3, 5), (6, 7), (9, 4)]  # one rank: a new rank is a new graph in torch itself


def _leaf(x: torch.Tensor) -> torch.Tensor:
    """Every compiled call takes logits that require grad: a call without would be a second
    graph (torch's own guard on ``requires_grad``)."""
    return x.requires_grad_()


def _soft(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return gs.gumbel_softmax(x, 0.5), gs.gumbel_softmax(x, 0.5, hard=True)


def _hard(x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return gs.gumbel_softmax(x, 0.5, hard=True, generator=g), gs.gumbel_softmax(x, 0.5, generator=g)


@pytest.fixture(scope="module")
def soft():
    """Compiled (and run) once at the first shape; every test then forbids recompiling."""
    torch._dynamo.reset()
    fn = torch.compile(_soft, fullgraph=True, dynamic=True)
    fn(_leaf(torch.randn(SHAPES[0])))
    yield fn
    torch._dynamo.reset()


@pytest.fixture(scope="module")
def hard(soft):
    fn = torch.compile(_hard, fullgraph=True, dynamic=True, backend="aot_eager")
    fn(_leaf(torch.randn(SHAPES[0])), GEN)
    return fn


# One generator for every compiled call: the graph holds the generator's identity (another
# generator compiles once more, by design; see _numerics.uniform_open).
GEN = torch.Generator()


def _no_recompile():
    return torch.compiler.set_stance("fail_on_recompile")


def test_fullgraph_dynamic_over_three_shapes_with_gradients(soft, hard):
    # fullgraph=True: a graph break raises; after the first shape, a recompile raises
    g = GEN.manual_seed(0)
    for shape in SHAPES:
        x = torch.randn(shape, requires_grad=True)
        with _no_recompile():
            (y, h), (h2, y2) = soft(x), hard(x, g)  # relaxed and hard, without and with g
        for y_, h_ in ((y, h), (y2, h2)):
            assert y_.shape == h_.shape == shape and y_.dtype == h_.dtype == torch.float32
            torch.testing.assert_close(y_.sum(-1), torch.ones(shape[0]))
            assert bool(((h_ == 0) | (h_ == 1)).all()) and bool((h_.sum(-1) == 1).all())
        # one backward per compiled call (its buffers are donated): both samples' gradients
        w = torch.arange(shape[1])
        for y_, h_ in ((y, h), (y2, h2)):
            (gx,) = torch.autograd.grad((y_ * y_).sum() + (h_ * w).sum(), x)
            assert bool(gx.isfinite().all()) and float(gx.abs().sum()) > 0


def test_compiled_argmax_is_categorical(soft):
    # the compiler's own random numbers (Inductor's, not torch.rand's): the argmax of the
    # relaxed sample is an exact categorical draw (the rounding property)
    n = 40_000
    with _no_recompile():  # a new batch size, the same graph
        y = soft(_leaf(LOGITS.expand(n, -1).clone()))[0].detach()
    idx = y.argmax(-1)
    assert not bool((idx == 6).any())  # the masked class
    assert_categorical(idx, LOGITS.softmax(-1), false_alarm=FALSE_ALARM)  # false alarm 1e-3


def test_compiled_with_a_generator_draws_what_eager_draws(hard):
    # the generator's numbers come from torch.rand on it, compiled or not: same sample, and the
    # generator advances as eagerly
    x = _leaf(torch.randn(SHAPES[1]))
    g1, g2 = GEN.manual_seed(5), torch.Generator().manual_seed(5)
    with _no_recompile():
        a = [y.detach() for _ in range(2) for y in hard(x, g1)]
    b = [
        gs.gumbel_softmax(x, 0.5, hard=h, generator=g2, backend="reference")
        for _ in range(2)
        for h in (True, False)
    ]
    torch.testing.assert_close(a, b)
    assert not torch.equal(a[0], a[2])


def test_bad_values_raise_the_eager_errors_in_compiled_code(soft):
    x = torch.zeros(SHAPES[0])
    for value, match in ((torch.nan, r"logits .* contains NaN"), (torch.inf, r"contains \+inf")):
        x[1, 2] = value
        with _no_recompile(), pytest.raises(ValueError, match=match):
            soft(_leaf(x.clone()))
    x[1, 2] = 0.0
    x[2] = -torch.inf
    with _no_recompile(), pytest.raises(ValueError, match="all masked"):
        soft(_leaf(x))


def test_eager_after_compile_still_takes_the_fast_backend(soft):
    # compiling touched no backend: eager calls choose and load them as before
    soft(_leaf(torch.randn(SHAPES[0])))
    if "numba" in backends.available_backends():
        assert backends.resolve_backend(None, torch.randn(4, 5)) is backends._load("numba")
    with pytest.raises(ValueError, match="contains NaN"):  # validation still on in eager
        gs.gumbel_softmax(torch.tensor([[torch.nan, 0.0]]))


@pytest.mark.parametrize("hard_", [False, True])
def test_meta_and_fake_tensors_give_shape_and_dtype(hard_):
    for dtype in (torch.float16, torch.float32):
        x = torch.empty(4, 3, 5, device="meta", dtype=dtype)
        y = gs.gumbel_softmax(x, 0.3, hard=hard_, dim=1)
        assert (y.shape, y.dtype, y.device.type) == (x.shape, dtype, "meta")
        assert gs.relaxed_bernoulli(x, 0.3, hard=hard_).shape == x.shape
        assert gs.sample_categorical(x, dim=1).shape == (4, 5)
        assert gs.sample_without_replacement(x, 2, dim=1).shape == (4, 2, 5)
    with FakeTensorMode():
        x = torch.empty(6, 7)
        y = gs.gumbel_softmax(x, torch.full((6,), 0.5), hard=hard_)
        assert y.shape == (6, 7) and y.dtype == torch.float32


def test_bad_arguments_raise_their_errors_in_compiled_code():
    # errors of the Python arguments are raised while tracing; Dynamo then runs the call
    # eagerly, which raises them as the eager call does (backend "eager": no code generated)
    fn = torch.compile(lambda x, **kw: gs.gumbel_softmax(x, **kw), dynamic=True, backend="eager")
    x = torch.zeros(SHAPES[0])
    for kw, exc, match in (
        ({"hard": "False"}, TypeError, "hard must be a bool or a 0-d bool tensor, got 'False'"),
        ({"generator": 123}, TypeError, "generator must be a torch.Generator or None, got 123"),
        ({"temperature": torch.ones(4)}, ValueError, r"temperature of shape \(4,\) does not"),
        ({"temperature": -1.0}, ValueError, "temperature must be positive and finite, got -1.0"),
    ):
        with pytest.raises(exc, match=match):
            fn(x, **kw)
