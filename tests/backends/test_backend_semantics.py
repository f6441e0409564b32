"""Every fused backend computes the reference's function: values, gradients, masks, dtypes,
extremes, determinism, generators and errors.

The fused kernels draw their own noise. ``backends._noise`` returns exactly the noise a forward
adds (same seed from the same generator state), so the reference fed that noise is the exact
expectation for a fused sample, up to rounding: float32 ``exp``/``log`` polynomials within
2 ulp, hence the tolerances below, a few float32 ulps of values in [0, 1].
"""

from __future__ import annotations

import pytest
import torch
from tests.backends.conftest import device_of, generator, interpreted
from tests.conftest import DTYPES, HostReads

import gumbel_softmax as gs
from gumbel_softmax import _numerics, backends

TOL = {torch.float32: {"rtol": 1e-5, "atol": 2e-6}, torch.float64: {"rtol": 1e-12, "atol": 1e-13}}


def _shapes(name: str) -> list[tuple[tuple[int, ...], int]]:
    """(shape, dim) pairs: short rows, a row longer than one kernel block, any dim."""
    long_k = 5000 if interpreted(name) else 9000  # more than one 4096-element block
    return [((7, 10), -1), ((3, long_k), 1), ((2, 3, 5), 0), ((4, 300, 2), 1)]


def _kernel_noise_for(name, logits, dim, seed):
    """The noise ``gumbel_softmax(logits, dim=dim, backend=name)`` adds, in ``logits``' layout."""
    moved = logits.movedim(dim, -1).shape
    noise = backends._noise(
        name, moved, dtype=logits.dtype, device=logits.device, generator=generator(name, seed)
    )
    return noise.movedim(-1, dim)


def _pair(name, logits, temperature, *, hard, dim, seed=0):
    """The fused sample and the reference sample fed the fused sample's noise."""
    y = gs.gumbel_softmax(
        logits, temperature, hard=hard, dim=dim, generator=generator(name, seed), backend=name
    )
    noise = _kernel_noise_for(name, logits, dim, seed)
    ref = gs.gumbel_softmax(
        logits, temperature, hard=hard, dim=dim, noise=noise, backend="reference"
    )
    return y, ref


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hard", [False, True])
def test_value_and_gradients_match_the_reference_given_the_same_noise(fused, dtype, hard):
    dev = device_of(fused)
    for shape, dim in _shapes(fused):
        g = torch.Generator().manual_seed(sum(shape))
        logits = (3 * torch.randn(shape, generator=g, dtype=dtype)).to(dev).requires_grad_()
        batch = list(shape)
        del batch[dim % len(shape)]
        tau = (0.3 + torch.rand(batch, generator=g, dtype=dtype)).to(dev).requires_grad_()
        y, ref = _pair(fused, logits, tau, hard=hard, dim=dim)
        if hard:  # the same perturbed logits, hence the same argmax, bit for bit
            assert torch.equal(y, ref)
        else:
            torch.testing.assert_close(y, ref, **TOL[dtype])
        w = torch.randn(shape, generator=g, dtype=dtype).to(dev)
        got = torch.autograd.grad((y * w).sum(), (logits, tau))
        want = torch.autograd.grad((ref * w).sum(), (logits, tau))
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("hard", [False, True])
def test_a_sample_without_gradient_is_the_one_with_gradient(fused, dtype, hard):
    """A call that needs no gradient skips the autograd function (a path of its own): the same
    generator state gives the same bits, for every layout and a float or tensor temperature."""
    dev = device_of(fused)
    for shape, dim in _shapes(fused):
        logits = torch.randn(shape, generator=torch.Generator().manual_seed(3)).to(dev, dtype)
        batch = list(shape)
        del batch[dim % len(shape)]
        for tau in (0.6, torch.full(batch, 0.6, dtype=dtype, device=dev)):
            kw = dict(hard=hard, dim=dim, backend=fused)
            plain = gs.gumbel_softmax(logits, tau, generator=generator(fused, 4), **kw)
            graph = gs.gumbel_softmax(
                logits.clone().requires_grad_(), tau, generator=generator(fused, 4), **kw
            )
            assert graph.requires_grad and not plain.requires_grad
            assert torch.equal(plain, graph.detach()), (shape, dim, type(tau))


def test_gradient_is_the_formula_of_the_saved_sample(fused):
    # grad_logits = y (w - <w, y>) / tau and grad_tau = -(1/tau) sum_k a_k log y_k, computed
    # here in float64 from the sample the kernel returned.
    dev = device_of(fused)
    logits = torch.randn(5, 40, dtype=torch.float64, device=dev, requires_grad=True)
    tau = torch.tensor(0.7, dtype=torch.float64, device=dev, requires_grad=True)
    y = gs.gumbel_softmax(logits, tau, generator=generator(fused, 1), backend=fused)
    w = torch.randn_like(y)
    gl, gt = torch.autograd.grad((y * w).sum(), (logits, tau))
    yd = y.detach()
    a = yd * (w - (w * yd).sum(-1, keepdim=True))
    torch.testing.assert_close(gl, a / 0.7, **TOL[torch.float64])
    torch.testing.assert_close(gt, -(a * yd.log()).sum() / 0.7, **TOL[torch.float64])


@pytest.mark.parametrize("k", [10, 300])
def test_hard_is_one_hot_at_the_soft_argmax_and_carries_the_soft_gradient(fused, k):
    dev = device_of(fused)
    logits = torch.randn(64, k, device=dev, requires_grad=True)
    tau = torch.full((64,), 0.5, device=dev, requires_grad=True)
    soft = gs.gumbel_softmax(logits, tau, generator=generator(fused, 2), backend=fused)
    hard = gs.gumbel_softmax(logits, tau, hard=True, generator=generator(fused, 2), backend=fused)
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(hard.sum(-1), torch.ones(64, device=dev))
    assert torch.equal(hard.argmax(-1), soft.argmax(-1))
    w = torch.randn_like(soft)
    for a, b in zip(
        torch.autograd.grad((hard * w).sum(), (logits, tau)),
        torch.autograd.grad((soft * w).sum(), (logits, tau)),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_hard_backward_twice_with_retain_graph(fused):
    # the backward reuses the relaxed sample's memory only when the graph is let go
    dev = device_of(fused)
    logits = torch.randn(8, 300, device=dev, requires_grad=True)
    y = gs.gumbel_softmax(logits, 0.5, hard=True, generator=generator(fused, 3), backend=fused)
    w = torch.randn_like(y)
    first = torch.autograd.grad((y * w).sum(), logits, retain_graph=True)[0]
    second = torch.autograd.grad((y * w).sum(), logits)[0]
    assert torch.equal(first, second)


@pytest.mark.parametrize("hard", [False, True])
def test_masked_classes_get_exactly_zero_and_no_gradient(fused, hard):
    dev = device_of(fused)
    for k in (10, 300):
        logits = torch.randn(32, k, device=dev)
        logits[:, ::3] = -torch.inf
        logits[0, :] = -torch.inf
        logits[0, 1] = 0.0  # one class left: the sample is that vertex
        logits.requires_grad_()
        tau = torch.tensor(0.5, device=dev, requires_grad=True)
        y = gs.gumbel_softmax(logits, tau, hard=hard, generator=generator(fused, 4), backend=fused)
        masked = torch.isinf(logits.detach())
        assert torch.equal(y[masked], torch.zeros_like(y[masked]))
        assert torch.equal(y[0], torch.eye(k, device=dev)[1])
        gl, gt = torch.autograd.grad((y * torch.randn_like(y)).sum(), (logits, tau))
        assert torch.equal(gl[masked], torch.zeros_like(gl[masked]))
        assert bool(torch.isfinite(gl).all()) and bool(torch.isfinite(gt))


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_computes_in_float32_or_better_and_returns_its_own(fused, dtype):
    dev = device_of(fused)
    logits = torch.randn(16, 50, device=dev).to(dtype).requires_grad_()
    tau = torch.full((16,), 0.5, device=dev).to(dtype).requires_grad_()
    y = gs.gumbel_softmax(logits, tau, generator=generator(fused, 5), backend=fused)
    assert y.dtype == dtype
    torch.testing.assert_close(
        y.double().sum(-1),
        torch.ones(16, dtype=torch.float64, device=dev),
        rtol=0,
        atol=50 * torch.finfo(dtype).eps,
    )
    gl, gt = torch.autograd.grad((y * torch.randn_like(y)).sum(), (logits, tau))
    assert gl.dtype == gt.dtype == dtype
    assert bool(torch.isfinite(gl).all()) and bool(torch.isfinite(gt).all())
    if dtype in (torch.float16, torch.bfloat16):  # the same sample as from float32 inputs
        y32 = gs.gumbel_softmax(
            logits.float(), tau.float(), generator=generator(fused, 5), backend=fused
        )
        assert torch.equal(y, y32.to(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("hard", [False, True])
def test_no_nan_or_inf_at_the_extremes(fused, dtype, temperature, hard):
    # logits of +-1e4 with masks, temperatures from 1e-3 to 1e3: every value and gradient finite
    dev = device_of(fused)
    g = torch.Generator().manual_seed(6)
    logits = (1e4 * torch.randn(24, 40, generator=g).sign()).to(dev)
    logits[:, :5] = -torch.inf
    logits = logits.to(dtype).requires_grad_()
    tau = torch.tensor(temperature, device=dev).to(dtype).requires_grad_()
    y = gs.gumbel_softmax(logits, tau, hard=hard, generator=generator(fused, 6), backend=fused)
    assert bool(torch.isfinite(y).all())
    assert bool((y[:, :5] == 0).all())
    gl, gt = torch.autograd.grad((y * torch.randn_like(y)).sum(), (logits, tau))
    assert bool(torch.isfinite(gl).all()) and bool(torch.isfinite(gt))


def test_same_seed_same_sample_and_the_global_generator_untouched(fused):
    dev = device_of(fused)
    logits = torch.randn(40, 300, device=dev)
    state = torch.get_rng_state()
    a = gs.gumbel_softmax(logits, generator=generator(fused, 7), backend=fused)
    b = gs.gumbel_softmax(logits, generator=generator(fused, 7), backend=fused)
    c = gs.gumbel_softmax(logits, generator=generator(fused, 8), backend=fused)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # without a generator: the default one, so torch.manual_seed reproduces the sample
    torch.manual_seed(9)
    d = gs.gumbel_softmax(logits, backend=fused)
    torch.manual_seed(9)
    assert torch.equal(gs.gumbel_softmax(logits, backend=fused), d)


def test_numba_sample_does_not_depend_on_the_thread_count():
    pytest.importorskip("numba")
    logits = torch.randn(64, 2048)  # above the size where the work is split over threads
    threads = torch.get_num_threads()
    out = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            y = gs.gumbel_softmax(
                logits.requires_grad_(), 0.5, generator=generator("numba", 10), backend="numba"
            )
            out.append((y, torch.autograd.grad(y[:, 0].sum(), logits)[0]))
    finally:
        torch.set_num_threads(threads)
    for y, g in out[1:]:
        assert torch.equal(y, out[0][0]) and torch.equal(g, out[0][1])


def test_non_contiguous_logits_and_temperature_broadcast(fused):
    dev = device_of(fused)
    base = torch.randn(6, 20, 4, dtype=torch.float64, device=dev)
    logits = base.transpose(0, 2)  # (4, 20, 6), not contiguous; classes along dim 1
    tau = torch.tensor([[0.5], [1.0], [2.0], [4.0]], dtype=torch.float64, device=dev)  # (4, 1)
    y, ref = _pair(fused, logits, tau, hard=False, dim=1)
    torch.testing.assert_close(y, ref, **TOL[torch.float64])


BAD_INPUTS = [
    (
        lambda d: (torch.zeros(2, 3, device=d), 0.0, {}),
        ValueError,
        "temperature must be positive and finite",
    ),
    (
        lambda d: (
            torch.zeros(2, 3, device=d),
            torch.tensor([1.0, -1.0], device=d),
            {"validate_args": True},  # strict: a ValueError on CUDA too, not an async assert
        ),
        ValueError,
        r"temperature must be positive and finite, got \[-1.0\]",
    ),
    (
        lambda d: (torch.zeros(2, 3, device=d), torch.tensor([1, 2], device=d), {}),
        TypeError,
        "temperature must be a float or a floating tensor",
    ),
    (
        lambda d: (torch.zeros(2, 3, device=d), torch.ones(3, device=d), {}),
        ValueError,
        r"temperature of shape \(3,\) does not broadcast",
    ),
    (
        lambda d: (torch.zeros(2, 3, dtype=torch.int64, device=d), 1.0, {}),
        TypeError,
        "logits must have a floating dtype",
    ),
    (
        lambda d: (torch.tensor([0.0, torch.nan], device=d), 1.0, {"validate_args": True}),
        ValueError,
        r"logits .* contains NaN \(first at index \(1,\)\)",
    ),
    (
        lambda d: (
            torch.tensor([[0.0, 1.0], [torch.inf, 0.0]], device=d),
            1.0,
            {"validate_args": True},
        ),
        ValueError,
        r"logits .* contains \+inf \(first at index \(1, 0\)\)",
    ),
    (lambda d: (torch.zeros(2, 3, device=d), 1.0, {"dim": 2}), ValueError, "dim=2 is out of range"),
    (
        lambda d: (torch.full((1, 3), -torch.inf, device=d), 1.0, {"validate_args": True}),
        ValueError,
        "all masked",
    ),
    *(
        (
            lambda d, h=h: (torch.zeros(2, 3, device=d), 1.0, {"hard": h}),
            TypeError,
            "hard must be a bool or a 0-d bool tensor, got " + m,
        )
        for h, m in (
            ("False", "'False'"),
            (1, "1"),
            (None, "None"),
            (torch.tensor([True]), "tensor"),
        )
    ),
    (
        lambda d: (torch.zeros(2, 3, device=d), 1.0, {"generator": 123}),
        TypeError,
        "generator must be a torch.Generator or None, got 123",
    ),
    (lambda d: (torch.tensor(0.0, device=d), 1.0, {}), ValueError, "at least one dimension"),
]


@pytest.mark.parametrize(("make", "exc", "match"), BAD_INPUTS)
def test_bad_inputs_raise_what_the_reference_raises(fused, make, exc, match):
    logits, tau, kw = make(device_of(fused))
    for name in ("reference", fused):
        with pytest.raises(exc, match=match):
            gs.gumbel_softmax(logits, tau, backend=name, **kw)


def test_hard_as_a_bool_tensor_is_hard(backend):
    dev = device_of(backend)
    logits = torch.randn(5, 7, device=dev)
    for flag in (False, True):
        a = gs.gumbel_softmax(logits, hard=flag, generator=generator(backend, 3), backend=backend)
        b = gs.gumbel_softmax(
            logits,
            hard=torch.tensor(flag, device=dev),
            generator=generator(backend, 3),
            backend=backend,
        )
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device type")
def test_a_generator_on_another_device_is_refused(backend):
    dev = device_of(backend)
    other = torch.Generator(device="cpu" if dev.type == "cuda" else "cuda")
    with pytest.raises(ValueError, match=r"generator is on device .* but the samples are drawn on"):
        gs.gumbel_softmax(torch.zeros(2, 3, device=dev), generator=other, backend=backend)


def test_unvalidated_nan_logits_give_nan_rows_as_the_reference(fused):
    dev = device_of(fused)
    for k in (3, 300):
        logits = torch.zeros(2, k, device=dev)
        logits[0, 1] = torch.nan
        for hard in (False, True):
            y = gs.gumbel_softmax(logits, hard=hard, validate_args=False, backend=fused)
            assert bool(y[0].isnan().all()) and bool(y[1].isfinite().all())


def test_fused_backward_is_once_differentiable(fused):
    # under create_graph=True the fused gradient is a constant: differentiating it again raises
    # rather than giving a wrong second derivative
    dev = device_of(fused)
    logits = torch.randn(4, 10, device=dev, requires_grad=True)
    y = gs.gumbel_softmax(logits, generator=generator(fused, 17), backend=fused)
    (g,) = torch.autograd.grad((y * torch.randn_like(y)).sum(), logits, create_graph=True)
    assert not g.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        g.sum().backward()


@pytest.mark.parametrize("hard", [False, True])
def test_the_reference_path_reads_nothing_back(hard, monkeypatch):
    """The pure-PyTorch path (the one CUDA takes besides triton, and compiled code) costs no host
    synchronisation: with the value checks on their CUDA path (queued on the device), sampling,
    its gradient, the relaxed Bernoulli and categorical draws read no tensor back to the host
    (``HostReads``). ``tests/backends/test_cuda_sync.py`` checks the same on a GPU."""
    monkeypatch.setattr(_numerics, "_queued", lambda x, strict: not strict)
    logits = torch.randn(64, 100, requires_grad=True)
    tau = torch.full((64,), 0.5)
    g = torch.Generator().manual_seed(0)
    with HostReads() as reads:
        for t in (0.5, tau):
            y = gs.gumbel_softmax(logits, t, hard=hard, generator=g, backend="reference")
            y.backward(torch.ones_like(y))
        gs.relaxed_bernoulli(logits, 0.5, hard=hard, generator=g)
        gs.sample_categorical(logits, generator=g)
    assert reads.seen == []
