"""numba backend, the random numbers: SplitMix64 as a counter-based generator, and Gumbel noise
from it (the stream :mod:`._fused` defines, element for element)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from ._fused import GAMMA, MIX1, MIX2
from ._numba_math import _F32, _TINY32, _TINY64, _helper, _logf, _wide_vectors

_U64 = np.uint64
_GAMMA = _U64(GAMMA)
_MIX1 = _U64(MIX1)
_MIX2 = _U64(MIX2)
_S8, _S11, _S27, _S30, _S31, _S40 = (_U64(n) for n in (8, 11, 27, 30, 31, 40))
_M24 = _U64(0xFFFFFF)


def _fill_noise(v, seed, base):  # type: ignore[no-untyped-def]
    """v[i] = Gumbel noise number base + i of the stream ``seed``, in v's dtype."""


@njit(cache=True)
def _mix(z):  # type: ignore[no-untyped-def]
    """SplitMix64's finaliser (Steele, Lea & Flood 2014)."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@_helper
def _gumbel32(bits24):  # type: ignore[no-untyped-def]
    """Gumbel noise from 24 random bits k: U = k 2^-24 (torch.rand's float32 grid) clamped up
    to tiny, G = -log(-log U)."""
    u = _F32(np.int32(bits24)) * _F32(2.0**-24)
    u = u if u > _TINY32 else _TINY32
    return -_logf(-_logf(u))


@_helper
def _half(seed, i):  # type: ignore[no-untyped-def]
    """The 24 bits of float32 element ``i``: from the high (even i) or low (odd i) 32-bit half
    of hash number i >> 1, so that one 64-bit hash serves two elements."""
    r = _mix(seed + (np.uint64(i >> 1) + _U64(1)) * _GAMMA)
    return (r >> _S8) & _M24 if i & 1 else r >> _S40


@_helper
def _fill_noise32(v, seed, base):  # type: ignore[no-untyped-def]
    """v[i] = G_{base+i} for float32 (the stream of _fused), two elements per hash."""
    _wide_vectors()
    n = v.size
    i0 = 0
    if base & 1 and n > 0:  # an odd start: the low half of the hash it shares with base - 1
        v[0] = _gumbel32(_half(seed, base))
        i0 = 1
    h = (base + i0) >> 1
    pairs = (n - i0) >> 1
    w = v[i0 : i0 + 2 * pairs]
    for j in range(pairs):
        r = _mix(seed + (np.uint64(h + j) + _U64(1)) * _GAMMA)
        w[2 * j] = _gumbel32(r >> _S40)
        w[2 * j + 1] = _gumbel32((r >> _S8) & _M24)
    if i0 + 2 * pairs < n:
        v[n - 1] = _gumbel32(_half(seed, base + n - 1))


@_helper
def _fill_noise64(v, seed, base):  # type: ignore[no-untyped-def]
    """v[i] = G_{base+i} for float64: 53 bits of hash number base + i, U = k 2^-53 >= tiny."""
    _wide_vectors()
    for i in range(v.size):
        r = _mix(seed + (np.uint64(base + i) + _U64(1)) * _GAMMA)
        u = np.float64(np.int64(r >> _S11)) * 2.0**-53
        u = u if u > _TINY64 else _TINY64
        v[i] = -math.log(-math.log(u))


@overload(_fill_noise)
def _fill_noise_impl(v, seed, base):  # type: ignore[no-untyped-def]
    if v.dtype == types.float32:
        return lambda v, seed, base: _fill_noise32(v, seed, base)
    return lambda v, seed, base: _fill_noise64(v, seed, base)
