"""Relaxed top-k (arXiv:1901.10517): its zero-temperature limit is the exact Gumbel-top-k sample,
the hard form is distributed as sampling without replacement (enumeration), k = 1 is the
Gumbel-Softmax, and it stays finite for every dtype, temperature, extreme logits and masks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from tests.conftest import DTYPES, TEMPERATURES

import gumbel_softmax as gs
from gumbel_softmax.testing import chi_square_test


def _k_hot(index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like).scatter_(-1, index, 1.0)


def _clear(keys: torch.Tensor, k: int, tau: float) -> torch.Tensor:
    """Rows whose relaxation at ``tau`` must equal the top-k k-hot up to rounding.

    With r_1 > ... > r_{k+1} the largest keys and gap the smallest r_j - r_{j+1}: each softmax
    puts at most (K - 1) e^{-gap/tau} off the current largest key, and removing it lowers it by
    log(1 - a) <= -gap/tau + log K. If gap >= 40 tau and gap/tau >= r_1 - r_{k+1} + log K + 40 tau,
    a removed class ends at least 40 tau below every class still to choose, so every weight
    off the k-hot is below e^-40 = 4e-18, under float32 and float64 rounding alike.
    """
    r = keys.sort(-1, descending=True).values[..., : k + 1]
    gap = (r[..., :-1] - r[..., 1:]).min(-1).values
    spread = r[..., 0] - r[..., -1]
    log_k = math.log(keys.shape[-1])
    return (gap >= 40 * tau) & (gap / tau >= spread + log_k + 40 * tau)


@pytest.mark.parametrize(
    ("dtype", "scale", "tau"), [(torch.float64, 1.0, 1e-4), (torch.float32, 1e4, 1e-3)]
)
def test_zero_temperature_limit_is_the_exact_gumbel_top_k_sample(dtype, scale, tau):
    # Same seed, same noise: sample_without_replacement takes the top k of logits + G. On the
    # rows where the limit has been reached (_clear) the relaxation is the k-hot up to the k
    # softmaxes' rounding, 2 k K eps. At logits of 1e4 and tau = 1e-3 the removal is
    # -gap/tau ~ -1e6, where a clip of 1 - a at float32's tiny (-87) would leave the removed
    # class above the others and choose it again.
    n, K, k = 2000, 8, 3
    logits = torch.randn(n, K, generator=torch.Generator().manual_seed(5), dtype=dtype) * scale
    y = gs.relaxed_top_k(logits, k, tau, generator=torch.Generator().manual_seed(9))
    top = gs.sample_without_replacement(logits, k, generator=torch.Generator().manual_seed(9))
    exact = _k_hot(top, logits)
    noise = gs.gumbel((n, K), dtype=dtype, generator=torch.Generator().manual_seed(9))
    clear = _clear(logits + noise, k, tau)
    assert float(clear.double().mean()) > 0.8  # the check covers most rows
    eps = torch.finfo(dtype).eps
    assert float((y[clear] - exact[clear]).abs().max()) <= 2 * k * K * eps
    # and the same noise passed explicitly gives the same relaxation
    torch.testing.assert_close(gs.relaxed_top_k(logits, k, tau, noise=noise), y, rtol=0, atol=0)


def test_finite_temperature_can_choose_a_class_twice():
    # The relaxation reaches the top-k only once gap/tau exceeds the spread of the keys: here the
    # top two keys differ by 1 and the third is 1e3 below, so at tau = 1e-2 the removed top key
    # drops by ~100 only, stays above the third, and is chosen again (as in exact arithmetic).
    logits = torch.tensor([[1000.0, 999.0, 0.0, -5.0]], dtype=torch.float64)
    noise = torch.zeros_like(logits)
    y = gs.relaxed_top_k(logits, 3, 1e-2, noise=noise)
    torch.testing.assert_close(y, torch.tensor([[2.0, 1.0, 0.0, 0.0]], dtype=torch.float64))
    y = gs.relaxed_top_k(logits, 3, 1e-4, noise=noise)  # gap/tau = 1e4 > spread: the top 3
    torch.testing.assert_close(y, torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=torch.float64))


def test_k_equal_one_is_the_gumbel_softmax():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 6, dtype=torch.float64, generator=g).requires_grad_(True)
    noise = gs.gumbel((4, 6), dtype=torch.float64, generator=g)
    a = gs.relaxed_top_k(logits, 1, 0.7, noise=noise)
    b = gs.gumbel_softmax(logits, 0.7, noise=noise)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    w = torch.randn(4, 6, dtype=torch.float64, generator=g)
    (ga,) = torch.autograd.grad((a * w).sum(), logits)
    (gb,) = torch.autograd.grad((b * w).sum(), logits)
    torch.testing.assert_close(ga, gb)


def test_gradients_match_finite_differences():
    # With the noise fixed the relaxation is smooth in logits and temperature (the argmax that
    # picks the leave-one-out branch is locally constant): torch's gradcheck, float64.
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(3, 6, dtype=torch.float64, generator=g).requires_grad_(True)
    noise = gs.gumbel((3, 6), dtype=torch.float64, generator=g)
    tau = torch.tensor([0.4, 1.0, 2.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, t: gs.relaxed_top_k(x, 3, t, noise=noise), (logits, tau)
    )


def _subset_probs(logits: torch.Tensor, k: int) -> dict[tuple[int, ...], float]:
    """P(set) by enumeration: the sum over orders of prod_j p_{i_j} / (1 - p of those before)."""
    p = torch.softmax(logits.double(), -1).tolist()
    probs: dict[tuple[int, ...], float] = {}
    for order in itertools.permutations(range(len(p)), k):
        q, left = 1.0, 1.0
        for i in order:
            q *= p[i] / left
            left -= p[i]
        key = tuple(sorted(order))
        probs[key] = probs.get(key, 0.0) + q
    return probs


def _subset_counts(khot: torch.Tensor, subsets: list[tuple[int, ...]]) -> torch.Tensor:
    """Counts of each subset among k-hot rows (a subset's code: the sum of 2^i over its i)."""
    codes = (khot.long() << torch.arange(khot.shape[-1])).sum(-1)
    counts = torch.bincount(codes, minlength=2 ** khot.shape[-1])
    return torch.stack([counts[sum(1 << i for i in s)] for s in subsets])


def test_hard_sample_follows_sampling_without_replacement():
    # 20,000 hard samples of K = 5, k = 2 (10 subsets) against enumeration: chi-square, false
    # alarm 1e-3. The same test rejects softmax(logits) passed as logits (relaxit's bug) with
    # level 1e-3, so it has the power to catch it.
    logits = torch.tensor([1.5, 0.0, -1.0, 0.5, -2.0])
    probs = _subset_probs(logits, 2)
    subsets = sorted(probs)
    p = torch.tensor([probs[s] for s in subsets])
    y = gs.relaxed_top_k(
        logits.expand(20_000, 5), 2, 0.5, hard=True, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(y.sum(-1), torch.full((20_000,), 2.0))
    assert chi_square_test(_subset_counts(y, subsets), p).p_value > 1e-3
    wrong = gs.relaxed_top_k(
        logits.softmax(-1).expand(20_000, 5),
        2,
        0.5,
        hard=True,
        generator=torch.Generator().manual_seed(4),
    )
    assert chi_square_test(_subset_counts(wrong, subsets), p).p_value < 1e-3


def test_hard_value_is_exact_and_carries_the_relaxed_gradient():
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(5, 7, dtype=torch.float64, generator=g).requires_grad_(True)
    noise = gs.gumbel((5, 7), dtype=torch.float64, generator=g)
    hard = gs.relaxed_top_k(logits, 3, 0.5, hard=True, noise=noise)
    soft = gs.relaxed_top_k(logits, 3, 0.5, noise=noise)
    assert torch.equal(hard, _k_hot((logits + noise).topk(3).indices, hard))
    w = torch.randn(5, 7, dtype=torch.float64, generator=g)
    (gh,) = torch.autograd.grad((hard * w).sum(), logits)
    (gr,) = torch.autograd.grad((soft * w).sum(), logits)
    torch.testing.assert_close(gh, gr, rtol=0, atol=0)
    # logits are log-probabilities up to a constant: shifting a row changes nothing
    shifted = gs.relaxed_top_k(logits + 3.0, 3, 0.5, noise=noise)
    torch.testing.assert_close(shifted, soft)


def test_class_dimension_and_per_row_temperature():
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(3, 6, 2, dtype=torch.float64, generator=g)
    noise = gs.gumbel((3, 6, 2), dtype=torch.float64, generator=g)
    tau = torch.tensor([[0.3, 1.0]] * 3, dtype=torch.float64)
    y = gs.relaxed_top_k(logits, 2, tau, dim=1, noise=noise)
    for j in range(2):
        col = gs.relaxed_top_k(logits[:, :, j], 2, float(tau[0, j]), noise=noise[:, :, j])
        torch.testing.assert_close(y[:, :, j], col)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("scale", [1.0, 1e4])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("hard", [False, True])
def test_numerics_grid(dtype, temperature, scale, masked, hard):
    k, K = 3, 7
    logits = torch.randn(4, K, generator=torch.Generator().manual_seed(0)) * scale
    if masked:
        logits[:, 1] = -torch.inf
        logits[0, 3:6] = -torch.inf  # row 0 keeps exactly k classes
    logits = logits.to(dtype).requires_grad_(True)
    tau = torch.tensor(temperature, dtype=dtype, requires_grad=True)
    y = gs.relaxed_top_k(logits, k, tau, hard=hard, generator=torch.Generator().manual_seed(1))
    assert y.dtype == dtype and bool(torch.isfinite(y).all()) and bool((y >= 0).all())
    if masked:
        assert bool((y[torch.isneginf(logits)] == 0).all())
    # each of the k softmaxes sums to 1 up to K roundings of float32 (the compute dtype of 16-bit
    # inputs) and the cast to dtype rounds each coordinate once more
    eps = torch.finfo(dtype).eps + torch.finfo(torch.float32 if dtype.itemsize == 2 else dtype).eps
    assert float((y.detach().double().sum(-1) - k).abs().max()) <= 2 * k * K * eps
    (y * torch.linspace(-1, 1, K, dtype=dtype)).sum().backward()
    assert bool(torch.isfinite(logits.grad).all()) and bool(torch.isfinite(tau.grad))


def test_bad_input():
    logits = torch.zeros(2, 4)
    with pytest.raises(TypeError, match=r"k must be an int, got 2\.0"):
        gs.relaxed_top_k(logits, 2.0)
    with pytest.raises(TypeError, match="k must be an int, got True"):
        gs.relaxed_top_k(logits, True)
    for k in (0, 5):
        with pytest.raises(ValueError, match=f"k must satisfy 1 <= k <= K = 4, got k={k}"):
            gs.relaxed_top_k(logits, k)
    masked = logits.clone()
    masked[1, :2] = -torch.inf
    with pytest.raises(ValueError, match=r"k=3 exceeds the number of unmasked classes .*fewest: 2"):
        gs.relaxed_top_k(masked, 3, validate_args=True)
    with pytest.raises(TypeError, match="logits must have a floating dtype"):
        gs.relaxed_top_k(torch.zeros(2, 4, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="contains NaN"):
        gs.relaxed_top_k(torch.full((2, 4), torch.nan), 2, validate_args=True)
    with pytest.raises(ValueError, match=r"temperature must be positive and finite, got 0\.0"):
        gs.relaxed_top_k(logits, 2, 0.0)
    with pytest.raises(ValueError, match=r"noise must have the shape of logits \(2, 4\)"):
        gs.relaxed_top_k(logits, 2, noise=torch.zeros(4))
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        gs.relaxed_top_k(logits, 2, dim=2)
    with pytest.raises(TypeError, match="hard must be a bool or a 0-d bool tensor, got 1"):
        gs.relaxed_top_k(logits, 2, hard=1)
