"""The fast random numbers: every backend's samples pass the core statistical tests, and the
kernels' raw Gumbel noise passes Kolmogorov-Smirnov tests, tails included.

Each assertion fails with probability ``1e-3`` when the implementation is correct (its
false-alarm rate, written next to it); seeds are fixed, so a run is reproducible.
"""

from __future__ import annotations

import math

import pytest
import torch
from tests.backends.conftest import device_of, generator, interpreted

import gumbel_softmax as gs
from gumbel_softmax import backends
from gumbel_softmax.testing import assert_categorical, chi_square_test, ks_test

FALSE_ALARM = 1e-3
LOGITS = torch.tensor([1.5, 0.0, -0.7, 0.4, -2.0, 0.9, -torch.inf, 0.2, -1.1, -torch.inf])


def _gumbel_cdf(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-torch.exp(-x))


def test_gumbel_max_categorical_with_masks(backend):
    # argmax of the perturbed logits (hard samples) ~ softmax(logits); masked classes never drawn
    n = 20_000 if interpreted(backend) else 100_000
    logits = LOGITS.to(device_of(backend)).expand(n, 10)
    y = gs.gumbel_softmax(logits, 1.0, hard=True, generator=generator(backend, 11), backend=backend)
    idx = y.argmax(-1).cpu()
    assert not bool(torch.isin(idx, torch.tensor([6, 9])).any())
    assert_categorical(idx, LOGITS.softmax(-1), false_alarm=FALSE_ALARM)  # false alarm 1e-3


@pytest.mark.parametrize("temperature", [0.1, 1.0, 10.0])
def test_rounding_property(backend, temperature):
    # P(argmax_k y_k = k) = alpha_k / sum_i alpha_i for the relaxed sample at any temperature
    n = 20_000 if interpreted(backend) else 100_000
    logits = LOGITS.to(device_of(backend)).expand(n, 10)
    y = gs.gumbel_softmax(logits, temperature, generator=generator(backend, 12), backend=backend)
    assert_categorical(
        y.argmax(-1).cpu(), LOGITS.softmax(-1), false_alarm=FALSE_ALARM
    )  # false alarm 1e-3


def test_gumbel_max_at_a_large_vocabulary(backend):
    # K = 50,000 with 5,000 masked classes and probabilities spanning 8 orders of magnitude. The
    # classes are pooled into cells of equal probability (by sorted probability), so that each
    # cell expects >= 10 draws; masked classes must never be drawn.
    k = 50_000
    g = torch.Generator().manual_seed(13)
    logits = torch.linspace(0.0, -18.0, k)[torch.randperm(k, generator=g)]
    logits[torch.randperm(k, generator=g)[:5_000]] = -torch.inf
    n, cells = {"reference": (400, 40), "numba": (1_000, 50)}.get(backend, (30, 3))
    with torch.no_grad():
        y = gs.gumbel_softmax(
            logits.to(device_of(backend)).expand(n, k),
            hard=True,
            generator=generator(backend, 13),
            backend=backend,
        )
    idx = y.argmax(-1).cpu()
    assert bool(torch.isfinite(logits[idx]).all())
    p = logits.double().softmax(-1)
    order = p.argsort()
    cell_of_rank = (p[order].cumsum(0) * cells).clamp(max=cells - 1e-9).floor().long()
    cell = torch.empty(k, dtype=torch.long)
    cell[order] = cell_of_rank
    counts = torch.bincount(cell[idx], minlength=cells)
    probs = torch.zeros(cells, dtype=torch.float64).index_add_(0, cell, p)
    result = chi_square_test(counts, probs)
    assert result.p_value > FALSE_ALARM, result  # false alarm 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_noise_is_gumbel_tails_included(fused, dtype):
    # The kernels' raw noise: KS against the Gumbel CDF overall, then against the conditional
    # CDFs of its lower tail (G < -1.5, probability 1.1e-2) and upper tail (G > 6, 2.5e-3),
    # where a flawed uniform or an inaccurate log near 1 would show, and a Poisson count of the
    # far upper tail (G > 10.5, 2.8e-5). Four tests at 2.5e-4 each: false alarm 1e-3 in all.
    n = 1 << (20 if interpreted(fused) else 22)
    g = (
        backends._noise(
            fused, (n,), dtype=dtype, device=device_of(fused), generator=generator(fused, 14)
        )
        .cpu()
        .double()
    )
    a = FALSE_ALARM / 4
    assert ks_test(g, _gumbel_cdf).p_value > a  # false alarm 2.5e-4
    lo, hi = -1.5, 6.0
    f_lo, f_hi = math.exp(-math.exp(-lo)), math.exp(-math.exp(-hi))
    assert ks_test(g[g < lo], lambda x: _gumbel_cdf(x) / f_lo).p_value > a  # false alarm 2.5e-4
    tail = g[g > hi]
    assert ks_test(tail, lambda x: (_gumbel_cdf(x) - f_hi) / (1 - f_hi)).p_value > a  # 2.5e-4
    far = 10.5
    mean = n * -math.expm1(-math.exp(-far))
    count = int((g > far).sum())
    # two-sided Poisson test by the normal approximation with continuity correction (mean >= 28)
    z = (abs(count - mean) - 0.5) / math.sqrt(mean)
    assert math.erfc(z / math.sqrt(2)) > a, (count, mean)  # false alarm 2.5e-4


def test_kernel_noise_stays_within_the_documented_bounds(fused):
    # uniforms on k 2^-24 clamped to tiny: float32 noise lies in [-4.47, 16.64] (_numerics)
    n = 1 << (18 if interpreted(fused) else 22)
    g = backends._noise(fused, (n,), device=device_of(fused), generator=generator(fused, 15))
    assert bool(torch.isfinite(g).all())
    assert float(g.min()) >= -4.4713 and float(g.max()) <= 16.6356


def test_numba_and_triton_draw_the_same_noise():
    # one stream, two implementations: equal up to float32 rounding of the two logs
    for name in ("numba", "triton"):
        pytest.importorskip(name)
        if name not in backends.available_backends():
            pytest.skip(f"backend {name!r} does not load here")
    shape = (3, 5000)
    a = backends._noise("numba", shape, generator=torch.Generator().manual_seed(16))
    # the seed is drawn on the generator's device: a CPU generator gives both the same seed
    b = backends._noise(
        "triton", shape, device=device_of("triton"), generator=torch.Generator().manual_seed(16)
    ).cpu()
    torch.testing.assert_close(a, b, rtol=4e-7, atol=4e-7)
