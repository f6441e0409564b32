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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "check_dim",
    "check_logits",
    "check_noise",
    "check_temperature",
    "compute_dtype",
    "downcast",
    "gumbel_noise",
    "logistic_noise",
    "uniform_open",
    "upcast",
    "validation_enabled",
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
    through unchanged (straight through the clamp), so it is not zeroed where the value saturates.
    """
    if dtype in _HALF:
        fin = torch.finfo(dtype)
        x = x.detach().clamp(fin.min, fin.max) + (x - x.detach())
    return x.to(dtype)


def validation_enabled(validate_args: bool | None) -> bool:
    """``validate_args`` if given, else torch.distributions' global default (on unless ``-O``)."""
    if validate_args is None:
        return bool(torch.distributions.Distribution._validate_args)
    return bool(validate_args)


def uniform_open(
    shape: Sequence[int] | torch.Size,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Uniform draws on the open interval ``(tiny, 1)`` in ``compute_dtype(dtype)``."""
    dt = compute_dtype(dtype)
    u = torch.rand(tuple(shape), dtype=dt, device=device, generator=generator)
    return u.clamp_(min=torch.finfo(dt).tiny)


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


def check_logits(
    logits: object, *, name: str = "logits", validate: bool, min_dim: int = 1
) -> Tensor:
    """Type-check ``logits`` and, when validating, reject NaN."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(
            f"{name} must have a floating dtype, got {_describe(logits)}; "
            f"convert it with {name}.float()"
        )
    if logits.dim() < min_dim:
        raise ValueError(f"{name} must have at least one dimension (the classes), got a scalar")
    if validate and bool(torch.isnan(logits).any()):
        raise ValueError(f"{name} ({_describe(logits)}) contains NaN")
    return logits


def check_dim(logits: Tensor, dim: int) -> int:
    """Normalise ``dim`` to a non-negative index into ``logits``."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {dim!r}")
    n = logits.dim()
    if not -n <= dim < n:
        raise ValueError(f"dim={dim} is out of range for logits with {n} dimensions")
    return dim % n


def check_all_masked(logits: Tensor, dim: int, *, name: str = "logits") -> None:
    """Raise if some slice along ``dim`` has every class masked with ``-inf``."""
    if bool(torch.isneginf(logits).all(dim).any()):
        raise ValueError(
            f"{name} has a row along dim={dim} whose classes are all masked with -inf; "
            "such a row has no distribution to sample from"
        )


def check_temperature(
    temperature: float | Tensor, batch_shape: torch.Size | None = None
) -> float | Tensor:
    """Validate a temperature: a positive finite float, or a floating tensor of such values.

    With ``batch_shape`` the tensor must broadcast to it (it is not expanded here).
    """
    if isinstance(temperature, bool):
        raise TypeError(f"temperature must be a float or a floating tensor, got {temperature!r}")
    if isinstance(temperature, Tensor):
        if not temperature.is_floating_point():
            raise TypeError(
                f"temperature must be a float or a floating tensor, got {_describe(temperature)}"
            )
        bad = ~(torch.isfinite(temperature) & (temperature > 0))
        if bool(bad.any()):
            raise ValueError(
                "temperature must be positive and finite, got "
                f"{temperature[bad].flatten()[:4].tolist()} in {_describe(temperature)}"
            )
        if batch_shape is not None:
            try:
                if torch.broadcast_shapes(temperature.shape, batch_shape) != batch_shape:
                    raise RuntimeError
            except RuntimeError:
                raise ValueError(
                    f"temperature of shape {tuple(temperature.shape)} does not broadcast to the "
                    f"batch shape {tuple(batch_shape)}"
                ) from None
        return temperature
    if isinstance(temperature, (int, float)):
        t = float(temperature)
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature must be positive and finite, got {temperature!r}")
        return t
    raise TypeError(
        f"temperature must be a float or a floating tensor, got {type(temperature).__name__}"
    )


def check_noise(noise: object, shape: torch.Size, *, kind: str) -> Tensor:
    """Pre-drawn noise must be a floating tensor of exactly ``shape``."""
    if not isinstance(noise, Tensor) or not noise.is_floating_point():
        raise TypeError(f"noise must be a floating torch.Tensor of {kind} noise, got {noise!r}")
    if noise.shape != shape:
        raise ValueError(
            f"noise must have the shape of logits {tuple(shape)}, got {tuple(noise.shape)}"
        )
    return noise
