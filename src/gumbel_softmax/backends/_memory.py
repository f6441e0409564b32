r"""Output buffers for the fused kernels: large CPU tensors backed by transparent huge pages.

**Experimental**: it calls ``madvise`` through ctypes on memory torch's allocator owns.
``GUMBEL_SOFTMAX_EXPERIMENTAL=0``, set before the first call, turns it off (ordinary pages, the
same results).

A freshly allocated large tensor is mapped by the kernel page by page at its first write; with
4 KiB pages a 64 MiB output takes 16,384 page faults, which on the development machine cost
more than the whole Gumbel-Softmax kernel (1.1-1.6 ns per float32 element against 2.4 ns).
glibc hands allocations above its mmap threshold (at most 32 MiB) straight to the kernel, so
every call pays them again. Linux backs a range with 2 MiB pages instead (512 times fewer
faults) when asked with ``madvise(MADV_HUGEPAGE)`` before the first write; this is what
PyTorch does for its own allocations under ``THP_MEM_ALLOC_ENABLE=1``, which must be set before
torch starts, and what :func:`empty_like` does for the buffers of the fused kernels only.

Only the 2 MiB-aligned part lying inside the tensor's own bytes is advised, so no other
allocation's memory is touched; where the advice is not available (not Linux, transparent huge
pages set to ``never``, no libc through ctypes) the tensor is returned as ``torch.empty_like``
gives it, with no error. The contents and the result do not depend on it.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ._experimental import experimental_enabled

# Below this many bytes the output is reused from glibc's heap (no fresh pages) or too small
# to hold two huge pages; advising it would cost a system call for nothing.
HUGE_MIN_BYTES = 8 << 20
_MADV_HUGEPAGE = 14  # <sys/mman.h> on Linux

_state: list[tuple[Callable[..., int], int] | None] = []  # [] unprobed, [None] unavailable


def _huge_pages() -> tuple[Callable[..., int], int] | None:
    """``(madvise, huge page size)`` if this system takes the advice, else None (probed once)."""
    if not _state:
        found = None
        if not experimental_enabled():
            _state.append(None)
            return None
        try:
            sysfs = Path("/sys/kernel/mm/transparent_hugepage")
            mode = (sysfs / "enabled").read_text()
            size = int((sysfs / "hpage_pmd_size").read_text())
            if sys.platform.startswith("linux") and "[never]" not in mode and size > 0:
                madvise = ctypes.CDLL(None, use_errno=True).madvise
                madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                madvise.restype = ctypes.c_int
                found = (madvise, size)
        except (OSError, ValueError, AttributeError):  # no sysfs entry, no libc: no advice
            found = None
        _state.append(found)
    return _state[0]


def advise_huge_pages(t: Tensor) -> None:
    """Ask for huge pages under the 2 MiB-aligned interior of CPU tensor ``t``'s bytes."""
    nbytes = t.numel() * t.element_size()
    if t.device.type != "cpu" or nbytes < HUGE_MIN_BYTES:
        return
    huge = _huge_pages()
    if huge is None:
        return
    madvise, size = huge
    start = -(-t.data_ptr() // size) * size
    end = (t.data_ptr() + nbytes) // size * size
    if end > start:
        madvise(start, end - start, _MADV_HUGEPAGE)  # a refusal only leaves 4 KiB pages


def empty_like(x: Tensor) -> Tensor:
    """``torch.empty_like(x)`` whose large CPU buffer is advised to use huge pages."""
    out = torch.empty_like(x)
    advise_huge_pages(out)
    return out
