"""What every relaxed distribution shares: keyword-only parameters, their checks, sampling with a
generator, ``expand``, and the "exp/sigmoid of a log-space base" composition (PyTorch builds
RelaxedOneHotCategorical the same way: the mathematics is written once, in log space, and the rest
is derived)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from .._numerics import check_logits, check_temperature

__all__ = [
    "LogSpaceDistribution",
    "RelaxedDistribution",
    "TransformedRelaxed",
    "parameters",
    "temperature_and_batch",
]


def _describe(x: Tensor) -> str:
    return f"Tensor of shape {tuple(x.shape)} and dtype {x.dtype}"


def parameters(
    temperature: float | Tensor, logits: Tensor | None, probs: Tensor | None, *, event_dims: int
) -> tuple[str, Tensor, Tensor, torch.Size]:
    """Check the parameters every relaxed family takes, once, at the constructor.

    Exactly one of ``logits`` / ``probs``, a floating tensor with at least ``event_dims``
    dimensions; a valid temperature whose shape broadcasts with the batch shape
    ``p.shape[:-event_dims]``. Returns ``(name, p, tau, batch_shape)`` with ``name`` the argument
    given and ``tau`` a tensor in ``p``'s dtype and device.
    """
    if (logits is None) == (probs is None):
        raise ValueError(
            "exactly one of logits or probs must be given, got "
            f"logits={'None' if logits is None else 'a tensor'} and "
            f"probs={'None' if probs is None else 'a tensor'}"
        )
    name = "logits" if logits is not None else "probs"
    # NaN is left to each family's declared constraints (checked under validate_args).
    p = check_logits(
        logits if logits is not None else probs, name=name, validate=False, min_dim=event_dims
    )
    tau, batch_shape = temperature_and_batch(temperature, p, name=name, event_dims=event_dims)
    return name, p, tau, batch_shape


def temperature_and_batch(
    temperature: float | Tensor, p: Tensor, *, name: str, event_dims: int
) -> tuple[Tensor, torch.Size]:
    """A checked temperature as a tensor in ``p``'s dtype and device, and the batch shape: that of
    the parameter ``p`` (named ``name``, event part ``event_dims`` dimensions) broadcast with the
    temperature's; a temperature that does not broadcast is a ValueError naming both shapes."""
    t = check_temperature(temperature)
    tau = t if isinstance(t, Tensor) else torch.tensor(t, dtype=p.dtype, device=p.device)
    params_batch = p.shape[: p.dim() - event_dims]
    try:
        batch_shape = torch.broadcast_shapes(params_batch, tau.shape)
    except RuntimeError:
        raise ValueError(
            f"temperature of shape {tuple(tau.shape)} does not broadcast with the batch shape "
            f"{tuple(params_batch)} of {name} ({_describe(p)})"
        ) from None
    return tau, batch_shape


class RelaxedDistribution(Distribution):
    """``sample`` is ``rsample`` without gradient; both take a keyword-only ``generator``.

    Constructors take the temperature as their only positional argument and ``probs`` / ``logits``
    by keyword: torch's ``RelaxedOneHotCategorical(temperature, probs, logits)`` reads a second
    positional argument as ``probs``, an earlier version of this library read it as ``logits``,
    so a positional one is refused rather than guessed.
    """

    has_rsample = True
    # How the parameters after the temperature are passed, for the error below.
    _by_keyword = "{0}(temperature, probs=...) or {0}(temperature, logits=...)"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if len(args) > 1:
            raise TypeError(
                f"{cls.__name__} takes the temperature as its only positional argument, got "
                f"{len(args)} positional arguments; pass the parameters by keyword: "
                + cls._by_keyword.format(cls.__name__)
            )
        return super().__new__(cls)

    def rsample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        raise NotImplementedError

    def sample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    def _init_checked(
        self, batch_shape: torch.Size, event_shape: torch.Size, validate_args: bool | None
    ) -> None:
        """``Distribution.__init__`` without re-checking ``arg_constraints`` (already checked)."""
        Distribution.__init__(self, batch_shape, event_shape, validate_args=False)
        if validate_args is None:
            del self._validate_args  # back to the class default, as torch leaves it
        else:
            self._validate_args = validate_args


class LogSpaceDistribution(RelaxedDistribution):
    """A log-space family holding ``logits`` / ``temperature`` (in their dtype) and ``_logits`` /
    ``_tau`` (the same, in the compute dtype), all broadcast to the batch shape."""

    logits: Tensor
    temperature: Tensor
    _logits: Tensor
    _tau: Tensor

    def expand(self, batch_shape: Any, _instance: Any = None) -> Any:
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        full = batch_shape + self.event_shape
        new._logits, new.logits = self._logits.expand(full), self.logits.expand(full)
        new._tau, new.temperature = (
            self._tau.expand(batch_shape),
            self.temperature.expand(batch_shape),
        )
        new._init_checked(batch_shape, self.event_shape, self.__dict__.get("_validate_args"))
        return new


class TransformedRelaxed(RelaxedDistribution):
    """The image of a log-space ``base`` under a fixed bijection (``exp`` or ``sigmoid``)."""

    base: LogSpaceDistribution

    def __init__(self, base: LogSpaceDistribution, validate_args: bool | None) -> None:
        self.base = base
        # The base checked the parameters; the transformed form only validates samples.
        self._init_checked(base.batch_shape, base.event_shape, validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Any:
        new = self._get_checked_instance(type(self), _instance)
        new.base = self.base.expand(batch_shape)
        new._init_checked(
            new.base.batch_shape, self.event_shape, self.__dict__.get("_validate_args")
        )
        return new

    def __repr__(self) -> str:
        # torch's repr lists the parameters held in __dict__; ours are the base's.
        return type(self).__name__ + repr(self.base)[len(type(self.base).__name__) :]

    logits = property(lambda self: self.base.logits, doc="The base's (normalised) logits.")
    probs = property(lambda self: self.base.probs, doc="The zero-temperature probabilities.")
    temperature = property(lambda self: self.base.temperature, doc="The temperature tau.")
