"""On a GPU: a sample costs no host synchronisation and can be captured in a CUDA graph.

Skipped without CUDA (on the CPU, the triton kernels run under Triton's interpreter in the other
backend tests). ``torch.cuda.set_sync_debug_mode("error")`` turns every synchronising operation
(``.item()``, ``bool()`` of a CUDA tensor, a pageable host-to-device copy) into an error.
"""

from __future__ import annotations

import pytest
import torch

import gumbel_softmax as gs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

BACKENDS = ("reference", "triton")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hard", [False, True])
def test_no_host_synchronisation(backend, hard):
    logits = torch.randn(64, 1000, device="cuda", requires_grad=True)
    tau = torch.full((64,), 0.5, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    gs.gumbel_softmax(logits, 0.5, hard=hard, backend=backend)  # load and compile first
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for t in (0.5, tau):
            y = gs.gumbel_softmax(logits, t, hard=hard, generator=g, backend=backend)
            y.backward(torch.ones_like(y))
        y = gs.gumbel_softmax(logits, 0.5, hard=torch.tensor(hard, device="cuda"), backend=backend)
        gs.relaxed_bernoulli(logits, 0.5, hard=hard)
        gs.sample_categorical(logits)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


@pytest.mark.parametrize("backend", BACKENDS)
def test_captured_in_a_cuda_graph(backend):
    logits = torch.randn(32, 500, device="cuda")
    out = torch.empty_like(logits)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm-up outside the capture, as CUDA graphs require
        for _ in range(2):
            out.copy_(gs.gumbel_softmax(logits, 0.5, hard=True, backend=backend))
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out.copy_(gs.gumbel_softmax(logits, 0.5, hard=True, backend=backend))
    draws = []
    for _ in range(3):
        graph.replay()
        draws.append(out.clone())
    torch.cuda.synchronize()
    for d in draws:
        assert bool((d.sum(-1) == 1).all())
    assert not torch.equal(draws[0], draws[1])  # the replay draws new noise (philox offsets)


def test_distributions_cost_no_host_synchronisation():
    """Every distribution's construction, ``rsample`` and ``log_prob`` on CUDA with validation
    on (the default): its checks are queued on the device."""
    import gumbel_softmax.distributions as D

    k = torch.randn(64, 10, device="cuda")
    b = torch.randn(64, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    cases = [
        lambda: D.ExpConcrete(0.5, logits=k),
        lambda: D.Concrete(0.5, logits=k),
        lambda: D.Concrete(torch.full((64,), 0.5, device="cuda"), probs=k.softmax(-1)),
        lambda: D.StraightThroughConcrete(0.5, logits=k),
        lambda: D.LogitBinaryConcrete(0.5, logits=b),
        lambda: D.BinaryConcrete(0.5, probs=b.sigmoid()),
        lambda: D.StraightThroughBinaryConcrete(0.5, logits=b),
        lambda: D.HardConcrete(2 / 3, logits=b),
        lambda: D.IGR(0.5, loc=k[:, 1:], scale=torch.ones_like(k[:, 1:])),
    ]
    for make in cases:  # first calls outside the check (lazy CUDA initialisation)
        make().log_prob(make().rsample(generator=g))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for make in cases:
            d = make()
            d.log_prob(d.rsample((2,), generator=g))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
