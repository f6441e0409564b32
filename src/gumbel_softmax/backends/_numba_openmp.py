"""numba backend, the C callback run by torch's OpenMP threads (see :mod:`._parallel`, which is
experimental): the kernels' arguments read from an array of int64 slots, by name
(:func:`._parallel.slot_layout`)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, types
from numba.extending import intrinsic, overload

from . import _parallel as _slot
from ._numba_math import _F32, _helper, _wide_vectors
from ._numba_noise import _U64
from ._numba_rows import _backward, _forward, _noise
from ._parallel import ARRAY, SCALAR, slot_layout

# --- entry points for torch's OpenMP threads ----------------------------------------------------
# C callbacks ``worker(slots)`` run by every thread of an OpenMP team (see _parallel.launch for
# the slots): each claims blocks of tasks until none is left and stores a block's two counts (the
# forward's NaN logits and all-masked rows) in the results array.


def _claim_typer(typingctx: Any, slots: Any) -> Any:
    """Atomically ``slots[NEXT] += 1`` (NEXT is slot 0, where the array starts), returning the
    value before (the block claimed)."""
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
    if b >= s[_BLOCKS]:
        return -1, 0, 0
    return b, b * s[_PER_BLOCK], min(s[_TASKS], (b + 1) * s[_PER_BLOCK])


def _at(s, i, zero):  # type: ignore[no-untyped-def]
    """The array of slots ``s[i]`` (address) and ``s[i + 1]`` (size), of ``zero``'s dtype."""


@overload(_at)
def _at_impl(s, i, zero):  # type: ignore[no-untyped-def]
    if zero == types.float32:
        return lambda s, i, zero: carray(_f32_at(s[i]), s[i + 1])
    return lambda s, i, zero: carray(_f64_at(s[i]), s[i + 1])


# Each kernel's arguments as the C worker reads them, by name: the Python side (NumbaKernels)
# passes them in this order, and the workers below read each at its named slot.
FORWARD_ARGS = (
    ("x", ARRAY),
    ("inv_tau", ARRAY),
    ("seed", SCALAR),
    ("out", ARRAY),
    ("soft", ARRAY),
    ("k_size", SCALAR),
    ("hard", SCALAR),
    ("want_soft", SCALAR),
)
BACKWARD_ARGS = (
    ("y", ARRAY),
    ("g", ARRAY),
    ("inv_tau", ARRAY),
    ("grad", ARRAY),
    ("grad_tau", ARRAY),
    ("k_size", SCALAR),
    ("want_tau", SCALAR),
)
NOISE_ARGS = (("seed", SCALAR), ("out", ARRAY))
_F = slot_layout(*FORWARD_ARGS)
_B = slot_layout(*BACKWARD_ARGS)
_N = slot_layout(*NOISE_ARGS)
# as plain module constants, which numba folds into the compiled workers
_F_X, _F_TAU, _F_SEED, _F_OUT, _F_SOFT, _F_K, _F_HARD, _F_WANT = _F.values()
_B_Y, _B_G, _B_TAU, _B_GRAD, _B_GRAD_TAU, _B_K, _B_WANT = _B.values()
_N_SEED, _N_OUT = _N.values()
_BLOCKS, _PER_BLOCK, _TASKS = _slot.BLOCKS, _slot.PER_BLOCK, _slot.TASKS
_RESULTS, _WIDTH, _WHICH, _COUNT = _slot.RESULTS, _slot.WIDTH, _slot.WHICH, _slot.COUNT


@functools.cache
def _names(layout: tuple[tuple[str, int], ...]) -> tuple[str, ...]:
    return tuple(name for name, _ in layout)


def _ordered(layout: tuple[tuple[str, int], ...], **args: Any) -> tuple[Any, ...]:
    """The keyword ``args``, which must name the arguments of ``layout`` in its order."""
    if tuple(args) != _names(layout):
        raise AssertionError(f"kernel arguments {list(args)} do not match {layout}")
    return tuple(args.values())


@_helper
def _forward_blocks(s, zero):  # type: ignore[no-untyped-def]
    _wide_vectors()  # as the kernels it calls, so that inlining them changes nothing
    x, inv_tau = _at(s, _F_X, zero), _at(s, _F_TAU, zero)
    out, soft = _at(s, _F_OUT, zero), _at(s, _F_SOFT, zero)
    results = carray(_i64_at(s[_RESULTS]), 2 * s[_BLOCKS])
    seed, k_size, hard, want = _U64(s[_F_SEED]), s[_F_K], s[_F_HARD] != 0, s[_F_WANT] != 0
    while True:
        b, c0, c1 = _claim_blocks(s)
        if b < 0:
            return
        n, m = _forward(c0, c1, x, inv_tau, seed, out, soft, k_size, hard, want)
        results[2 * b] = n
        results[2 * b + 1] = m


@_helper
def _backward_blocks(s, zero):  # type: ignore[no-untyped-def]
    _wide_vectors()  # as the kernels it calls, so that inlining them changes nothing
    y, g, inv_tau = _at(s, _B_Y, zero), _at(s, _B_G, zero), _at(s, _B_TAU, zero)
    grad, grad_tau = _at(s, _B_GRAD, zero), _at(s, _B_GRAD_TAU, zero)
    while True:
        b, c0, c1 = _claim_blocks(s)
        if b < 0:
            return
        _backward(c0, c1, y, g, inv_tau, grad, grad_tau, s[_B_K], s[_B_WANT] != 0)


@_helper
def _noise_blocks(s, zero):  # type: ignore[no-untyped-def]
    _wide_vectors()  # as the kernels it calls, so that inlining them changes nothing
    out = _at(s, _N_OUT, zero)
    while True:
        b, c0, c1 = _claim_blocks(s)
        if b < 0:
            return
        _noise(c0, c1, _U64(s[_N_SEED]), out)


@_helper
def _blocks(s, zero):  # type: ignore[no-untyped-def]
    """Run the kernel the WHICH slot names (its index in _KERNELS) in ``zero``'s dtype."""
    _wide_vectors()
    if s[_WHICH] == 0:
        _forward_blocks(s, zero)
    elif s[_WHICH] == 1:
        _backward_blocks(s, zero)
    else:
        _noise_blocks(s, zero)


def _blocks_worker(data):  # type: ignore[no-untyped-def]
    """The C callback: ``data`` points at the slots, whose float width picks the variant."""
    _wide_vectors()
    s = carray(_i64_at(data), carray(_i64_at(data), _slot.HEAD)[_COUNT])
    if s[_WIDTH] == 32:
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
