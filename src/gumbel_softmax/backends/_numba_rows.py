"""numba backend, the kernels: forward and backward over rows (one long row, or a chunk of short
rows, per task), and their entry points, called from Python threads or from the C callback of
:mod:`._numba_openmp`."""

from __future__ import annotations

import numpy as np

from ._numba_math import (
    _entry,
    _exp,
    _helper,
    _key,
    _log,
    _lowest_key,
    _scalar,
    _tiny,
    _unkey,
    _wide_vectors,
)
from ._numba_noise import _fill_noise

# K at and above which a row is processed on its own; below it, chunks of about _CHUNK elements.
_ROW_MIN = 256
_CHUNK = 4096
_BLOCK = 2048  # a long row is perturbed in blocks of this many elements, each staying in L1

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
    _wide_vectors()
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
    _wide_vectors()
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
    _wide_vectors()
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
    _wide_vectors()
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
    _wide_vectors()
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
    all-masked rows). Vectors run across rows, never along a row of ten classes only: the
    noise and the addition as flat passes over the chunk; then the chunk is transposed once
    into ``c`` (``c[k * rows + r] = v[r * K + k]``), so that every per-row reduction is K
    contiguous passes over all rows (in the order k = 0, 1, ...), and the result is written
    back once. Strided access, which vectorises as gathers and scatters, is thus one read and
    one write per element instead of one per pass."""
    _wide_vectors()
    _fill_noise(v, seed, base)
    nans = 0
    for i in range(v.size):
        xi = x[i]
        v[i] += xi
        nans += not (xi < np.inf)  # NaN or +inf, both refused by validate_args
    rows = x.size // k_size
    c = np.empty(v.size, x.dtype)
    for k in range(k_size):
        w = v[k:]
        ck = c[k * rows : (k + 1) * rows]
        for r in range(rows):
            ck[r] = w[r * k_size]
    mk = np.full(rows, _lowest_key(x))
    for k in range(k_size):
        ck = c[k * rows : (k + 1) * rows]
        for r in range(rows):
            mk[r] = max(mk[r], _key(ck[r]))
    m = np.empty(rows, x.dtype)
    masked = 0
    for r in range(rows):
        m[r] = _unkey(mk[r])
        masked += m[r] == -np.inf  # a row with NaN too is reported as NaN first
    if hard:  # the first maximum; a NaN counts as the maximum, as in torch.argmax
        idx = np.full(rows, k_size)
        for k in range(k_size):
            ck = c[k * rows : (k + 1) * rows]
            for r in range(rows):
                ck_r = ck[r]
                idx[r] = min(idx[r], k if (ck_r == m[r] or ck_r != ck_r) else k_size)
        for i in range(out.size):  # without want_soft, v is out: only c is read from here
            out[i] = 0.0
        for r in range(rows):
            a, j = r * k_size, idx[r]
            if j >= k_size or c[j * rows + r] != c[j * rows + r]:  # NaN: the row is NaN
                for k in range(a, a + k_size):
                    out[k] = np.nan
            else:
                out[a + j] = 1.0
        if not want_soft:
            return nans, masked
    t = np.empty(rows, x.dtype)
    for r in range(rows):
        t[r] = _tau_at(inv_tau, r0 + r)
    for k in range(k_size):
        ck = c[k * rows : (k + 1) * rows]
        for r in range(rows):
            ck[r] = (ck[r] - m[r]) * t[r]
    for i in range(c.size):
        c[i] = _exp(c[i])
    s = np.zeros(rows, x.dtype)
    for k in range(k_size):
        ck = c[k * rows : (k + 1) * rows]
        for r in range(rows):
            s[r] += ck[r]
    for r in range(rows):
        s[r] = _scalar(1.0, v) / s[r]
    for k in range(k_size):
        w = v[k:]
        ck = c[k * rows : (k + 1) * rows]
        for r in range(rows):
            w[r * k_size] = ck[r] * s[r]
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
    _wide_vectors()
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
    _wide_vectors()
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
    _wide_vectors()
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
    _wide_vectors()
    for c in range(c0, c1):
        _backward_task(c, y, g, inv_tau, grad, grad_tau, k_size, want_tau)


@_entry
def _noise(c0, c1, seed, out):  # type: ignore[no-untyped-def]
    """Chunks c0 .. c1 - 1 (of _CHUNK elements) of the noise stream."""
    _wide_vectors()
    lo = c0 * _CHUNK
    _fill_noise(out[lo : min(out.size, c1 * _CHUNK)], seed, lo)


# The entry points, as the C callback names them (slot WHICH).
KERNELS = (_forward, _backward, _noise)
