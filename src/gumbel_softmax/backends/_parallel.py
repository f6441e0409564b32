r"""How the numba kernels spread their work over threads.

**Experimental**: calling into torch's OpenMP runtime (path 1 below) relies on how torch's Linux
wheels are built (a GNU-compatible ``GOMP_parallel`` in the runtime torch loads) and on no other
library in the process using that team at the same moment. ``GUMBEL_SOFTMAX_EXPERIMENTAL=0``,
set before the first call, turns it off: the pool of path 2 then serves every call, with the
same results.

A kernel entry point ``kernel(c0, c1, *args)`` computes tasks ``c0 .. c1 - 1`` (rows, or chunks
of short rows); :func:`launch` runs ``range(tasks)`` through it. The tasks are cut into blocks
of about :data:`BLOCK_ELEMENTS` elements, and each thread claims the next unclaimed block until
none is left, so a thread that the operating system holds back delays one block, not a fixed
share of the work. A block's result does not depend on which thread computes it.

Which threads:

1. **torch's own OpenMP threads**, where torch runs its intra-op work on an OpenMP runtime whose
   ``GOMP_parallel`` entry point we can call (GNU libgomp in the Linux wheels; LLVM's libomp and
   Intel's libiomp5 export it too). The kernel then runs as a C callback (a numba ``cfunc``) on
   the same team of threads as torch's own operators. This matters on a machine with few cores:
   after each parallel torch operator its OpenMP workers keep spinning on the cores for a while
   (GNU's default wait policy; about 20 ms here), and a thread of ours started during that time
   shares a core with a spinning one. Measured on the 2-core development machine, (1024, 1024)
   forward right after ``F.gumbel_softmax``: 5.8 ms with a thread pool of our own, 2.8 ms on
   torch's threads, 2.7 ms on either with nothing running before.
2. Otherwise, **Python threads of a pool of ours**, the kernels releasing the GIL.

No numba threading layer is used (its choice is global to the process, and its OpenMP and
workqueue layers abort on ``fork`` or on concurrent calls). torch's OpenMP runtime is not used in
a process forked from the one that first used it (GNU OpenMP's threads do not survive ``fork``);
there the pool serves, created anew per process.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._experimental import experimental_enabled

# Below this many elements a second thread costs more than it saves (measured on either path:
# at (100, 20, 10), 20,000 elements, two threads gain nothing).
PARALLEL_MIN = 1 << 15
# Elements per block of work claimed by a thread (about 0.1 ms of forward).
BLOCK_ELEMENTS = 1 << 15

# The slots the C worker reads, an int64 array: a head of HEAD slots, by name below, then the
# kernel's arguments in the order of its layout (see slot_layout): an array as (address, size),
# a scalar as its 64 bits.
NEXT = 0  # the next block to claim, incremented atomically by the threads
BLOCKS = 1  # the number of blocks
PER_BLOCK = 2  # tasks per block
TASKS = 3  # tasks in all
RESULTS = 4  # the address of the int64 results, two per block
WIDTH = 5  # the float width, 32 or 64
WHICH = 6  # which kernel: its index in the kernels' tuple
COUNT = 7  # the number of slots, head included
HEAD = 8

ARRAY, SCALAR = 2, 1  # slots taken by an argument of each kind


def slot_layout(*arguments: tuple[str, int]) -> dict[str, int]:
    """The first slot of each kernel argument ``(name, ARRAY or SCALAR)``, in order after the
    head: the one description of a kernel's arguments that both sides read."""
    slots, at = {}, HEAD
    for name, width in arguments:
        slots[name] = at
        at += width
    return slots


_pool: list[tuple[int, ThreadPoolExecutor]] = []  # (owning process id, pool)
_pool_lock = threading.Lock()
_gomp: list[tuple[int, Callable[..., None]] | None] = []  # [] unprobed; (pid, GOMP_parallel)


def threads(size: int, tasks: int) -> int:
    """How many threads share ``tasks`` tasks of ``size`` elements in all: torch's intra-op
    thread count, or one for small work."""
    return 1 if size < PARALLEL_MIN else max(1, min(torch.get_num_threads(), tasks))


def _openmp_libraries() -> list[str]:
    """Paths of the OpenMP runtimes loaded in this process, those inside torch's package first."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: the runtime torch ships, if any
        maps = "\n".join(str(p) for p in (Path(torch.__file__).parent / "lib").glob("*omp*"))
    found = dict.fromkeys(re.findall(r"(/\S*/lib(?:gomp|iomp5|omp)[^/\s]*\.(?:so|dylib)\S*)", maps))
    torch_dir = str(Path(torch.__file__).parent)
    return sorted(found, key=lambda p: not p.startswith(torch_dir))


def torch_openmp() -> Callable[..., None] | None:
    """``GOMP_parallel(fn, data, num_threads, flags)`` of the OpenMP runtime torch runs its
    intra-op work on, or None: torch built without OpenMP, no such runtime found, a process
    forked from the one that found it, or ``GUMBEL_SOFTMAX_EXPERIMENTAL=0``."""
    if not _gomp:
        found = None
        if (
            experimental_enabled()
            and "parallel backend: OpenMP" in torch.__config__.parallel_info()
        ):
            for path in _openmp_libraries():
                try:
                    fn = ctypes.CDLL(path).GOMP_parallel  # already loaded: the same handle
                except (OSError, AttributeError):
                    continue
                fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
                fn.restype = None
                found = (os.getpid(), fn)
                break
        _gomp.append(found)
    entry = _gomp[0]
    return entry[1] if entry is not None and entry[0] == os.getpid() else None


def _slots(args: Sequence[Any]) -> list[int]:
    """The kernel arguments as the C worker reads them (see slot_layout)."""
    out: list[int] = []
    for a in args:
        if isinstance(a, np.ndarray):
            out += [a.ctypes.data, a.size]
        else:  # an int, a bool, a uint64 seed: its 64 bits
            out.append(int(np.array(a, np.uint64 if a >= 0 else np.int64).view(np.int64)))
    return out


def launch(
    kernels: Sequence[Callable[..., Any]],
    which: int,
    worker: Callable[[], int | None],
    size: int,
    tasks: int,
    *args: Any,
) -> list[Any]:
    """Run ``kernels[which](c0, c1, *args)`` over ``range(tasks)`` (``size`` elements in all);
    returns the per-block results of the kernel, or for the OpenMP path the ``(sum, sum)`` of the
    two-integer results the C worker stores. ``worker()`` gives the address of the C worker
    (which runs ``kernels[which]`` by the same index), or None where it cannot be compiled (then
    the pool serves)."""
    kernel = kernels[which]
    n = threads(size, tasks)
    if n == 1:
        return [kernel(0, tasks, *args)]
    gomp = torch_openmp()
    address = worker() if gomp is not None else None
    # blocks of BLOCK_ELEMENTS, or smaller so that each thread gets about four
    per = max(1, min(BLOCK_ELEMENTS, size // (4 * n)) * tasks // size)
    blocks = -(-tasks // per)
    if gomp is not None and address is not None:
        results = np.zeros(2 * blocks, np.int64)
        rest = _slots(args)
        slots = np.zeros(HEAD + len(rest), np.int64)
        slots[BLOCKS], slots[PER_BLOCK], slots[TASKS] = blocks, per, tasks
        slots[RESULTS] = results.ctypes.data
        slots[WIDTH] = next(a.dtype.itemsize * 8 for a in args if isinstance(a, np.ndarray))
        slots[WHICH], slots[COUNT] = which, len(slots)
        slots[HEAD:] = rest
        gomp(address, slots.ctypes.data, n, 0)  # ctypes releases the GIL for the call
        return [(int(results[0::2].sum()), int(results[1::2].sum()))]
    with _pool_lock:
        if not _pool or _pool[0][0] != os.getpid():  # a pool inherited through fork has no threads
            _pool[:] = [(os.getpid(), ThreadPoolExecutor(max_workers=os.cpu_count() or 1))]
    counter = itertools.count()  # next() on it is atomic under the GIL

    def work() -> list[Any]:
        done = []
        while (b := next(counter)) < blocks:
            done.append(kernel(b * per, min(tasks, (b + 1) * per), *args))
        return done

    helpers = [_pool[0][1].submit(work) for _ in range(n - 1)]
    return [*work(), *(r for h in helpers for r in h.result())]
