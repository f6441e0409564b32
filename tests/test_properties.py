"""Property-based tests (hypothesis) over shapes, dtypes, temperatures and masks.

Each property is an identity that must hold for every input, not a statistical statement, so the
checks are exact; derandomize=True makes the examples the same in every run.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gumbel_softmax as gs
import gumbel_softmax.distributions as D

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


@st.composite
def problems(draw):
    shape = [*draw(st.lists(st.integers(1, 4), min_size=0, max_size=2)), draw(st.integers(1, 7))]
    dtype = draw(st.sampled_from(DTYPES))
    tau = 10 ** draw(st.floats(-3, 3))
    scale = 10 ** draw(st.floats(-1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g) * scale
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    mask = torch.rand(shape, generator=g) < draw(st.floats(0, 0.6))
    mask.select(dim, 0).fill_(False)  # keep one class in every row along dim
    logits = logits.masked_fill(mask, -math.inf).to(dtype)
    return logits, tau, seed, dim


@SETTINGS
@given(problems(), st.booleans())
def test_gumbel_softmax_properties(problem, hard):
    logits, tau, seed, dim = problem
    logits = logits.requires_grad_(True)
    t = torch.tensor(tau, dtype=logits.dtype, requires_grad=True)
    noise = gs.gumbel_like(logits, generator=torch.Generator().manual_seed(seed))
    y = gs.gumbel_softmax(logits, t, hard=hard, dim=dim, noise=noise)
    assert y.shape == logits.shape and y.dtype == logits.dtype
    assert bool(torch.isfinite(y).all())
    masked = torch.isneginf(logits)
    assert bool((y[masked] == 0).all())  # masked classes get exactly zero mass
    assert bool(((y.float().sum(dim) - 1).abs() <= 1e-2).all())
    # Rounding, pathwise: the argmax of the relaxed sample is that of the perturbed logits.
    z = logits.detach().float() + noise.float()
    if hard:
        assert torch.equal(y, torch.zeros_like(y).scatter_(dim, z.argmax(dim, keepdim=True), 1))
    (
        y * torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y.dtype)
    ).sum().backward()
    assert bool(torch.isfinite(logits.grad).all()) and bool(torch.isfinite(t.grad))
    assert bool((logits.grad[masked] == 0).all())
    # Same generator seed, same sample; the global RNG is not touched.
    state = torch.get_rng_state()
    a = gs.gumbel_softmax(
        logits.detach(), tau, hard=hard, dim=dim, generator=torch.Generator().manual_seed(seed)
    )
    b = gs.gumbel_softmax(
        logits.detach(), tau, hard=hard, dim=dim, generator=torch.Generator().manual_seed(seed)
    )
    assert torch.equal(a, b) and torch.equal(state, torch.get_rng_state())


@SETTINGS
@given(problems())
def test_concrete_properties(problem):
    logits, tau, seed, dim = problem
    logits = logits.movedim(dim, -1)  # distributions take the classes last
    d = D.Concrete(tau, logits=logits)
    x = d.rsample((3,), generator=torch.Generator().manual_seed(seed))
    assert x.shape == (3, *logits.shape) and bool(torch.isfinite(x).all())
    assert bool((x[:, torch.isneginf(logits)] == 0).all())
    assert bool(torch.isfinite(d.log_prob(x)).all())
    y = D.ExpConcrete(tau, logits=logits).rsample(
        (3,), generator=torch.Generator().manual_seed(seed)
    )
    assert bool(torch.isfinite(y).all())
    # Concrete is exp of ExpConcrete, draw for draw (up to the clamp at tiny).
    tiny = torch.finfo(logits.dtype).tiny
    expected = torch.where(torch.isneginf(logits), 0.0, y.exp().clamp(min=tiny)).to(x.dtype)
    assert torch.equal(x, expected)


@SETTINGS
@given(problems())
def test_categorical_sampling_properties(problem):
    logits, _, seed, dim = problem
    idx = gs.sample_categorical(logits, dim=dim, generator=torch.Generator().manual_seed(seed))
    assert not bool(torch.isneginf(logits).gather(dim, idx.unsqueeze(dim)).any())
    k = int((~torch.isneginf(logits)).sum(dim).min())
    top = gs.sample_without_replacement(
        logits, k, dim=dim, generator=torch.Generator().manual_seed(seed)
    )
    assert bool((top.sort(dim).values.diff(dim=dim) > 0).all()) if k > 1 else True
    assert torch.equal(top.select(dim, 0), idx)  # the first of top-k is the Gumbel-max sample
