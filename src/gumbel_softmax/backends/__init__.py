r"""Backends for :func:`gumbel_softmax.gumbel_softmax`: which code computes a sample.

========== ======================= ==========================================================
name       runs on                 what it is
========== ======================= ==========================================================
reference  any device              the pure-PyTorch path in ``functional.py``; the only one
                                   that takes pre-drawn ``noise=``
numba      CPU tensors             one fused pass per row (or chunk of short rows), noise drawn
                                   inside from a counter-based generator, vectorised log/exp
triton     CUDA tensors            the same algorithm as a Triton kernel (CPU tensors too under
                                   Triton's interpreter, ``TRITON_INTERPRET=1``, for testing)
========== ======================= ==========================================================

All compute the same function, :math:`y = \mathrm{softmax}((\log\alpha + G)/\tau)` with
:math:`G` standard Gumbel (arXiv:1611.01144), and its straight-through form, with the same
checks, dtypes, masks and gradients; they differ only in the random numbers: the fused kernels
draw theirs from SplitMix64 seeded by one ``torch.randint`` on the caller's generator (see
:mod:`gumbel_softmax.backends._fused`), so a sample is reproducible per backend.

Choosing: ``backend=None`` or ``"auto"`` takes the environment variable ``GUMBEL_SOFTMAX_BACKEND``
if it is set, else the fastest available: numba for CPU tensors, triton for CUDA tensors, the
reference otherwise. A backend named explicitly must run on the tensor's device, or an error
says why. Pre-drawn ``noise=`` and empty tensors always take the reference path (a named fused
backend with ``noise=`` is an error). A fused backend that cannot be imported (left out of
:func:`available_backends`) or compiled (numba compiles per dtype at its first use, then caches
the machine code on disk) is skipped by the automatic choice with no error.

Experimental, numba only: running on torch's own OpenMP threads (:mod:`._parallel`).
``GUMBEL_SOFTMAX_EXPERIMENTAL=0``, set before the first call, turns it off (a pool of Python
threads); results do not depend on it.

The fused backward is once-differentiable: under ``create_graph=True`` the gradient it returns
is a constant; use the reference for higher-order gradients.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .._numerics import compute_dtype, traced
from ._experimental import EXPERIMENTAL_ENV
from ._fused import Kernels, draw_seed, fused_gumbel_softmax

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "EXPERIMENTAL_ENV",
    "FUSED",
    "BackendUnavailableError",
    "available_backends",
    "fused_gumbel_softmax",
    "resolve_backend",
]

BACKEND_ENV = "GUMBEL_SOFTMAX_BACKEND"
AUTO = "auto"


class BackendUnavailableError(RuntimeError):
    """A backend named explicitly cannot run here (its package is missing or failed to load)."""


@dataclass(frozen=True)
class _Backend:
    name: str
    module: str  # the module holding its kernels; "" for the reference path
    factory: str  # the Kernels class in that module
    devices: tuple[
        str, ...
    ]  # device types the automatic choice sends to it, in order of preference


# The one list of backends. The automatic choice sends a tensor to the first whose devices
# include the tensor's device type.
_REGISTRY: dict[str, _Backend] = {
    b.name: b
    for b in (
        _Backend("reference", "", "", ()),
        _Backend("numba", "._numba_kernels", "NumbaKernels", ("cpu",)),
        _Backend("triton", "._triton_kernels", "TritonKernels", ("cuda",)),
    )
}
BACKENDS: tuple[str, ...] = tuple(_REGISTRY)
FUSED: tuple[str, ...] = tuple(n for n, b in _REGISTRY.items() if b.module)

_loaded: dict[str, Kernels | Exception] = {}


def _load(name: str) -> Kernels | Exception:
    """Import (once) and return the kernels of ``name``, or the exception that stopped them.

    Under ``torch.compile`` nothing is imported, and nothing cached: an import traced by Dynamo
    fails for reasons of its own, which must not mark the backend unavailable for eager calls.
    """
    if torch.compiler.is_compiling():
        return RuntimeError(f"backend {name!r} is not loaded while torch.compile traces")
    if name not in _loaded:
        b = _REGISTRY[name]
        try:
            module = importlib.import_module(b.module, __name__)
            _loaded[name] = getattr(module, b.factory)()
        except Exception as exc:  # any import or setup failure means: not available here
            _loaded[name] = exc
    return _loaded[name]


def available_backends() -> tuple[str, ...]:
    """The names of the backends that load on this machine, ``"reference"`` always first.

    Loading a fused backend imports its package (numba, triton) the first time.
    """
    fused = [n for n in FUSED if isinstance(_load(n), Kernels)]
    return ("reference", *fused)


def _check_name(name: object, source: str) -> str:
    if name is None or name == "":
        return AUTO
    if not isinstance(name, str) or (name != AUTO and name not in _REGISTRY):
        raise ValueError(f"{source} must be one of {(AUTO, *BACKENDS)} or None, got {name!r}")
    return name


def resolve_backend(
    backend: str | None, logits: object, *, noise: Tensor | None = None
) -> Kernels | None:
    """The kernels that compute ``gumbel_softmax(logits, ..., backend=backend)``; ``None`` means
    the reference path.

    Raises:
        ValueError: an unknown name (in ``backend`` or ``GUMBEL_SOFTMAX_BACKEND``); a fused
            backend named together with ``noise``; a fused backend named for a device it does
            not run on.
        BackendUnavailableError: a fused backend named explicitly whose package does not load.
    """
    name = _check_name(backend, "backend")
    source = "backend"
    if isinstance(logits, Tensor) and traced(logits):
        # torch.compile cannot trace the kernels (and fake or meta tensors have no data): the
        # pure-PyTorch path, which Inductor fuses. Nothing is loaded, so nothing learned while
        # tracing can change what eager calls choose.
        return None
    if name == AUTO:
        name = _check_name(os.environ.get(BACKEND_ENV), f"the environment variable {BACKEND_ENV}")
        source = BACKEND_ENV
        if noise is not None:  # a choice made for the whole process yields to noise=
            return None
    if name == "reference" or not isinstance(logits, Tensor) or logits.numel() == 0:
        return None
    if name == AUTO:
        for b in _REGISTRY.values():
            if logits.device.type in b.devices:
                kernels = _load(b.name)
                if (
                    isinstance(kernels, Kernels)
                    and kernels.supports(logits.device)
                    and _prepare(kernels, logits) is None
                ):
                    return kernels
        return None
    if noise is not None:
        raise ValueError(
            f"{source}={name!r} draws its noise inside the kernel and cannot take noise=; "
            "use backend='reference' for pre-drawn noise"
        )
    kernels = _load(name)
    if not isinstance(kernels, Kernels):
        raise BackendUnavailableError(
            f"{source}={name!r} is not available here: {type(kernels).__name__}: {kernels}"
        ) from kernels
    if not kernels.supports(logits.device):
        raise ValueError(f"{source}={name!r} does not run on tensors of device {logits.device}")
    failure = _prepare(kernels, logits)
    if failure is not None:
        raise BackendUnavailableError(
            f"{source}={name!r} failed to compile for {logits.dtype}: "
            f"{type(failure).__name__}: {failure}"
        ) from failure
    return kernels


def _prepare(kernels: Kernels, logits: Tensor) -> Exception | None:
    """Compile ``kernels`` for ``logits``' compute dtype; the failure, if any. Non-floating
    logits are left to the argument checks, which reject them with a TypeError."""
    if not logits.is_floating_point():
        return None
    try:
        kernels.prepare(compute_dtype(logits.dtype))
    except Exception as exc:
        return exc
    return None


def _noise(
    backend: str,
    shape: Sequence[int] | torch.Size,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """The raw Gumbel noise fused ``backend`` adds to logits of ``shape`` (class axis last),
    drawn exactly as its forward draws it (the seed included), in ``compute_dtype(dtype)``.

    Internal, for the statistical tests of the kernels' random numbers: ``gumbel_softmax(logits,
    generator=g, backend=b)`` equals ``gumbel_softmax(logits, noise=_noise(b, logits.shape,
    generator=g2), backend="reference")`` when ``g`` and ``g2`` start in the same state.
    """
    device = torch.device(device)
    kernels = resolve_backend(backend, torch.empty(1, device=device))
    if kernels is None:
        raise ValueError(f"backend={backend!r} has no kernel noise; name a fused backend")
    out = torch.empty(tuple(shape), dtype=compute_dtype(dtype), device=device)
    kernels.noise(draw_seed(generator, device), out.view(-1))
    return out
