"""What every relaxed distribution shares: keyword-only parameters, their checks, sampling with a
generator, ``expand``, and the "exp/sigmoid of a log-space base" composition (PyTorch builds
RelaxedOneHotCategorical the same way: the mathematics is written once, in log space, and the rest
is derived)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from .._numerics import check_logits, check_temperature, require_all, validation_enabled

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
    temperature: float | Tensor,
    logits: Tensor | None,
    probs: Tensor | None,
    *,
    event_dims: int,
    strict: bool = False,
) -> tuple[str, Tensor, Tensor, torch.Size]:
    """Check the parameters every relaxed family takes, once, at the constructor.

    Exactly one of ``logits`` / ``probs``, a floating tensor with at least ``event_dims``
    dimensions; a valid temperature whose shape broadcasts with the batch shape
    ``p.shape[:-event_dims]``. Returns ``(name, p, tau, batch_shape)`` with ``name`` the argument
    given and ``tau`` a tensor in ``p``'s dtype and device. ``strict``: ``validate_args=True``
    was given (see :func:`~gumbel_softmax._numerics.require`).
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
    tau, batch_shape = temperature_and_batch(
        temperature, p, name=name, event_dims=event_dims, strict=strict
    )
    return name, p, tau, batch_shape


def temperature_and_batch(
    temperature: float | Tensor, p: Tensor, *, name: str, event_dims: int, strict: bool = False
) -> tuple[Tensor, torch.Size]:
    """A checked temperature as a tensor in ``p``'s dtype and device, and the batch shape: that of
    the parameter ``p`` (named ``name``, event part ``event_dims`` dimensions) broadcast with the
    temperature's; a temperature that does not broadcast is a ValueError naming both shapes."""
    t = check_temperature(temperature, strict=strict)
    # torch.full, not torch.tensor: a fill on the device, not a copy from the host
    tau = t if isinstance(t, Tensor) else torch.full((), t, dtype=p.dtype, device=p.device)
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
        """``Distribution.__init__`` without torch's check of ``arg_constraints``: each family
        checked its parameters' values with :func:`~gumbel_softmax._numerics.require`, which
        on CUDA queues the check on the device, where torch's reads every parameter back to the
        host (three synchronisations per construction). Validation is on unless
        ``validate_args=False`` or Python runs with ``-O``: not torch's global default, which
        the first ``torch.compile`` of a process turns off (see ``validation_enabled``)."""
        Distribution.__init__(self, batch_shape, event_shape, validate_args=False)
        self._validate_args = validation_enabled(validate_args)
        self._validate_args_given = validate_args  # for expand and the strictness of checks

    def _validate_sample(self, value: Tensor) -> None:
        """torch's hook, for torch's own callers: :meth:`_checked_sample`."""
        self._checked_sample(value)

    def _checked_sample(self, value: Tensor) -> Tensor:
        """torch's check of a value given to ``log_prob`` (a tensor whose right-most dimensions
        match the event shape and broadcast with the batch shape, inside ``support``), with the
        support checked by :func:`~gumbel_softmax._numerics.require_all`: no host
        synchronisation on CUDA unless ``validate_args=True`` was given. Returns ``value``;
        callers use the returned tensor, which under ``torch.compile`` carries the check."""
        if not isinstance(value, Tensor):
            raise ValueError(f"value must be a torch.Tensor, got {type(value).__name__}")
        event = len(self._event_shape)
        if value.dim() < event or value.shape[value.dim() - event :] != self._event_shape:
            raise ValueError(
                f"value of shape {tuple(value.shape)}: its right-most dimensions must be the "
                f"event shape {tuple(self._event_shape)}"
            )
        expected = self._batch_shape + self._event_shape
        for i, j in zip(reversed(value.shape), reversed(expected), strict=False):
            if i != 1 and j != 1 and i != j:
                raise ValueError(
                    f"value of shape {tuple(value.shape)} does not broadcast with batch_shape + "
                    f"event_shape {tuple(expected)}"
                )
        support = self.support
        assert support is not None  # every family declares one
        return require_all(
            value,
            support.check(value),
            f"value (Tensor of shape {tuple(value.shape)}) must lie in the support "
            f"{support!r} of {type(self).__name__}",
            strict=self._validate_args_given is True,
        )


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
        new._init_checked(batch_shape, self.event_shape, self._validate_args_given)
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
        new._init_checked(new.base.batch_shape, self.event_shape, self._validate_args_given)
        return new

    def __repr__(self) -> str:
        # torch's repr lists the parameters held in __dict__; ours are the base's.
        return type(self).__name__ + repr(self.base)[len(type(self.base).__name__) :]

    logits = property(lambda self: self.base.logits, doc="The base's (normalised) logits.")
    probs = property(lambda self: self.base.probs, doc="The zero-temperature probabilities.")
    temperature = property(lambda self: self.base.temperature, doc="The temperature tau.")
