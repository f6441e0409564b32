r"""The ``numba`` backend: fused Gumbel-Softmax kernels for CPU tensors.

Imported lazily by :mod:`gumbel_softmax.backends` at first use; importing this module imports
numba. Every kernel works on flat, C-contiguous float32 or float64 arrays holding ``R`` rows of
``K`` classes, and is compiled once per dtype (``cache=True`` keeps the machine code on disk).

Forward, per row, with :math:`v_k = x_k + G_k` and :math:`t = 1/\tau`:

.. math:: m = \max_k v_k, \qquad e_k = \exp((v_k - m)\,t), \qquad y_k = e_k / \textstyle\sum_i e_i,

and for ``hard`` the one-hot of the first :math:`\arg\max_k v_k`. :math:`G_k` comes from
:func:`gumbel_softmax.backends._fused` 's counter-based generator, evaluated here per element.

How it is made fast, on a machine without a vectorised math library (no SVML):

* ``log`` and ``exp`` are written as polynomials on the float's bit pattern (Cephes' ``logf`` and
  ``expf``, relative error below 1e-7), so LLVM vectorises them with the loop; float64 keeps
  libm's ``log``/``exp``.
* One 64-bit SplitMix64 hash gives two float32 elements their 24 bits each (its multiplies are
  the generator's cost); see :mod:`gumbel_softmax.backends._fused` for the stream.
* The row maximum is a maximum over integer keys (the float's bits made monotone), since numba's
  float ``max`` carries a NaN branch that stops vectorisation. The same pass counts NaN logits
  and the maximum tells all-masked rows, so ``validate_args`` costs no pass of its own.
* Large ``K``: one row at a time, in L1-sized blocks the noise then ``v = x + G`` and the
  maximum; then ``exp`` and the sum; then the scaling, the row staying in L1/L2. Small ``K``: a
  chunk of rows at a time, the noise, the addition and the ``exp`` as flat passes over the chunk,
  and the per-row reductions as passes over all rows of the chunk, so that vectors run *across*
  rows, never along a row of ten classes only.
* Rows (or chunks) are spread over ``torch.get_num_threads()`` threads by
  :mod:`gumbel_softmax.backends._parallel`: torch's own OpenMP threads, through C callbacks
  compiled here (``cfunc``), or else a pool of Python threads, the kernels releasing the GIL.
  Each row is computed by one thread in a fixed order, so results do not depend on the thread
  count or on the path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.extending import intrinsic, overload

from ._fused import GAMMA, MIX1, MIX2, Kernels
from ._parallel import HEAD as _HEAD
from ._parallel import launch, torch_openmp

# ``reassoc`` lets LLVM vectorise the sums; ``nnan`` and ``ninf`` are left out on purpose: -inf
# is a meaningful input (a mask) and NaN logits (unvalidated) must give NaN, not anything.
# Float max/min are written as selects: numba's ``max`` on floats has a NaN branch that stops
# vectorisation. ``error_model="numpy"``: division by zero gives inf/NaN, not an exception.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def _helper(fn: Callable[..., Any]) -> Any:
    """A jitted helper, compiled into the entry points that call it."""
    return njit(fastmath=_FASTMATH, cache=True, error_model="numpy")(fn)


def _entry(fn: Callable[..., Any]) -> Any:
    """A jitted entry point, called from Python; releases the GIL so that threads overlap."""
    return njit(fastmath=_FASTMATH, cache=True, error_model="numpy", nogil=True)(fn)


# K at and above which a row is processed on its own; below it, chunks of about _CHUNK elements.
_ROW_MIN = 256
_CHUNK = 4096
_BLOCK = 2048  # a long row is perturbed in blocks of this many elements, each staying in L1

_F32 = np.float32
_U64 = np.uint64
_GAMMA = _U64(GAMMA)
_MIX1 = _U64(MIX1)
_MIX2 = _U64(MIX2)
_S8, _S11, _S27, _S30, _S31, _S40 = (_U64(n) for n in (8, 11, 27, 30, 31, 40))
_M24 = _U64(0xFFFFFF)
_TINY32 = _F32(np.finfo(np.float32).tiny)
_TINY64 = np.finfo(np.float64).tiny
_LN2_HI = _F32(0.693359375)
_LN2_LO = _F32(-2.12194440e-4)
_LOG2E = _F32(1.44269504088896341)
_EXP_MIN = _F32(-87.33654)  # log(tiny): below it the result would be subnormal; we return 0


# --- bit casts ---------------------------------------------------------------------------------


def _bitcast(name: str, sources: tuple[Any, ...], target: Any, target_ir: Any) -> Any:
    """An intrinsic ``name(x)`` reading the bits of ``x`` (of a type in ``sources``) as a
    ``target``; an int64 read as a 32-bit type gives up its high half first.

    Typed ``Any``: numba compiles the calls, which mypy would check against the Python-side
    intrinsic object, whose signature includes the typing context.
    """

    def typer(typingctx: Any, x: Any) -> Any:
        if x not in sources:
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            v = args[0]
            if x == types.int64 and target.bitwidth == 32:
                v = builder.trunc(v, ir.IntType(32))
            return builder.bitcast(v, target_ir)

        return target(x), codegen

    typer.__name__ = typer.__qualname__ = name
    return intrinsic(typer)


_bits32 = _bitcast("_bits32", (types.float32,), types.int32, ir.IntType(32))
_float32 = _bitcast("_float32", (types.int32, types.int64), types.float32, ir.FloatType())
_bits64 = _bitcast("_bits64", (types.float64,), types.int64, ir.IntType(64))
_float64 = _bitcast("_float64", (types.int64,), types.float64, ir.DoubleType())


# --- float32 log and exp that vectorise ---------------------------------------------------------


@_helper
def _logf(x):  # type: ignore[no-untyped-def]
    """log(x) for positive normal float32 x (Cephes logf: x = 2^e m, m in [sqrt(1/2), sqrt(2)))."""
    i = np.int64(_bits32(x))
    e = (i - 0x3F3504F3) >> 23  # exponent, so that the mantissa lands around 1
    f = _float32(i - (e << 23)) - _F32(1.0)
    z = f * f
    p = _F32(7.0376836292e-2)
    p = p * f + _F32(-1.1514610310e-1)
    p = p * f + _F32(1.1676998740e-1)
    p = p * f + _F32(-1.2420140846e-1)
    p = p * f + _F32(1.4249322787e-1)
    p = p * f + _F32(-1.6668057665e-1)
    p = p * f + _F32(2.0000714765e-1)
    p = p * f + _F32(-2.4999993993e-1)
    p = p * f + _F32(3.3333331174e-1)
    fe = _F32(e)
    # ln 2 split in two so that e*ln2 is exact in its high part (Cody-Waite)
    return f + (f * z * p + fe * _LN2_LO - _F32(0.5) * z) + fe * _LN2_HI


@_helper
def _expf(x):  # type: ignore[no-untyped-def]
    """exp(x) for float32 x <= 0; exactly 0 below log(tiny), so exp(-inf) = 0 (masks); NaN stays."""
    xc = x if x > _EXP_MIN else _EXP_MIN
    n = np.floor(xc * _LOG2E + _F32(0.5))
    r = xc - n * _LN2_HI - n * _LN2_LO
    p = _F32(1.9875691500e-4)
    p = p * r + _F32(1.3981999507e-3)
    p = p * r + _F32(8.3334519073e-3)
    p = p * r + _F32(4.1665795894e-2)
    p = p * r + _F32(1.6666665459e-1)
    p = p * r + _F32(5.0000001201e-1)
    p = p * (r * r) + r + _F32(1.0)
    scale = _float32((np.int64(n) + 127) << 23)  # 2^n, n >= -126 after the clamp
    e = p * scale if x >= _EXP_MIN else _F32(0.0)
    return e if x == x else x


# --- per-dtype helpers, dispatched at compile time ----------------------------------------------


def _log(x):  # type: ignore[no-untyped-def]
    """log(x), vectorisable for float32."""


def _exp(x):  # type: ignore[no-untyped-def]
    """exp(x) for x <= 0, vectorisable for float32."""


def _key(v):  # type: ignore[no-untyped-def]
    """An integer whose order is the order of the (non-NaN) float ``v``."""


def _unkey(k):  # type: ignore[no-untyped-def]
    """The float whose key is ``k``."""


def _lowest_key(a):  # type: ignore[no-untyped-def]
    """The key of -inf in the dtype of array ``a``."""


def _fill_noise(v, seed, base):  # type: ignore[no-untyped-def]
    """v[i] = Gumbel noise number base + i of the stream ``seed``, in v's dtype."""


def _scalar(value, a):  # type: ignore[no-untyped-def]
    """``value`` in the dtype of array ``a``."""


def _tiny(a):  # type: ignore[no-untyped-def]
    """The smallest normal number of the dtype of array ``a``."""


@overload(_log, jit_options={"fastmath": _FASTMATH, "error_model": "numpy"})
def _log_impl(x):  # type: ignore[no-untyped-def]
    if x == types.float32:
        return lambda x: _logf(x)
    return lambda x: math.log(x)


@overload(_exp, jit_options={"fastmath": _FASTMATH, "error_model": "numpy"})
def _exp_impl(x):  # type: ignore[no-untyped-def]
    if x == types.float32:
        return lambda x: _expf(x)
    return lambda x: math.exp(x)


@overload(_key)
def _key_impl(v):  # type: ignore[no-untyped-def]
    # negative floats are ordered backwards by their bits: flip all but the sign bit
    if v == types.float32:

        def key32(v):  # type: ignore[no-untyped-def]
            i = np.int64(_bits32(v))
            return np.int32(i ^ ((i >> 31) & 0x7FFFFFFF))

        return key32

    def key64(v):  # type: ignore[no-untyped-def]
        i = _bits64(v)
        return i ^ ((i >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF))

    return key64


@overload(_unkey)
def _unkey_impl(k):  # type: ignore[no-untyped-def]
    if k == types.int32:

        def unkey32(k):  # type: ignore[no-untyped-def]
            i = np.int64(k)
            return _float32(i ^ ((i >> 31) & 0x7FFFFFFF))

        return unkey32

    def unkey64(k):  # type: ignore[no-untyped-def]
        return _float64(k ^ ((k >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF)))

    return unkey64


@overload(_lowest_key)
def _lowest_key_impl(a):  # type: ignore[no-untyped-def]
    if a.dtype == types.float32:
        low32 = _key_of(-np.inf, np.float32)
        return lambda a: np.int32(low32)
    low64 = _key_of(-np.inf, np.float64)
    return lambda a: np.int64(low64)


def _key_of(value: float, dtype: type) -> int:
    """The key of ``value`` computed in Python (used for the -inf constant)."""
    bits = int(np.array(value, dtype).view(np.int32 if dtype is np.float32 else np.int64))
    width = 32 if dtype is np.float32 else 64
    return bits ^ (((1 << (width - 1)) - 1) if bits < 0 else 0)


@overload(_scalar)
def _scalar_impl(value, a):  # type: ignore[no-untyped-def]
    if a.dtype == types.float32:
        return lambda value, a: np.float32(value)
    return lambda value, a: np.float64(value)


@overload(_tiny)
def _tiny_impl(a):  # type: ignore[no-untyped-def]
    if a.dtype == types.float32:
        return lambda a: _TINY32
    return lambda a: _TINY64


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


# --- the kernels' bodies ------------------------------------------------------------------------


# The helpers below take 1-D slices and index them from 0: with an index LLVM cannot prove
# non-negative, numba's negative-index wraparound turns vector loads into gathers.


@_helper
def _tau_at(inv_tau, r):  # type: ignore[no-untyped-def]
    """Row r's 1/tau: ``inv_tau`` holds one value per row, or one for all."""
    return inv_tau[r] if inv_tau.size > 1 else inv_tau[0]


@_helper
def _add_logits(x, v):  # type: ignore[no-untyped-def]
    """v += x; returns the key of max v and how many x are NaN or +inf (validation, no extra pass)."""
    mk = _lowest_key(x)
    nans = 0
    for i in range(x.size):
        xi = x[i]
        vi = xi + v[i]
        v[i] = vi
        mk = max(mk, _key(vi))
        nans += not (xi < np.inf)  # NaN or +inf, both refused by validate_args
    return mk, nans


@_helper
def _perturb(x, v, seed, base):  # type: ignore[no-untyped-def]
    """v = x + G_{base..}, in blocks that stay in L1; returns (key of max v, NaN or +inf count)."""
    mk = _lowest_key(x)
    nans = 0
    for b0 in range(0, x.size, _BLOCK):
        b1 = min(x.size, b0 + _BLOCK)
        _fill_noise(v[b0:b1], seed, base + b0)
        bk, bn = _add_logits(x[b0:b1], v[b0:b1])
        mk = max(mk, bk)
        nans += bn
    return mk, nans


@_helper
def _softmax_in_place(y, m, t):  # type: ignore[no-untyped-def]
    """y <- softmax((y - m) t), given m = max y."""
    s = _scalar(0.0, y)
    for k in range(y.size):
        e = _exp((y[k] - m) * t)
        y[k] = e
        s += e
    inv = _scalar(1.0, y) / s
    for k in range(y.size):
        y[k] *= inv


@_helper
def _first_argmax(v, m):  # type: ignore[no-untyped-def]
    """The first k with v[k] == m, given m = max v; as torch.argmax, a NaN counts as the
    maximum (unvalidated NaN logits), and the index is always in range. Min-reductions over
    indices, so that they vectorise."""
    n = v.size
    first_max = n
    first_nan = n
    for k in range(n):
        vk = v[k]
        first_max = min(first_max, k if vk == m else n)
        first_nan = min(first_nan, k if vk != vk else n)
    return first_nan if first_nan < n else min(first_max, n - 1)


@_helper
def _one_hot(out, idx, nan):  # type: ignore[no-untyped-def]
    """The one-hot of ``idx``, or NaN throughout if ``nan`` (as the reference gives for NaN)."""
    for k in range(out.size):
        out[k] = np.nan if nan else 0.0
    if not nan:
        out[idx] = 1.0


@_helper
def _long_row(x, t, seed, base, v, out, hard, want_soft):  # type: ignore[no-untyped-def]
    """One row of K >= _ROW_MIN classes: v <- x + G, then y (or the one-hot) in place.

    ``v`` is ``out`` except for ``hard`` with ``want_soft``, where ``y`` goes to ``v`` and the
    one-hot to ``out``.
    """
    mk, nans = _perturb(x, v, seed, base)
    m = _unkey(mk)
    if hard:
        idx = _first_argmax(v, m)
        nan = v[idx] != v[idx]
        if want_soft:
            _softmax_in_place(v, m, t)
        _one_hot(out, idx, nan)
    else:
        _softmax_in_place(v, m, t)
    return nans, 1 if (m == -np.inf and nans == 0) else 0


@_helper
def _short_rows(x, inv_tau, r0, seed, base, v, out, k_size, hard, want_soft):  # type: ignore[no-untyped-def]
    """A chunk of rows of K < _ROW_MIN classes (buffers as _long_row); returns (NaN count,
    all-masked rows). Vectors run across rows: the noise, the addition and the exp as flat
    passes over the chunk, and each per-row reduction as K passes over all rows (loop over k
    outside, rows inside, strided), so that a row of ten classes never runs alone."""
    _fill_noise(v, seed, base)
    nans = 0
    for i in range(v.size):
        xi = x[i]
        v[i] += xi
        nans += not (xi < np.inf)  # NaN or +inf, both refused by validate_args
    rows = x.size // k_size
    mk = np.full(rows, _lowest_key(x))
    for k in range(k_size):
        w = v[k:]
        for r in range(rows):
            mk[r] = max(mk[r], _key(w[r * k_size]))
    m = np.empty(rows, x.dtype)
    masked = 0
    for r in range(rows):
        m[r] = _unkey(mk[r])
        masked += m[r] == -np.inf  # a row with NaN too is reported as NaN first
    if hard:  # the first maximum; a NaN counts as the maximum, as in torch.argmax
        idx = np.full(rows, k_size)
        for k in range(k_size):
            w = v[k:]
            for r in range(rows):
                wk = w[r * k_size]
                idx[r] = min(idx[r], k if (wk == m[r] or wk != wk) else k_size)
        for r in range(rows):
            a = r * k_size
            i = a + idx[r]
            nan = True if idx[r] >= k_size else v[i] != v[i]
            for k in range(a, a + k_size):  # without want_soft, v is out: v is used up here
                out[k] = np.nan if nan else 0.0
            if not nan:
                out[i] = 1.0
        if not want_soft:
            return nans, masked
    t = np.empty(rows, x.dtype)
    for r in range(rows):
        t[r] = _tau_at(inv_tau, r0 + r)
    for k in range(k_size):
        w = v[k:]
        for r in range(rows):
            w[r * k_size] = (w[r * k_size] - m[r]) * t[r]
    for i in range(v.size):
        v[i] = _exp(v[i])
    s = np.zeros(rows, x.dtype)
    for k in range(k_size):
        w = v[k:]
        for r in range(rows):
            s[r] += w[r * k_size]
    for r in range(rows):
        s[r] = _scalar(1.0, v) / s[r]
    for k in range(k_size):
        w = v[k:]
        for r in range(rows):
            w[r * k_size] *= s[r]
    return nans, masked


@_helper
def _task_span(c, size, k_size):  # type: ignore[no-untyped-def]
    """Task ``c`` of ``size`` elements in rows of ``k_size``: one row when K >= _ROW_MIN, else
    a chunk of about _CHUNK elements of rows (see _tasks); its first row and element range."""
    step = 1 if k_size >= _ROW_MIN else max(1, _CHUNK // k_size)
    r0 = c * step
    r1 = min(size // k_size, r0 + step)
    return r0, r0 * k_size, r1 * k_size


@_helper
def _forward_task(c, x, inv_tau, seed, out, soft, k_size, hard, want_soft):  # type: ignore[no-untyped-def]
    """Task ``c`` of a forward (see _task_span)."""
    v = soft if (hard and want_soft) else out
    r0, lo, hi = _task_span(c, x.size, k_size)
    if k_size >= _ROW_MIN:
        return _long_row(
            x[lo:hi], _tau_at(inv_tau, r0), seed, lo, v[lo:hi], out[lo:hi], hard, want_soft
        )
    return _short_rows(
        x[lo:hi], inv_tau, r0, seed, lo, v[lo:hi], out[lo:hi], k_size, hard, want_soft
    )


def _tasks(rows: int, k_size: int) -> int:
    """How many independent tasks a forward or backward over ``rows`` rows of ``k_size`` classes splits into."""
    if k_size >= _ROW_MIN:
        return rows
    step = max(1, _CHUNK // k_size)
    return (rows + step - 1) // step


@_entry
def _forward(c0, c1, x, inv_tau, seed, out, soft, k_size, hard, want_soft):  # type: ignore[no-untyped-def]
    """Tasks c0 .. c1 - 1 of a forward; returns how many logits are NaN and how many rows have
    every class masked (the checks of ``validate_args``, made in passing)."""
    nans = 0
    masked = 0
    for c in range(c0, c1):
        n, m = _forward_task(c, x, inv_tau, seed, out, soft, k_size, hard, want_soft)
        nans += n
        masked += m
    return nans, masked


@_helper
def _backward_row(y, g, t, grad, want_tau):  # type: ignore[no-untyped-def]
    """grad = a t, with a = y (g - <g, y>) and t = 1/tau; returns -t sum_k a_k log y_k if
    ``want_tau`` (the temperature's gradient), else 0."""
    dot = _scalar(0.0, y)
    for k in range(y.size):
        dot += g[k] * y[k]
    acc = _scalar(0.0, y)
    if want_tau:  # a loop of its own, so that its summation order never depends on aliasing
        tiny = _tiny(y)
        for k in range(y.size):
            yk = y[k]
            # y = 0 gives a = 0: the term drops out; the clamp only keeps log finite there
            acc += yk * (g[k] - dot) * _log(yk if yk > tiny else tiny)
    for k in range(y.size):
        grad[k] = y[k] * (g[k] - dot) * t  # grad may be y: same index, read first
    return -acc * t


@_helper
def _backward_short_rows(y, g, inv_tau, r0, grad, grad_tau, k_size, want_tau):  # type: ignore[no-untyped-def]
    """_backward_row for a chunk of rows of K < _ROW_MIN classes, vectors running across rows
    (each per-row sum as K strided passes over all rows, in the order k = 0, 1, ...)."""
    rows = y.size // k_size
    dot = np.zeros(rows, y.dtype)
    for k in range(k_size):
        yk = y[k:]
        gk = g[k:]
        for r in range(rows):
            dot[r] += gk[r * k_size] * yk[r * k_size]
    t = np.empty(rows, y.dtype)
    for r in range(rows):
        t[r] = _tau_at(inv_tau, r0 + r)
    if want_tau:
        tiny = _tiny(y)
        acc = np.zeros(rows, y.dtype)
        for k in range(k_size):
            yk = y[k:]
            gk = g[k:]
            for r in range(rows):
                yi = yk[r * k_size]
                acc[r] += yi * (gk[r * k_size] - dot[r]) * _log(yi if yi > tiny else tiny)
        for r in range(rows):
            grad_tau[r0 + r] = -acc[r] * t[r]
    for k in range(k_size):
        yk = y[k:]
        gk = g[k:]
        ok = grad[k:]
        for r in range(rows):  # grad may be y: same index, read first
            ok[r * k_size] = yk[r * k_size] * (gk[r * k_size] - dot[r]) * t[r]


@_helper
def _backward_task(c, y, g, inv_tau, grad, grad_tau, k_size, want_tau):  # type: ignore[no-untyped-def]
    """Task ``c`` of a backward (see _task_span)."""
    r0, lo, hi = _task_span(c, y.size, k_size)
    if k_size >= _ROW_MIN:
        gt = _backward_row(y[lo:hi], g[lo:hi], _tau_at(inv_tau, r0), grad[lo:hi], want_tau)
        if want_tau:
            grad_tau[r0] = gt
    else:
        yc, gc, oc = y[lo:hi], g[lo:hi], grad[lo:hi]
        _backward_short_rows(yc, gc, inv_tau, r0, oc, grad_tau, k_size, want_tau)


@_entry
def _backward(c0, c1, y, g, inv_tau, grad, grad_tau, k_size, want_tau):  # type: ignore[no-untyped-def]
    """Tasks c0 .. c1 - 1 of a backward (rows, or chunks of short rows: see _tasks)."""
    for c in range(c0, c1):
        _backward_task(c, y, g, inv_tau, grad, grad_tau, k_size, want_tau)


@_entry
def _noise(c0, c1, seed, out):  # type: ignore[no-untyped-def]
    """Chunks c0 .. c1 - 1 (of _CHUNK elements) of the noise stream."""
    lo = c0 * _CHUNK
    _fill_noise(out[lo : min(out.size, c1 * _CHUNK)], seed, lo)


# --- entry points for torch's OpenMP threads ----------------------------------------------------
# C callbacks ``worker(slots)`` run by every thread of an OpenMP team (see _parallel.launch for
# the slots): each claims blocks of tasks until none is left and stores a block's two counts (the
# forward's NaN logits and all-masked rows) in the results array.


def _claim_typer(typingctx: Any, slots: Any) -> Any:
    """Atomically ``slots[0] += 1``, returning the value before (the block claimed)."""
    if not (isinstance(slots, types.Array) and slots.dtype == types.int64):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.atomic_rmw("add", data, ir.Constant(ir.IntType(64), 1), "monotonic")

    return types.int64(slots), codegen


_claim: Any = intrinsic(_claim_typer)  # Any: see _bitcast


def _pointer(name: str, dtype: Any, dtype_ir: Any) -> Any:
    """An intrinsic ``name(address)``: the int64 (or void pointer) ``address`` as a pointer to
    ``dtype``, for ``numba.carray``."""

    def typer(typingctx: Any, address: Any) -> Any:
        if address not in (types.int64, types.voidptr):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            if signature.args[0] == types.voidptr:
                return builder.bitcast(args[0], ir.PointerType(dtype_ir))
            return builder.inttoptr(args[0], ir.PointerType(dtype_ir))

        return types.CPointer(dtype)(address), codegen

    typer.__name__ = typer.__qualname__ = name
    return intrinsic(typer)


_i64_at = _pointer("_i64_at", types.int64, ir.IntType(64))
_f32_at = _pointer("_f32_at", types.float32, ir.FloatType())
_f64_at = _pointer("_f64_at", types.float64, ir.DoubleType())


@_helper
def _claim_blocks(s):  # type: ignore[no-untyped-def]
    """The next unclaimed block ``(b, c0, c1)``, ``b = -1`` once none is left."""
    b = _claim(s)
    if b >= s[1]:
        return -1, 0, 0
    return b, b * s[2], min(s[3], (b + 1) * s[2])


def _at(s, i, zero):  # type: ignore[no-untyped-def]
    """The array of slots ``s[i]`` (address) and ``s[i + 1]`` (size), of ``zero``'s dtype."""


@overload(_at)
def _at_impl(s, i, zero):  # type: ignore[no-untyped-def]
    if zero == types.float32:
        return lambda s, i, zero: carray(_f32_at(s[i]), s[i + 1])
    return lambda s, i, zero: carray(_f64_at(s[i]), s[i + 1])


@_helper
def _forward_blocks(s, zero):  # type: ignore[no-untyped-def]
    # slots after the head: x (2), inv_tau (2), seed, out (2), soft (2), K, hard, want_soft
    x, inv_tau, out, soft = _at(s, 8, zero), _at(s, 10, zero), _at(s, 13, zero), _at(s, 15, zero)
    results = carray(_i64_at(s[4]), 2 * s[1])
    while True:
        b, c0, c1 = _claim_blocks(s)
        if b < 0:
            return
        n, m = _forward(c0, c1, x, inv_tau, _U64(s[12]), out, soft, s[17], s[18] != 0, s[19] != 0)
        results[2 * b] = n
        results[2 * b + 1] = m


@_helper
def _backward_blocks(s, zero):  # type: ignore[no-untyped-def]
    # slots after the head: y, g, inv_tau, grad, grad_tau (2 each), K, want_tau
    y, g, inv_tau = _at(s, 8, zero), _at(s, 10, zero), _at(s, 12, zero)
    grad, grad_tau = _at(s, 14, zero), _at(s, 16, zero)
    while True:
        b, c0, c1 = _claim_blocks(s)
        if b < 0:
            return
        _backward(c0, c1, y, g, inv_tau, grad, grad_tau, s[18], s[19] != 0)


@_helper
def _noise_blocks(s, zero):  # type: ignore[no-untyped-def]
    # slots after the head: seed, out (2)
    out = _at(s, 9, zero)
    while True:
        b, c0, c1 = _claim_blocks(s)
        if b < 0:
            return
        _noise(c0, c1, _U64(s[8]), out)


@_helper
def _blocks(s, zero):  # type: ignore[no-untyped-def]
    """Run the kernel slot 6 names (its index in _KERNELS) in ``zero``'s dtype."""
    if s[6] == 0:
        _forward_blocks(s, zero)
    elif s[6] == 1:
        _backward_blocks(s, zero)
    else:
        _noise_blocks(s, zero)


def _blocks_worker(data):  # type: ignore[no-untyped-def]
    """The C callback: ``data`` points at the slots, whose float width picks the variant."""
    s = carray(_i64_at(data), carray(_i64_at(data), _HEAD)[7])
    if s[5] == 32:
        _blocks(s, _F32(0))
    else:
        _blocks(s, np.float64(0))


_worker: list[int | None] = []


def _worker_address() -> int | None:
    """The address of _blocks_worker compiled as a C callback (once, on first use; cached on
    disk by numba), or None if it does not compile: then the kernels run on a thread pool."""
    if not _worker:
        try:
            compiled = cfunc(types.void(types.voidptr), cache=True, error_model="numpy")(
                _blocks_worker
            )
            _worker.append(compiled.address)
        except Exception:  # a numba or LLVM failure: the pool path needs no C callback
            _worker.append(None)
    return _worker[0]


# The kernels as the C callback names them (slot 6).
_KERNELS = (_forward, _backward, _noise)


# --- the Python side ----------------------------------------------------------------------------


def _flat(t: torch.Tensor) -> np.ndarray:
    """The numpy view of contiguous CPU tensor ``t``, flat (``force``: also under autograd)."""
    return t.numpy(force=True).reshape(-1)


def _seed(seed: torch.Tensor) -> np.uint64:
    """The one-element int64 seed tensor's bits as numba's uint64 (no ``item()``: slower)."""
    return seed.numpy()[0].view(np.uint64)  # type: ignore[no-any-return]


class NumbaKernels(Kernels):
    """The numba kernels behind the :class:`~gumbel_softmax.backends._fused.Kernels` interface."""

    name = "numba"
    checks_input = True

    def __init__(self) -> None:
        self._prepared: dict[torch.dtype, Exception | None] = {}

    def supports(self, device: torch.device) -> bool:
        return device.type == "cpu"

    def prepare(self, dtype: torch.dtype) -> None:
        """Compile (or load from numba's disk cache) the three entry points for ``dtype`` by
        calling them on a few elements, so that a compilation failure surfaces here, where the
        automatic choice can still fall back to the reference path."""
        if dtype not in self._prepared:
            try:
                a = np.zeros(20, {torch.float32: np.float32, torch.float64: np.float64}[dtype])
                one = a[:1] + 1
                _forward(0, 1, a, one, _U64(0), a.copy(), a.copy(), 10, True, True)
                _backward(0, 2, a, a, one, a.copy(), a[:2].copy(), 10, True)
                _noise(0, 1, _U64(0), a.copy())
                if torch_openmp() is not None:  # the C callback too; None (pool) if it fails
                    _worker_address()
                self._prepared[dtype] = None
            except Exception as exc:  # a numba or LLVM failure: this dtype is not served
                self._prepared[dtype] = exc
        failure = self._prepared[dtype]
        if failure is not None:
            raise failure

    def forward(self, x, inv_tau, seed, out, soft, hard):  # type: ignore[no-untyped-def]
        rows, k_size = x.shape
        want_soft = soft is not None
        soft_arr = _flat(soft if soft is not None else out)
        args = (
            _flat(x),
            _flat(inv_tau),
            _seed(seed),
            _flat(out),
            soft_arr,
            k_size,
            hard,
            want_soft,
        )
        counts = launch(_KERNELS, 0, _worker_address, x.numel(), _tasks(rows, k_size), *args)
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    def backward(self, y, g, inv_tau, grad, grad_tau):  # type: ignore[no-untyped-def]
        rows, k_size = y.shape
        want_tau = grad_tau is not None
        tau_arr = _flat(grad_tau) if grad_tau is not None else np.empty(0, _flat(y).dtype)
        args = (_flat(y), _flat(g), _flat(inv_tau), _flat(grad), tau_arr, k_size, want_tau)
        launch(_KERNELS, 1, _worker_address, y.numel(), _tasks(rows, k_size), *args)

    def noise(self, seed, out):  # type: ignore[no-untyped-def]
        n = out.numel()
        launch(_KERNELS, 2, _worker_address, n, (n + _CHUNK - 1) // _CHUNK, _seed(seed), _flat(out))
