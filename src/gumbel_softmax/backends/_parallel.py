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

Work too small for a second thread (:data:`PARALLEL_MIN`) runs on the calling thread, through
the same C callback called by ctypes: its arguments are the tensors' data pointers in integer
slots, which cost a fraction of the numpy views a numba entry point takes. Where the callback
does not compile, the entry points serve (the pool, or one direct call).

No numba threading layer is used (its choice is global to the process, and its OpenMP and
workqueue layers abort on ``fork`` or on concurrent calls). torch's OpenMP runtime is not used in
a process forked from the one that first used it (GNU OpenMP's threads do not survive ``fork``);
there the pool serves, created anew per process.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import re
import threading
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from ._experimental import experimental_enabled

# Below this many elements a second thread costs more than it saves. Measured on the 2-core
# development machine with torch's team warm (as after any parallel torch operator), once the
# per-call cost had been cut, by timing gumbel_softmax with this constant set either side of the
# size (a loop of 300 calls, best of 9; not part of benchmarks/): (100, 20, 10), 20,000
# elements, 248 -> 199 us with two threads; (64, 128), 8,192 elements, 135 -> 115 us, a gain
# too small to risk waking a sleeping team.
PARALLEL_MIN = 1 << 14
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
    """The kernel arguments as the C worker reads them (see slot_layout): a tensor as its
    address and size, a scalar (an int, a bool, a uint64 seed) as its 64 bits, read as int64."""
    out: list[int] = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out += [a.data_ptr(), a.numel()]
        else:
            v = int(a)
            out.append(v - (1 << 64) if v >= 1 << 63 else v)
    return out


def _numpy(a: Any) -> Any:
    """A kernel argument as the numba entry points take it: a tensor as its flat numpy view
    (detached first if it requires grad), anything else as it is."""
    if isinstance(a, torch.Tensor):
        return (a.detach() if a.requires_grad else a).numpy().reshape(-1)
    return a


def _blocks(size: int, tasks: int, n: int) -> tuple[int, int]:
    """``(tasks per block, blocks)`` for ``n`` threads: blocks of BLOCK_ELEMENTS, or smaller so
    that each thread gets about four; one block for one thread."""
    if n == 1:
        return tasks, 1
    per = max(1, min(BLOCK_ELEMENTS, size // (4 * n)) * tasks // size)
    return per, -(-tasks // per)


@functools.cache
def _c_function(address: int) -> Callable[[int], None]:
    """The C worker at ``address`` as a ctypes function of the slots' address."""
    return ctypes.CFUNCTYPE(None, ctypes.c_void_p)(address)  # type: ignore[no-any-return]


def launch(
    kernels: Sequence[Callable[..., Any]],
    which: int,
    worker: Callable[[], int | None],
    size: int,
    tasks: int,
    *args: Any,
) -> list[Any]:
    """Run ``kernels[which](c0, c1, *args)`` over ``range(tasks)`` (``size`` elements in all);
    returns the per-block results of the kernel, or for the C worker the ``(sum, sum)`` of the
    two-integer results it stores. ``args``: C-contiguous CPU tensors and scalars, in the
    kernel's layout. ``worker()`` gives the address of the C worker (which runs
    ``kernels[which]`` by the same index), or None where it cannot be compiled.

    The C worker serves one thread (called here through ctypes, which releases the GIL) and
    torch's OpenMP team alike: its arguments are read from integer slots (the tensors' data
    pointers), where a numba entry point would take numpy views of them, whose creation and
    typing cost more than a small kernel (see the fixed cost per call in
    ``benchmarks/kernels/results.md``). The entry points serve the pool, and one thread where
    the worker does not compile."""
    kernel = kernels[which]
    n = threads(size, tasks)
    gomp = torch_openmp() if n > 1 else None
    address = worker() if n == 1 or gomp is not None else None
    if address is not None:
        per, blocks = _blocks(size, tasks, n)
        results = array("q", bytes(16 * blocks))
        rest = _slots(args)
        head = [0] * HEAD
        head[BLOCKS], head[PER_BLOCK], head[TASKS] = blocks, per, tasks
        head[RESULTS] = results.buffer_info()[0]
        head[WIDTH] = next(
            a.element_size() * 8
            for a in args
            if isinstance(a, torch.Tensor) and a.is_floating_point()
        )
        head[WHICH], head[COUNT] = which, HEAD + len(rest)
        slots = array("q", head + rest)
        if gomp is None:  # one thread: this one
            _c_function(address)(slots.buffer_info()[0])  # ctypes releases the GIL for either
        else:
            gomp(address, slots.buffer_info()[0], n, 0)
        return [(sum(results[0::2]), sum(results[1::2]))]
    arrays = [_numpy(a) for a in args]
    if n == 1:
        return [kernel(0, tasks, *arrays)]
    with _pool_lock:
        if not _pool or _pool[0][0] != os.getpid():  # a pool inherited through fork has no threads
            _pool[:] = [(os.getpid(), ThreadPoolExecutor(max_workers=os.cpu_count() or 1))]
    counter = itertools.count()  # next() on it is atomic under the GIL

    def work() -> list[Any]:
        done = []
        while (b := next(counter)) < blocks:
            done.append(kernel(b * per, min(tasks, (b + 1) * per), *arrays))
        return done

    per, blocks = _blocks(size, tasks, n)
    helpers = [_pool[0][1].submit(work) for _ in range(n - 1)]
    return [*work(), *(r for h in helpers for r in h.result())]
