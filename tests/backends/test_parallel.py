"""How the numba kernels are spread over threads (``backends._parallel``): torch's OpenMP team,
a pool of Python threads, or the calling thread alone must give the same bits; a forked child
must not hang on the parent's OpenMP threads."""

from __future__ import annotations

import multiprocessing as mp
import sys

import numpy as np
import pytest
import torch

import gumbel_softmax as gs
from gumbel_softmax.backends import _parallel

numba = pytest.importorskip("numba")
from gumbel_softmax.backends import _numba_openmp  # noqa: E402


def _openmp_torch() -> bool:
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def _run(logits: torch.Tensor, tau: float | torch.Tensor, hard: bool, seed: int = 5):
    """A sample, its gradients (logits and, for a tensor temperature, tau) and the raw noise."""
    x = logits.detach().requires_grad_()
    t = tau.detach().requires_grad_() if isinstance(tau, torch.Tensor) else tau
    y = gs.gumbel_softmax(
        x, t, hard=hard, generator=torch.Generator().manual_seed(seed), backend="numba"
    )
    w = torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)
    inputs = [x, t] if isinstance(t, torch.Tensor) else [x]
    grads = torch.autograd.grad((y * w).sum(), inputs)
    noise = gs.backends._noise(
        "numba", logits.shape, dtype=logits.dtype, generator=torch.Generator().manual_seed(seed)
    )
    return (y.detach(), *grads, noise)


CASES = [
    ((96, 2048), torch.float32),  # long rows, 196k elements: split over threads
    ((9000, 10), torch.float32),  # short rows (chunks), 90k elements
    ((40, 1500), torch.float64),
]


@pytest.mark.parametrize("shape,dtype", CASES)
@pytest.mark.parametrize("hard", [False, True])
def test_openmp_pool_and_one_thread_give_the_same_bits(monkeypatch, shape, dtype, hard):
    logits = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    logits[0, 1] = -torch.inf  # a mask
    tau = torch.rand(shape[0], dtype=dtype, generator=torch.Generator().manual_seed(2)) + 0.2
    threads = torch.get_num_threads()
    results = {}
    try:
        torch.set_num_threads(max(2, threads))
        results["default"] = _run(logits, tau, hard)
        monkeypatch.setattr(_parallel, "_gomp", [None])  # no OpenMP runtime: the pool
        results["pool"] = _run(logits, tau, hard)
        torch.set_num_threads(1)
        results["one thread"] = _run(logits, tau, hard)  # the C worker, called through ctypes
        monkeypatch.setattr(_numba_openmp, "_worker", [None])  # it did not compile
        results["one thread, entry point"] = _run(logits, tau, hard)
    finally:
        torch.set_num_threads(threads)
    for name, got in results.items():
        for a, b in zip(got, results["one thread"], strict=True):
            assert torch.equal(a, b), name


def test_torch_openmp_runtime_is_found_where_torch_uses_openmp():
    if not (_openmp_torch() and sys.platform.startswith("linux")):
        pytest.skip("torch does not run its intra-op work on OpenMP here")
    assert callable(_parallel.torch_openmp())


def test_a_worker_that_does_not_compile_leaves_the_pool(monkeypatch):
    """``launch`` with no C worker (compilation failed) runs every block on the pool."""
    calls = []

    def kernel(c0: int, c1: int, out: np.ndarray) -> tuple[int, int]:
        calls.append((c0, c1))
        out[c0:c1] = 1
        return (c1 - c0, 0)

    out = np.zeros(64)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    counts = _parallel.launch([kernel], 0, lambda: None, 1 << 20, 64, out)
    assert sorted(calls)[0][0] == 0 and sum(c[0] for c in counts) == 64 and out.all()
    assert len(calls) > 2  # blocks, not one half per thread


def test_slots_keep_all_64_bits():
    seed = np.uint64(2**64 - 3)
    a = torch.zeros(3)
    slots = _parallel._slots([a, seed, -5, True, 7])
    assert slots[0] == a.data_ptr() == a.numpy().ctypes.data and slots[1] == 3
    assert np.array(slots[2], np.int64).view(np.uint64) == seed
    assert slots[3:] == [-5, 1, 7]


def _sample() -> torch.Tensor:
    """A sample of 262k elements (split over threads) and no other parallel torch operator."""
    logits = torch.randn(64, 4096, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    return gs.gumbel_softmax(logits, 0.5, generator=g, backend="numba")


def _child(conn) -> None:  # type: ignore[no-untyped-def]
    conn.send(_sample().numpy())
    conn.close()


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="no fork on this platform")
def test_a_forked_child_samples_without_the_parents_openmp_threads():
    """After the parent ran kernels on OpenMP threads, a forked child (whose copy of GNU
    OpenMP has no threads: torch's own parallel operators hang there, which is why torch's
    DataLoader workers set one thread) computes the same sample on a pool of its own."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        parent = _sample()  # the parent's OpenMP team is now started
        ctx = mp.get_context("fork")
        here, there = ctx.Pipe()
        child = ctx.Process(target=_child, args=(there,), daemon=True)
        child.start()
        answered = here.poll(120)
        if not answered:
            child.kill()
        assert answered, "the forked child did not answer within 120 s"
        got = here.recv()
        child.join(30)
    finally:
        torch.set_num_threads(threads)
    assert child.exitcode == 0
    assert np.array_equal(got, parent.numpy())


@pytest.mark.parametrize("shape", [(64, 4096), (9000, 10)])
@pytest.mark.parametrize("path", ["default", "pool"])
def test_checks_counted_by_the_threads_raise_the_reference_errors(monkeypatch, shape, path):
    """NaN logits and all-masked rows are counted by whichever threads run the blocks."""
    if path == "pool":
        monkeypatch.setattr(_parallel, "_gomp", [None])
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    nan = torch.randn(shape)
    nan[-1, -1] = torch.nan
    masked = torch.randn(shape)
    masked[shape[0] // 2] = -torch.inf
    with pytest.raises(ValueError, match="contains NaN"):
        gs.gumbel_softmax(nan, backend="numba")
    with pytest.raises(ValueError, match="all masked"):
        gs.gumbel_softmax(masked, backend="numba")


def test_concurrent_calls_from_python_threads_give_their_own_samples():
    """Each Python thread calling the kernels heads its own OpenMP team (or pool work)."""
    from concurrent.futures import ThreadPoolExecutor

    logits = torch.randn(64, 4096, generator=torch.Generator().manual_seed(8))

    def sample(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return gs.gumbel_softmax(logits, 0.7, generator=g, backend="numba")

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        expected = [sample(s) for s in range(6)]
        with ThreadPoolExecutor(3) as pool:
            got = list(pool.map(sample, range(6)))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)


def test_the_experimental_switch_turns_torch_openmp_off(monkeypatch):
    monkeypatch.setenv("GUMBEL_SOFTMAX_EXPERIMENTAL", "0")
    monkeypatch.setattr(_parallel, "_gomp", [])  # probed anew
    assert _parallel.torch_openmp() is None
