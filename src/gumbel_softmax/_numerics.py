"""The one place for the library's numerical policy: uniforms on the open interval, noise,
compute dtypes, and the argument checks every sampler shares.

Why the uniforms are clamped
----------------------------
``torch.rand`` draws from the half-open interval ``[0, 1)`` on a grid of ``2**-24`` (float32)
or ``2**-53`` (float64). The value ``0`` comes up once in about 16.7 million float32 draws, which
a (2048, 8192) batch reaches at every step, and ``-log(-log(0)) = -inf``: the class would silently
never be chosen, and ``-inf`` noise added to a ``-inf`` mask or a ``+inf`` logistic tail gives NaN.
We therefore clamp from below to the smallest *normal* number of the dtype we compute in
(``finfo.tiny``), exactly as TensorFlow Probability does. The upper end needs no clamp, since
``torch.rand`` never returns 1. The resulting noise is finite and bounded:

======== ================================ ================================
dtype    Gumbel ``-log(-log U)``           logistic ``log U - log(1 - U)``
======== ================================ ================================
float32  ``[-4.47, 16.64]``                ``[-87.34, 16.64]``
float64  ``[-6.56, 36.74]``                ``[-708.40, 36.74]``
======== ================================ ================================

The truncated tails carry probability below ``6e-8`` (float32) and ``1e-16`` (float64), the
resolution of the generator itself. Half-precision inputs (float16, bfloat16) draw and compute in
float32, the dtype we compute in: their own grids (11 and 8 bits) would truncate the tails at
probability ``5e-4`` and ``4e-3``, which a chi-square test at K = 1000 detects.

Checks of values, without host synchronisation
----------------------------------------------
A check of a tensor's *values* (NaN logits, a non-positive temperature tensor) needs those values
on the host. :func:`require` makes every such check, in one of four ways:

* CPU tensors, eagerly: an ordinary check, raising ``ValueError`` with the argument's name and the
  offending values.
* CUDA tensors, by default: ``torch._assert_async``, which queues the test on the device and
  never waits for it (no host synchronisation, and capturable in a CUDA graph); a failure is
  reported by CUDA as a device-side assertion at the next synchronisation (which, as any
  device-side assertion, leaves the CUDA context unusable), not as a ``ValueError``. With
  ``validate_args=True`` given explicitly (``strict``) the check is the ordinary one, raising the
  ``ValueError``, at the cost of one host synchronisation per check.
* Under ``torch.compile`` (CPU): the custom operator ``gumbel_softmax::check``, which runs the
  eager check when the compiled code runs (so the same ``ValueError`` is raised) and has a fake
  implementation for tracing; its zero result is added to the checked tensor so that the
  compiler cannot drop it.
* Meta and fake tensors have no values: nothing is checked (shapes and dtypes still are).
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "check_dim",
    "check_generator",
    "check_hard",
    "check_logits",
    "check_noise",
    "check_temperature",
    "compute_dtype",
    "downcast",
    "gumbel_noise",
    "logistic_noise",
    "require",
    "require_all",
    "standard_normal",
    "strict_validation",
    "traced",
    "uniform_open",
    "upcast",
    "validation_enabled",
    "values_hidden",
]

_HALF = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic runs in: float32 for 16-bit inputs, the input dtype otherwise."""
    return torch.float32 if dtype in _HALF else dtype


class _Upcast(torch.autograd.Function):
    """``x.to(dtype)`` whose backward saturates at the source dtype's finite range."""

    @staticmethod
    def forward(ctx, x: Tensor, dtype: torch.dtype) -> Tensor:  # type: ignore[override]
        ctx.src = x.dtype
        return x.to(dtype)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return saturating_cast(g, ctx.src), None


def saturating_cast(g: Tensor, dtype: torch.dtype) -> Tensor:
    """``g`` cast to ``dtype``, clamped to its finite range first (no ``inf`` from overflow)."""
    if g.dtype == dtype:
        return g
    fin = torch.finfo(dtype)
    return g.clamp(fin.min, fin.max).to(dtype)


def upcast(x: Tensor) -> Tensor:
    """``x`` in ``compute_dtype(x.dtype)``; for 16-bit ``x`` the gradient cast back saturates.

    Gradients are computed in float32. Cast back to a 16-bit parameter, a true gradient beyond the
    dtype's range (a log-space sample at tau = 1e-3 moves by ~1e6 per unit of tau) would become
    ``inf`` and then NaN in the optimiser; it saturates at ``finfo.max`` instead. (The usual remedy,
    float32 master parameters, avoids the question altogether.)
    """
    if x.dtype in _HALF:
        return _Upcast.apply(x, torch.float32)
    return x


def downcast(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` (computed in float32) returned in a 16-bit ``dtype``, saturating instead of overflowing.

    A log-density of a 16-bit sample at tau = 1e-3 and logits of 1e4 is around -1e5, beyond
    float16's range; it is returned as ``finfo.min`` rather than ``-inf``. The gradient passes
    through unchanged (straight through the clamp), so it is not zeroed where the value saturates;
    where ``x`` is already infinite (a masked class, a point mass) there is no gradient, and the
    straight-through term ``x - x`` (``inf - inf = NaN``) is left out.
    """
    if dtype in _HALF:
        fin = torch.finfo(dtype)
        through = torch.where(torch.isfinite(x), x - x.detach(), 0.0)
        x = x.detach().clamp(fin.min, fin.max) + through
    return x.to(dtype)


def strict_validation(validate_args: bool | None) -> bool:
    """Whether checks of values must raise synchronously on CUDA too: ``validate_args=True``
    given explicitly (the default checks there are asynchronous, see :func:`require`)."""
    return validate_args is True


def validation_enabled(validate_args: bool | None) -> bool:
    """``validate_args`` if given, else on unless Python runs with ``-O`` (``__debug__``).

    Not torch.distributions' global default: the first ``torch.compile`` in a process switches
    that off for good (``torch._dynamo.eval_frame.TorchPatcher``), which would silently turn off
    every check of every later eager call.
    """
    if validate_args is None:
        return __debug__
    return bool(validate_args)


def uniform_open(
    shape: Sequence[int] | torch.Size,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Uniform draws on the open interval ``(tiny, 1)`` in ``compute_dtype(dtype)``.

    Under ``torch.compile`` the draw without a generator is the compiler's own ``torch.rand``
    (Inductor fuses it with what follows); a draw from a ``generator``, which the compiler cannot
    take as an input, is the custom operator ``gumbel_softmax::uniform`` (see :func:`_uniform`).
    """
    dt = compute_dtype(dtype)
    if generator is None:  # not passed at all: generator=None breaks dynamic shapes under compile
        u = torch.rand(tuple(shape), dtype=dt, device=device)
    elif torch.compiler.is_compiling():
        key, draw = _generator_key(generator), _draw_number()
        u = _uniform(list(shape), dt, torch.device(device or "cpu"), key, draw)
    else:
        u = torch.rand(tuple(shape), dtype=dt, device=device, generator=generator)
    return u.clamp_(min=torch.finfo(dt).tiny)


# Generators drawn from inside compiled code, by id: the compiled graph holds the id (Dynamo
# guards on the generator's identity, so another generator recompiles once); the entry keeps the
# generator alive, so that its id cannot be reused by another object.
_GENERATORS: dict[int, torch.Generator] = {}


def _generator_key(generator: torch.Generator) -> int:
    """Register ``generator`` (while tracing) and return the key the compiled graph holds."""
    _GENERATORS[id(generator)] = generator
    return id(generator)


_DRAWS = itertools.count()


def _draw_number() -> int:
    """A number distinct for every draw traced: the compiler's common-subexpression elimination
    (which spares only torch's own random operators) would otherwise merge two draws of equal
    shape from one generator into one, giving two samples the same noise."""
    return next(_DRAWS)


# Dynamo calls a function so marked once while tracing and keeps its result as a constant. This
# is the whole of ``torch._dynamo.assume_constant_result``, spelled out so that importing the
# library does not import Dynamo (which imports triton).
_generator_key._dynamo_marked_constant = True  # type: ignore[attr-defined]
_draw_number._dynamo_marked_constant = True  # type: ignore[attr-defined]


# Tagged as a random operator, as torch's own are, and numbered per draw (see _draw_number).
@torch.library.custom_op(
    "gumbel_softmax::uniform", mutates_args=(), tags=(torch.Tag.nondeterministic_seeded,)
)
def _uniform(
    shape: Sequence[int], dtype: torch.dtype, device: torch.device, key: int, draw: int
) -> Tensor:
    """``torch.rand(shape, generator=...)`` from the registered generator ``key``: the same
    numbers as the eager call, and the generator advances as it would eagerly. ``draw`` only
    keeps distinct draws distinct."""
    return torch.rand(tuple(shape), dtype=dtype, device=device, generator=_GENERATORS[key])


def _fake_draw(
    shape: Sequence[int], dtype: torch.dtype, device: torch.device, key: int, draw: int
) -> Tensor:
    return torch.empty(tuple(shape), dtype=dtype, device=device)


_uniform.register_fake(_fake_draw)


@torch.library.custom_op(
    "gumbel_softmax::normal", mutates_args=(), tags=(torch.Tag.nondeterministic_seeded,)
)
def _normal(
    shape: Sequence[int], dtype: torch.dtype, device: torch.device, key: int, draw: int
) -> Tensor:
    """``torch.randn(shape, generator=...)`` from the registered generator ``key``, as
    :func:`_uniform` is for ``torch.rand``."""
    return torch.randn(tuple(shape), dtype=dtype, device=device, generator=_GENERATORS[key])


_normal.register_fake(_fake_draw)


def standard_normal(
    shape: Sequence[int] | torch.Size,
    *,
    dtype: torch.dtype,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``torch.randn`` in ``dtype``, drawn from ``generator`` also under ``torch.compile`` (the
    custom operator ``gumbel_softmax::normal``), as :func:`uniform_open` draws uniforms."""
    if generator is None:
        return torch.randn(tuple(shape), dtype=dtype, device=device)
    if torch.compiler.is_compiling():
        key, draw = _generator_key(generator), _draw_number()
        return _normal(list(shape), dtype, torch.device(device or "cpu"), key, draw)
    return torch.randn(tuple(shape), dtype=dtype, device=device, generator=generator)


def gumbel_noise(
    shape: Sequence[int] | torch.Size,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Standard Gumbel noise :math:`G = -\log(-\log U)` in ``compute_dtype(dtype)``."""
    u = uniform_open(shape, dtype=dtype, device=device, generator=generator)
    return u.log_().neg_().log_().neg_()


def logistic_noise(
    shape: Sequence[int] | torch.Size,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Standard logistic noise :math:`L = \log U - \log(1 - U)` in ``compute_dtype(dtype)``."""
    u = uniform_open(shape, dtype=dtype, device=device, generator=generator)
    return u.log() - torch.log1p(-u)


def _describe(x: Tensor) -> str:
    return f"Tensor of shape {tuple(x.shape)} and dtype {x.dtype}"


def is_fake(x: Tensor) -> bool:
    """Whether ``x`` is a fake tensor; without importing torch's fake-tensor module, which must
    already be loaded for a fake tensor to exist. A plain tensor that wraps nothing (no
    subclass, not functionalised, not a functorch wrapper) is answered without torch's
    ``is_fake``, which imports a module on every call: this runs on every sampler call."""
    fake = sys.modules.get("torch._subclasses.fake_tensor")
    if fake is None:
        return False
    if (
        type(x) is Tensor
        and not torch._is_functional_tensor(x)
        and not torch._C._functorch.is_functorch_wrapped_tensor(x)
    ):
        return False
    return bool(fake.is_fake(x))


def values_hidden(x: Tensor) -> bool:
    """Whether ``x`` has no values to read: a meta tensor, or a fake tensor (what
    ``torch.compile`` traces with)."""
    return x.device.type == "meta" or is_fake(x)


def traced(x: Tensor) -> bool:
    """Whether the samplers must take their pure-PyTorch path for ``x``: under ``torch.compile``
    (which cannot trace the fused kernels) or when ``x`` has no values (meta, fake)."""
    return torch.compiler.is_compiling() or values_hidden(x)


# --- checks of values (see the module docstring: "Checks of values") ---------------------------


def _where(bad: Tensor) -> str:
    """The first offending values and their indices, for a message."""
    idx = bad.nonzero()[:3]
    return ", ".join(str(tuple(i.tolist())) for i in idx)


def _bad(kind: str, x: Tensor, dim: int, k: int) -> Tensor:
    """A 0-d bool tensor: whether ``x`` fails check ``kind``."""
    if kind == "not_nan":
        return torch.isnan(x).any()
    if kind == "below_inf":  # NaN or +inf: ``x < inf`` is False for both, one pass
        return (~(x < math.inf)).any()
    if kind == "not_all_masked":
        return torch.isneginf(x).all(dim).any()
    if kind == "positive_finite":
        return (~(torch.isfinite(x) & (x > 0))).any()
    if kind == "k_unmasked":
        return ((~torch.isneginf(x)).sum(dim) < k).any()
    if kind == "unit_interval":  # NaN fails both comparisons
        return (~((x >= 0) & (x <= 1))).any()
    if kind == "simplex":  # as torch's constraints.simplex: non-negative, summing to 1 within 1e-6
        return ~(((x >= 0).all(dim)) & ((x.sum(dim) - 1).abs() < 1e-6)).all()
    raise AssertionError(f"unknown check {kind!r}")  # pragma: no cover (internal misuse)


def _raise(kind: str, x: Tensor, name: str, dim: int, k: int) -> None:
    """Raise the ValueError of failed check ``kind``, naming ``name`` and the values."""
    if kind == "not_nan" or (kind == "below_inf" and bool(torch.isnan(x).any())):
        raise ValueError(
            f"{name} ({_describe(x)}) contains NaN (first at index {_where(torch.isnan(x))})"
        )
    if kind == "below_inf":
        raise ValueError(
            f"{name} ({_describe(x)}) contains +inf (first at index "
            f"{_where(torch.isposinf(x))}); a class of infinite log-probability leaves no "
            "distribution to sample (mask classes with -inf, or pass finite logits)"
        )
    if kind == "not_all_masked":
        raise ValueError(
            f"{name} has a row along dim={dim} whose classes are all masked with -inf; "
            "such a row has no distribution to sample from"
        )
    if kind == "unit_interval":
        raise ValueError(f"{name} ({_describe(x)}) must lie in [0, 1]")
    if kind == "simplex":
        raise ValueError(
            f"{name} ({_describe(x)}) must lie on the simplex (non-negative, summing to 1 along "
            f"dim={dim})"
        )
    if kind == "positive_finite":
        bad = ~(torch.isfinite(x) & (x > 0))
        raise ValueError(
            f"{name} must be positive and finite, got "
            f"{x[bad].flatten()[:4].tolist()} in {_describe(x)}"
        )
    fewest = int((~torch.isneginf(x)).sum(dim).min())
    raise ValueError(
        f"k={k} exceeds the number of unmasked classes in some row of {name} "
        f"(fewest: {fewest}); masked classes are never drawn"
    )


# The message of a failed asynchronous check on CUDA (the values are not read back).
_ASYNC = {
    "not_nan": "{name} contains NaN",
    "below_inf": "{name} contains NaN or +inf",
    "not_all_masked": "{name} has a row whose classes are all masked with -inf",
    "positive_finite": "{name} must be positive and finite",
    "k_unmasked": "k exceeds the number of unmasked classes in some row of {name}",
    "unit_interval": "{name} must lie in [0, 1]",
    "simplex": "{name} must lie on the simplex",
}


def _check_now(x: Tensor, kind: str, name: str, dim: int, k: int) -> None:
    if bool(_bad(kind, x, dim, k)):
        _raise(kind, x, name, dim, k)


@torch.library.custom_op("gumbel_softmax::check", mutates_args=())
def _check(x: Tensor, kind: str, name: str, dim: int, k: int) -> Tensor:
    """Check ``kind`` of ``x`` when compiled code runs; a zero to add to ``x``."""
    _check_now(x, kind, name, dim, k)
    return x.new_zeros(())


@_check.register_fake
def _(x: Tensor, kind: str, name: str, dim: int, k: int) -> Tensor:
    return x.new_empty(())


def _queued(x: Tensor, strict: bool) -> bool:
    """Whether a check of ``x`` is queued on its device (``torch._assert_async``) rather than
    read back: on CUDA, unless ``validate_args=True`` was given (``strict``)."""
    return x.device.type == "cuda" and not strict


def require(
    x: Tensor, kind: str, *, name: str, dim: int = -1, k: int = 0, strict: bool = False
) -> Tensor:
    """Check the values of ``x`` (see the module docstring) and return ``x``; callers must use
    the returned tensor, which under ``torch.compile`` carries the check. ``strict``: raise the
    ``ValueError`` on CUDA too (one host synchronisation), as ``validate_args=True`` asks.

    ``kind``: ``"not_nan"``; ``"below_inf"`` (no NaN, no ``+inf``); ``"not_all_masked"`` (no row
    along ``dim`` entirely ``-inf``); ``"positive_finite"``; ``"k_unmasked"`` (at least ``k``
    classes along ``dim`` not ``-inf``); ``"unit_interval"`` (every value in [0, 1]);
    ``"simplex"`` (rows along ``dim`` non-negative and summing to 1).
    """
    if x.device.type == "meta":
        return x
    if _queued(x, strict):  # on the device: no host synchronisation
        torch._assert_async(~_bad(kind, x, dim, k), _ASYNC[kind].format(name=name))
        return x
    if torch.compiler.is_compiling():
        return x + _check(x.detach(), kind, name, dim, k)
    if not is_fake(x):
        _check_now(x, kind, name, dim, k)
    return x


@torch.library.custom_op("gumbel_softmax::check_all", mutates_args=())
def _check_all(x: Tensor, ok: Tensor, message: str) -> Tensor:
    """Raise ``ValueError(message)`` unless every entry of ``ok`` is True, when compiled code
    runs; a zero to add to ``x``."""
    if not bool(ok.all()):
        raise ValueError(message)
    return x.new_zeros(())


@_check_all.register_fake
def _(x: Tensor, ok: Tensor, message: str) -> Tensor:
    return x.new_empty(())


def require_all(x: Tensor, ok: Tensor, message: str, *, strict: bool = False) -> Tensor:
    """:func:`require` for a condition already computed: return ``x``, checked that every entry
    of the boolean tensor ``ok`` is True, else ``ValueError(message)``, in the same four ways
    (asynchronously on CUDA unless ``strict``; carried by the returned tensor under
    ``torch.compile``; nothing on meta and fake tensors). For checks written as a torch
    constraint, e.g. ``require_all(value, support.check(value), "...")``."""
    if x.device.type == "meta":
        return x
    if _queued(x, strict):  # on the device: no host synchronisation
        torch._assert_async(ok.all(), message)
        return x
    if torch.compiler.is_compiling():
        return x + _check_all(x.detach(), ok, message)
    if not is_fake(x) and not bool(ok.all()):
        raise ValueError(message)
    return x


# --- checks of arguments ----------------------------------------------------------------------


def check_logits(
    logits: object,
    *,
    name: str = "logits",
    validate: bool,
    min_dim: int = 1,
    finite_above: bool = False,
    strict: bool = False,
) -> Tensor:
    """Type-check ``logits`` and, when validating, reject NaN (and ``+inf`` if
    ``finite_above``: a categorical logit of ``+inf`` has no distribution)."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(
            f"{name} must have a floating dtype, got {_describe(logits)}; "
            f"convert it with {name}.float()"
        )
    if logits.dim() < min_dim:
        raise ValueError(f"{name} must have at least one dimension (the classes), got a scalar")
    if validate:
        kind = "below_inf" if finite_above else "not_nan"
        logits = require(logits, kind, name=name, strict=strict)
    return logits


def check_dim(logits: Tensor, dim: int) -> int:
    """Normalise ``dim`` to a non-negative index into ``logits``."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {dim!r}")
    n = logits.dim()
    if not -n <= dim < n:
        raise ValueError(f"dim={dim} is out of range for logits with {n} dimensions")
    return dim % n


def check_all_masked(
    logits: Tensor, dim: int, *, name: str = "logits", strict: bool = False
) -> Tensor:
    """Raise if some slice along ``dim`` has every class masked with ``-inf``; see
    :func:`require` for the returned tensor and ``strict``."""
    return require(logits, "not_all_masked", name=name, dim=dim, strict=strict)


def check_hard(hard: object) -> bool | Tensor:
    """``hard`` as a Python bool, or as a 0-d bool tensor where reading it would cost a host
    synchronisation (CUDA) or a graph break (``torch.compile``); then the caller selects with
    ``torch.where``. Anything else (``"False"``, ``1``, ``None``) is refused: it would be taken
    as true."""
    if isinstance(hard, bool):
        return hard
    if isinstance(hard, Tensor) and hard.dtype == torch.bool and hard.dim() == 0:
        if hard.device.type == "cpu" and not traced(hard):
            return bool(hard)
        return hard
    raise TypeError(f"hard must be a bool or a 0-d bool tensor, got {hard!r}")


def check_generator(generator: object, device: torch.device | str | None) -> torch.Generator | None:
    """``None``, or a ``torch.Generator`` on the device the samples are drawn on."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    dev = torch.device(device if device is not None else "cpu")
    gdev = generator.device
    if dev.type != "meta" and (
        gdev.type != dev.type or (dev.index is not None and gdev.index != dev.index)
    ):
        raise ValueError(
            f"generator is on device {gdev}, but the samples are drawn on {dev}; "
            f"create it with torch.Generator(device={str(dev)!r})"
        )
    return generator


def _broadcasts_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    """Whether ``shape`` broadcasts to exactly ``target``: compared dimension by dimension, not
    by ``torch.broadcast_shapes``, whose error under ``torch.compile`` is not a ValueError."""
    if len(shape) > len(target):
        return False
    return all(a == 1 or a == b for a, b in zip(reversed(shape), reversed(target), strict=False))


def check_temperature(
    temperature: float | Tensor, batch_shape: torch.Size | None = None, *, strict: bool = False
) -> float | Tensor:
    """Validate a temperature: a positive finite float, or a floating tensor of such values.

    With ``batch_shape`` the tensor must broadcast to it (it is not expanded here). A tensor's
    values are checked by :func:`require` (use the returned tensor).
    """
    if isinstance(temperature, bool):
        raise TypeError(f"temperature must be a float or a floating tensor, got {temperature!r}")
    if isinstance(temperature, Tensor):
        if not temperature.is_floating_point():
            raise TypeError(
                f"temperature must be a float or a floating tensor, got {_describe(temperature)}"
            )
        if batch_shape is not None and not _broadcasts_to(temperature.shape, batch_shape):
            raise ValueError(
                f"temperature of shape {tuple(temperature.shape)} does not broadcast to the "
                f"batch shape {tuple(batch_shape)}"
            )
        return require(temperature, "positive_finite", name="temperature", strict=strict)
    if isinstance(temperature, (int, float)):
        t = float(temperature)
        # comparisons, not math.isfinite, which a SymFloat (under compile) lacks; NaN fails too
        if not 0 < t < math.inf:
            raise ValueError(f"temperature must be positive and finite, got {temperature!r}")
        return t
    raise TypeError(
        f"temperature must be a float or a floating tensor, got {type(temperature).__name__}"
    )


def check_noise(
    noise: object, shape: torch.Size, *, kind: str, validate: bool = False, strict: bool = False
) -> Tensor:
    """Pre-drawn noise must be a floating tensor of exactly ``shape`` and, when validating,
    without NaN (which would pass silently into the sample)."""
    if not isinstance(noise, Tensor) or not noise.is_floating_point():
        raise TypeError(f"noise must be a floating torch.Tensor of {kind} noise, got {noise!r}")
    if noise.shape != shape:
        raise ValueError(
            f"noise must have the shape of logits {tuple(shape)}, got {tuple(noise.shape)}"
        )
    return require(noise, "not_nan", name="noise", strict=strict) if validate else noise
