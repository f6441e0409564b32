"""numba backend, the arithmetic: compile options, bit casts, and a float32 ``log``/``exp`` that
LLVM vectorises (Cephes' polynomials, whose coefficients :mod:`._fused` holds for both fused
backends), with the per-dtype helpers the kernels dispatch on at compile time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from ._fused import EXPF_Q, LN2_HI, LN2_LO, LOGF_P

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


_F32 = np.float32
_TINY32 = _F32(np.finfo(np.float32).tiny)
_TINY64 = np.finfo(np.float64).tiny
_LN2_HI = _F32(LN2_HI)
_LN2_LO = _F32(LN2_LO)
# the polynomials' coefficients as float32 constants (numba folds module globals into the code)
_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7, _P8 = (_F32(c) for c in LOGF_P)
_Q0, _Q1, _Q2, _Q3, _Q4, _Q5 = (_F32(c) for c in EXPF_Q)
_LOG2E = _F32(1.44269504088896341)
_EXP_MIN = _F32(-87.33654)  # log(tiny): below it the result would be subnormal; we return 0


# --- vector width ------------------------------------------------------------------------------

# LLVM's tuning for Intel CPUs with AVX-512 (Skylake-X to Emerald Rapids) prefers 256-bit vectors
# ("prefer-256-bit": wide instructions once cost clock speed). These loops are compute-bound and
# run faster with 512-bit ones (measured: docs/backends.md, "Vector width"), so
# every kernel function with a loop asks for them with the function attribute clang's
# -mprefer-vector-width=512 sets. Where AVX-512 is absent the widest legal vector is used instead.
_PREFER_512 = '"prefer-vector-width"="512"'


def _wide_vectors_typer(typingctx: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        # llvmlite's FunctionAttributes validates enum attributes only; a string attribute is
        # written into the IR as it is, so it goes into the underlying set directly.
        set.add(builder.function.attributes, _PREFER_512)
        return context.get_dummy_value()

    return types.none(), codegen


_wide_vectors_typer.__name__ = _wide_vectors_typer.__qualname__ = "_wide_vectors"
# ``_wide_vectors()``, in a jitted function: vectorise its loops 512 bits wide where the CPU can
# (a function attribute; no code). Typed ``Any`` as the bit casts below are.
_wide_vectors: Any = intrinsic(_wide_vectors_typer)


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
    p = _P0 * f + _P1  # LOGF_P by Horner's rule
    p = p * f + _P2
    p = p * f + _P3
    p = p * f + _P4
    p = p * f + _P5
    p = p * f + _P6
    p = p * f + _P7
    p = p * f + _P8
    fe = _F32(e)
    # ln 2 split in two so that e*ln2 is exact in its high part (Cody-Waite)
    return f + (f * z * p + fe * _LN2_LO - _F32(0.5) * z) + fe * _LN2_HI


@_helper
def _expf(x):  # type: ignore[no-untyped-def]
    """exp(x) for float32 x <= 0; exactly 0 below log(tiny), so exp(-inf) = 0 (masks); NaN stays."""
    xc = x if x > _EXP_MIN else _EXP_MIN
    n = np.floor(xc * _LOG2E + _F32(0.5))
    r = xc - n * _LN2_HI - n * _LN2_LO
    p = _Q0 * r + _Q1  # EXPF_Q by Horner's rule
    p = p * r + _Q2
    p = p * r + _Q3
    p = p * r + _Q4
    p = p * r + _Q5
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
