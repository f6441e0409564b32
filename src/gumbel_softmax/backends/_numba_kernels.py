r"""The ``numba`` backend: fused Gumbel-Softmax kernels for CPU tensors.

This module is its Python side (:class:`NumbaKernels`); the code is split by what it does:

============================ ===========================================================
``_numba_math.py``           compile options, bit casts, the vectorising float32 ``log``/``exp``
``_numba_noise.py``          SplitMix64 and the Gumbel noise drawn from it
``_numba_rows.py``           the forward and backward over rows, and their entry points
``_numba_openmp.py``         the C callback for torch's OpenMP threads (experimental)
============================ ===========================================================

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
* Every kernel function asks LLVM for 512-bit vectors (``_numba_math._wide_vectors``): on Intel
  CPUs with AVX-512 its tuning would pick 256-bit ones, and these loops are compute-bound.
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

import numpy as np
import torch

from ._fused import Kernels
from ._numba_noise import _U64
from ._numba_openmp import BACKWARD_ARGS, FORWARD_ARGS, NOISE_ARGS, _ordered, _worker_address
from ._numba_rows import _CHUNK, KERNELS, _backward, _forward, _noise, _tasks
from ._parallel import launch

# --- the Python side ----------------------------------------------------------------------------


def _seed(seed: torch.Tensor) -> np.uint64:
    """The one-element int64 seed tensor's bits as numba's uint64."""
    return _U64(int(seed.item()) & 0xFFFF_FFFF_FFFF_FFFF)


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
                _worker_address()  # the C callback too; None (the entry points) if it fails
                self._prepared[dtype] = None
            except Exception as exc:  # a numba or LLVM failure: this dtype is not served
                self._prepared[dtype] = exc
        failure = self._prepared[dtype]
        if failure is not None:
            raise failure

    def forward(self, x, inv_tau, seed, out, soft, hard):  # type: ignore[no-untyped-def]
        rows, k_size = x.shape
        args = _ordered(
            FORWARD_ARGS,
            x=x,
            inv_tau=inv_tau,
            seed=_seed(seed),
            out=out,
            soft=soft if soft is not None else out,
            k_size=k_size,
            hard=hard,
            want_soft=soft is not None,
        )
        counts = launch(KERNELS, 0, _worker_address, x.numel(), _tasks(rows, k_size), *args)
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    def backward(self, y, g, inv_tau, grad, grad_tau):  # type: ignore[no-untyped-def]
        rows, k_size = y.shape
        args = _ordered(
            BACKWARD_ARGS,
            y=y,
            g=g,
            inv_tau=inv_tau,
            grad=grad,
            grad_tau=grad_tau if grad_tau is not None else y[:0],
            k_size=k_size,
            want_tau=grad_tau is not None,
        )
        launch(KERNELS, 1, _worker_address, y.numel(), _tasks(rows, k_size), *args)

    def noise(self, seed, out):  # type: ignore[no-untyped-def]
        n = out.numel()
        args = _ordered(NOISE_ARGS, seed=_seed(seed), out=out)
        launch(KERNELS, 2, _worker_address, n, (n + _CHUNK - 1) // _CHUNK, *args)
