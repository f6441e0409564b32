r"""The ``triton`` backend: fused Gumbel-Softmax kernels for CUDA tensors.

Imported lazily by :mod:`gumbel_softmax.backends`; importing it imports triton. Under Triton's
interpreter (``TRITON_INTERPRET=1`` set before this module is imported) the same kernels run on
CPU tensors, which is how they are tested on machines without a GPU.

One program handles a tile of ``ROWS x BLOCK`` elements: many rows of a short ``K`` at once
(vectorised across rows), or one row of a long ``K`` in blocks of ``BLOCK``. A row that fits one
block is read once and written once. A longer row takes two sweeps: the first keeps the running
maximum :math:`m` and the running sum :math:`s = \sum_k e^{(v_k - m)t}` (online softmax, the
sum rescaled by :math:`e^{(m_\text{old} - m_\text{new})t}` when the maximum grows), the second
regenerates the noise from its counters (cheaper than storing it) and writes
:math:`y_k = e^{(v_k - m)t} / s`. The noise is the same SplitMix64 stream as the numba backend's,
element for element (see :mod:`gumbel_softmax.backends._fused`); the float32 ``log`` is the same
Cephes polynomial, so that the noise's upper tail (:math:`U \to 1`, where ``log U`` is tiny) keeps
its relative accuracy rather than depending on an approximate hardware logarithm.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._fused import GAMMA, LN2_HI, LN2_LO, LOGF_P, MIX1, MIX2, Kernels

try:  # whether @triton.jit below builds interpreted functions (CPU tensors) or GPU kernels
    _INTERPRETED = bool(triton.knobs.runtime.interpret)
except AttributeError:  # Triton before 3.4 reads the variable itself
    _INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"

# Elements per program: a row of up to _TILE classes is read once; the interpreter, which runs
# on the CPU, is faster with smaller tiles.
_TILE = 4096 if _INTERPRETED else 8192
_GAMMA = tl.constexpr(GAMMA)
_MIX1 = tl.constexpr(MIX1)
_MIX2 = tl.constexpr(MIX2)
_LN2_HI = tl.constexpr(LN2_HI)
_LN2_LO = tl.constexpr(LN2_LO)
# LOGF_P, one constexpr each (Triton reads globals only as constexpr)
_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7, _P8 = (tl.constexpr(c) for c in LOGF_P)


@triton.jit
def _log32(x):
    """log(x) for positive normal float32 x: Cephes logf, as in the numba backend."""
    i = x.to(tl.int32, bitcast=True)
    e = (i - 0x3F3504F3) >> 23
    f = (i - (e << 23)).to(tl.float32, bitcast=True) - 1.0
    z = f * f
    p = f * _P0 + _P1  # LOGF_P by Horner's rule
    p = p * f + _P2
    p = p * f + _P3
    p = p * f + _P4
    p = p * f + _P5
    p = p * f + _P6
    p = p * f + _P7
    p = p * f + _P8
    fe = e.to(tl.float32)
    return f + (f * z * p + fe * _LN2_LO - 0.5 * z) + fe * _LN2_HI


@triton.jit
def _log(x, F64: tl.constexpr):
    if F64:
        return tl.log(x)
    else:
        return _log32(x)


@triton.jit
def _mix(counter):
    """SplitMix64's finaliser."""
    z = counter
    z = (z ^ (z >> 30)) * _MIX1
    z = (z ^ (z >> 27)) * _MIX2
    return z ^ (z >> 31)


@triton.jit
def _gumbel(seed, idx, F64: tl.constexpr):
    """Gumbel noise numbers ``idx`` (int64, >= 0) of the stream ``seed`` (uint64)."""
    if F64:  # 53 bits of hash number idx
        z = _mix(seed + (idx.to(tl.uint64) + 1) * _GAMMA)
        u = tl.maximum(
            (z >> 11).to(tl.int64).to(tl.float64) * 1.1102230246251565e-16, 2.2250738585072014e-308
        )
    else:  # 24 bits of hash number idx >> 1: its high half for even idx, its low half for odd
        z = _mix(seed + ((idx >> 1).to(tl.uint64) + 1) * _GAMMA)
        bits = tl.where((idx & 1) == 1, (z >> 8) & 0xFFFFFF, z >> 40)
        u = tl.maximum(
            bits.to(tl.int32).to(tl.float32) * 5.9604644775390625e-08, 1.1754943508222875e-38
        )
    return -_log(-_log(u, F64), F64)


@triton.jit
def _tile(k0, cols, rmask, base, K):
    """Mask and flat offsets of the block of columns k0 + cols of the tile's rows."""
    c = k0 + cols
    return rmask[:, None] & (c < K)[None, :], base[:, None] + c[None, :]


@triton.jit
def _perturbed(x_ptr, seed, offs, mask, F64: tl.constexpr):
    """v = x + G on the tile, -inf outside it."""
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    return tl.where(mask, x + _gumbel(seed, offs, F64), float("-inf"))


@triton.jit
def _forward_kernel(
    x_ptr,
    inv_tau_ptr,
    seed_ptr,
    out_ptr,
    y_ptr,
    R,
    K,
    TAU_STRIDE,
    HARD: tl.constexpr,
    WANT_SOFT: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE: tl.constexpr,
    F64: tl.constexpr,
):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    rmask = rows < R
    base = rows.to(tl.int64) * K
    cols = tl.arange(0, BLOCK)
    seed = tl.load(seed_ptr).to(tl.uint64, bitcast=True)
    t = tl.load(inv_tau_ptr + rows * TAU_STRIDE, mask=rmask, other=1.0)
    if SINGLE:
        mask, offs = _tile(0, cols, rmask, base, K)
        v = _perturbed(x_ptr, seed, offs, mask, F64)
        m = tl.max(v, axis=1)
        m = tl.where(m == float("-inf"), 0.0, m)[:, None]  # rows past R: keep v - m a number
        if HARD:
            idx = tl.argmax(v, axis=1, tie_break_left=True)[:, None]
            nan = tl.max(tl.where(v != v, 1, 0), axis=1)[:, None] > 0  # NaN row: NaN, as reference
            hot = tl.where(cols[None, :] == idx, 1.0, 0.0)
            tl.store(out_ptr + offs, tl.where(nan, float("nan"), hot), mask=mask)
        if WANT_SOFT or not HARD:
            e = tl.exp((v - m) * t[:, None])
            s = tl.where(rmask, tl.sum(e, axis=1), 1.0)  # rows past R: keep e / s a number
            tl.store(y_ptr + offs, e / s[:, None], mask=mask)
    else:
        m = tl.full([ROWS], float("-inf"), x_ptr.dtype.element_ty)
        s = tl.zeros([ROWS], x_ptr.dtype.element_ty)
        idx = tl.zeros([ROWS], tl.int32)
        nan = tl.zeros([ROWS], tl.int32)
        for k0 in range(0, K, BLOCK):
            mask, offs = _tile(k0, cols, rmask, base, K)
            v = _perturbed(x_ptr, seed, offs, mask, F64)
            bm = tl.max(v, axis=1)
            if HARD:
                bi = tl.argmax(v, axis=1, tie_break_left=True) + k0
                idx = tl.where(bm > m, bi, idx)  # strict: the first maximum wins
                nan = tl.maximum(nan, tl.max(tl.where(v != v, 1, 0), axis=1))
            nm = tl.maximum(m, bm)
            if WANT_SOFT or not HARD:
                # nm = -inf only while every class so far is masked; keep exp's argument a number
                safe = tl.where(nm == float("-inf"), 0.0, nm)
                alpha = tl.where(m == nm, 1.0, tl.exp((m - safe) * t))
                s = s * alpha + tl.sum(tl.exp((v - safe[:, None]) * t[:, None]), axis=1)
            m = nm
        m = tl.where(m == float("-inf"), 0.0, m)
        for k0 in range(0, K, BLOCK):
            mask, offs = _tile(k0, cols, rmask, base, K)
            if HARD:
                hot = tl.where(k0 + cols[None, :] == idx[:, None], 1.0, 0.0)
                tl.store(out_ptr + offs, tl.where(nan[:, None] > 0, float("nan"), hot), mask=mask)
            if WANT_SOFT or not HARD:
                v = _perturbed(x_ptr, seed, offs, mask, F64)
                e = tl.exp((v - m[:, None]) * t[:, None])
                tl.store(y_ptr + offs, e / s[:, None], mask=mask)


@triton.jit
def _backward_kernel(
    y_ptr,
    g_ptr,
    inv_tau_ptr,
    grad_ptr,
    grad_tau_ptr,
    R,
    K,
    TAU_STRIDE,
    WANT_TAU: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE: tl.constexpr,
    F64: tl.constexpr,
):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    rmask = rows < R
    base = rows.to(tl.int64) * K
    cols = tl.arange(0, BLOCK)
    t = tl.load(inv_tau_ptr + rows * TAU_STRIDE, mask=rmask, other=1.0)
    if F64:
        tiny = 2.2250738585072014e-308
    else:
        tiny = 1.1754943508222875e-38
    if SINGLE:
        mask, offs = _tile(0, cols, rmask, base, K)
        y = tl.load(y_ptr + offs, mask=mask, other=0.0)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0)
        a = y * (g - tl.sum(g * y, axis=1)[:, None])
        tl.store(grad_ptr + offs, a * t[:, None], mask=mask)  # grad may be y: loaded above
        if WANT_TAU:
            # y = 0 gives a = 0: the term drops out; the clamp only keeps log finite there
            acc = tl.sum(a * _log(tl.maximum(y, tiny), F64), axis=1)
            tl.store(grad_tau_ptr + rows, -acc * t, mask=rmask)
    else:
        dot = tl.zeros([ROWS], y_ptr.dtype.element_ty)
        for k0 in range(0, K, BLOCK):
            mask, offs = _tile(k0, cols, rmask, base, K)
            y = tl.load(y_ptr + offs, mask=mask, other=0.0)
            dot += tl.sum(tl.load(g_ptr + offs, mask=mask, other=0.0) * y, axis=1)
        acc = tl.zeros([ROWS], y_ptr.dtype.element_ty)
        for k0 in range(0, K, BLOCK):
            mask, offs = _tile(k0, cols, rmask, base, K)
            y = tl.load(y_ptr + offs, mask=mask, other=0.0)
            a = y * (tl.load(g_ptr + offs, mask=mask, other=0.0) - dot[:, None])
            tl.store(grad_ptr + offs, a * t[:, None], mask=mask)
            if WANT_TAU:
                acc += tl.sum(a * _log(tl.maximum(y, tiny), F64), axis=1)
        if WANT_TAU:
            tl.store(grad_tau_ptr + rows, -acc * t, mask=rmask)


@triton.jit
def _noise_kernel(seed_ptr, out_ptr, N, BLOCK: tl.constexpr, F64: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    seed = tl.load(seed_ptr).to(tl.uint64, bitcast=True)
    tl.store(out_ptr + offs, _gumbel(seed, offs, F64), mask=offs < N)


def _tiles(rows: int, k_size: int) -> tuple[int, int, bool, tuple[int], int]:
    """(ROWS, BLOCK, SINGLE, grid, num_warps): whole short rows stacked into a tile, long rows
    in blocks."""
    block = min(triton.next_power_of_2(k_size), _TILE)
    single = k_size <= block
    per = max(1, min(triton.next_power_of_2(rows), _TILE // block)) if single else 1
    return per, block, single, (triton.cdiv(rows, per),), 8 if per * block >= 8192 else 4


class TritonKernels(Kernels):
    """The Triton kernels behind the :class:`~gumbel_softmax.backends._fused.Kernels` interface."""

    name = "triton"

    def __init__(self) -> None:
        if not _INTERPRETED and not torch.cuda.is_available():
            raise RuntimeError("no CUDA device, and TRITON_INTERPRET=1 was not set")

    def supports(self, device: torch.device) -> bool:
        return device.type == ("cpu" if _INTERPRETED else "cuda")

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        inv_tau: Tensor,
        seed: Tensor,
        out: Tensor,
        soft: Tensor | None,
        hard: bool,
    ) -> tuple[int, int]:
        rows, k_size = x.shape
        per, block, single, grid, warps = _tiles(rows, k_size)
        _forward_kernel[grid](
            x,
            inv_tau,
            seed.to(x.device),
            out,
            soft if soft is not None else out,
            rows,
            k_size,
            int(inv_tau.numel() > 1),
            HARD=hard,
            WANT_SOFT=soft is not None,
            ROWS=per,
            BLOCK=block,
            SINGLE=single,
            F64=x.dtype == torch.float64,
            num_warps=warps,
        )
        return 0, 0  # the driver validates beforehand (checks_input is False)

    def backward(  # type: ignore[override]
        self, y: Tensor, g: Tensor, inv_tau: Tensor, grad: Tensor, grad_tau: Tensor | None
    ) -> None:
        rows, k_size = y.shape
        per, block, single, grid, warps = _tiles(rows, k_size)
        _backward_kernel[grid](
            y,
            g,
            inv_tau,
            grad,
            grad_tau if grad_tau is not None else inv_tau,
            rows,
            k_size,
            int(inv_tau.numel() > 1),
            WANT_TAU=grad_tau is not None,
            ROWS=per,
            BLOCK=block,
            SINGLE=single,
            F64=y.dtype == torch.float64,
            num_warps=warps,
        )

    def noise(self, seed: Tensor, out: Tensor) -> None:  # type: ignore[override]
        n = out.numel()
        _noise_kernel[(triton.cdiv(n, _TILE),)](
            seed.to(out.device), out, n, BLOCK=_TILE, F64=out.dtype == torch.float64
        )
