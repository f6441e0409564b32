"""Gumbel noise: its distribution (tails included), finiteness, and randomness discipline."""

from __future__ import annotations

import pytest
import torch
from tests.conftest import DTYPES

import gumbel_softmax as gs
from gumbel_softmax.testing import assert_close_mean, ks_test


def gumbel_cdf(x):
    return torch.exp(-torch.exp(-x))


def test_gumbel_noise_follows_the_gumbel_cdf(gen):
    g = gs.gumbel((200_000,), dtype=torch.float64, generator=gen)
    result = ks_test(g, gumbel_cdf)
    assert result.p_value > 1e-3  # false-alarm rate 1e-3


@pytest.mark.parametrize("tail", ["upper", "lower"])
def test_gumbel_tails_follow_the_cdf(gen, tail):
    # Conditioned on the tail, the noise must still follow the truncated Gumbel CDF.
    g = gs.gumbel((2_000_000,), dtype=torch.float32, generator=gen).double()
    if tail == "upper":
        c = 4.0  # P(G > 4) = 0.0181
        x = g[g > c]
        f_c = float(gumbel_cdf(torch.tensor(c, dtype=torch.float64)))
        result = ks_test(x, lambda t: (gumbel_cdf(t) - f_c) / (1 - f_c))
    else:
        c = -1.2  # P(G < -1.2) = 0.0362
        x = g[g < c]
        f_c = float(gumbel_cdf(torch.tensor(c, dtype=torch.float64)))
        result = ks_test(x, lambda t: gumbel_cdf(t) / f_c)
    assert x.numel() > 20_000
    assert result.p_value > 1e-3  # false-alarm rate 1e-3 per tail


def test_gumbel_mean_is_euler_gamma(gen):
    g = gs.gumbel((400_000,), dtype=torch.float64, generator=gen)
    # E[G] = Euler's gamma; two-sided, false-alarm rate 1e-4
    assert_close_mean(g, 0.5772156649015329, false_alarm=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gumbel_is_finite_in_every_dtype(dtype, monkeypatch):
    # The extreme uniforms torch.rand can return, 0 and the largest value below 1, are what break
    # -log(-log U) unclamped; force them and check the documented bounds.
    real_rand = torch.rand

    def extreme_rand(*shape, dtype=torch.float32, **kw):
        u = real_rand(*shape, dtype=dtype, **kw)
        u[..., 0] = 0.0
        u[..., 1] = 1 - torch.finfo(dtype).eps / 2
        return u

    monkeypatch.setattr(torch, "rand", extreme_rand)
    g = gs.gumbel((4, 1000), dtype=dtype, generator=torch.Generator().manual_seed(1))
    n = gs.functional.relaxed_bernoulli(torch.zeros(4, 1000, dtype=dtype), 1.0)
    assert g.dtype == dtype and n.dtype == dtype
    assert bool(torch.isfinite(g).all()) and bool(torch.isfinite(n).all())
    hi, lo = (36.75, -6.57) if dtype == torch.float64 else (16.65, -4.48)
    assert float(g[:, 1].min()) > hi - 0.1 and float(g.max()) <= hi
    assert float(g[:, 0].max()) < lo + 0.1 and float(g.min()) >= lo


def test_gumbel_like_matches_shape_dtype_device(gen):
    x = torch.empty(3, 4, dtype=torch.float64)
    g = gs.gumbel_like(x, generator=gen)
    assert g.shape == x.shape and g.dtype == x.dtype and g.device == x.device


def test_gumbel_rejects_bad_input():
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        gs.gumbel((3,), dtype=torch.int64)
    with pytest.raises(TypeError, match=r"tensor must be a torch\.Tensor"):
        gs.gumbel_like([1.0, 2.0])  # type: ignore[arg-type]


def test_same_seed_same_noise_and_global_rng_untouched():
    state = torch.get_rng_state()
    a = gs.gumbel((1000,), generator=torch.Generator().manual_seed(7))
    b = gs.gumbel((1000,), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())
