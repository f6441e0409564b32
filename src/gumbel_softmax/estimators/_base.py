r"""The one interface every gradient estimator shares, and the registry of estimators by name.

An estimator estimates :math:`\nabla_\theta\, \mathbb E_{z \sim q_\theta}[f(z)]` for a factorised
categorical :math:`q_\theta` with ``logits`` of shape ``(*batch, N, K)`` (N independent variables of
K classes each). It is called as ``result = estimator(logits, f, generator=...)`` where ``f`` maps
one-hot (or relaxed) samples ``z`` of shape ``(*sample, *batch, N, K)`` to a per-example loss of shape
``(*sample, *batch)``. ``result.surrogate.sum().backward()`` deposits the estimate in
``logits.grad`` (through whatever produced the logits) and in the parameters used inside ``f``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from .._numerics import check_logits, validation_enabled

__all__ = [
    "Estimator",
    "EstimatorResult",
    "LossFn",
    "PathwiseEstimator",
    "available",
    "get",
    "register",
]

LossFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class EstimatorResult:
    """What every estimator returns.

    Attributes:
        surrogate: ``(*batch)``; ``surrogate.sum().backward()`` produces the estimator's gradient
            of :math:`\\mathbb E[f(z)]` for the logits and for any parameters inside ``f``. Its
            value is not necessarily :math:`f` (score-function terms add zero-mean pieces).
        value: :math:`f` at the sample(s), detached, for logging: ``(*batch)`` or
            ``(M, *batch)`` for estimators that draw M samples.
        sample: the sample(s) ``f`` was evaluated at, detached: ``(*batch, N, K)`` or
            ``(M, *batch, N, K)``.
    """

    surrogate: Tensor
    value: Tensor
    sample: Tensor


class Estimator(nn.Module):
    """Base class: subclasses implement :meth:`forward` with the shared signature.

    Estimators are ``nn.Module`` so that those with learned parts (baselines, control variates,
    temperatures) carry their parameters and can be moved, saved and optimised like any model;
    estimators without learned parts simply have none.
    """

    #: True if the gradient estimate is unbiased for E[f(z)] with z discrete.
    unbiased: bool = False
    #: True if the estimator only accepts binary variables (K = 2, or ``(*batch, N)`` log-odds).
    binary_only: bool = False

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        raise NotImplementedError

    def __call__(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        # The checks every estimator shares; shape rules are each estimator's own.
        check_logits(logits, validate=validation_enabled(None))
        if not callable(f):
            raise TypeError(f"f must be a callable mapping samples to losses, got {f!r}")
        return super().__call__(logits, f, generator=generator)


class PathwiseEstimator(Estimator):
    """An estimator that only changes how a sample is drawn and differentiated.

    Its :meth:`sample` is a drop-in differentiable sampler, and calling it evaluates ``f`` at
    that sample: the surrogate is ``f(z)`` itself.
    """

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        z = self.sample(logits, generator=generator)
        loss = f(z)
        return EstimatorResult(surrogate=loss, value=loss.detach(), sample=z.detach())


_E = TypeVar("_E", bound=type[Estimator])
_REGISTRY: dict[str, type[Estimator]] = {}
_ALIASES: dict[str, str] = {}


def register(name: str, *aliases: str) -> Callable[[_E], _E]:
    """Class decorator: make an estimator available as ``get(name)`` (and under ``aliases``)."""

    def deco(cls: _E) -> _E:
        for n in (name, *aliases):
            if n in _REGISTRY or n in _ALIASES:
                raise ValueError(f"estimator name {n!r} is already registered")
        _REGISTRY[name] = cls
        cls.registry_name = name  # type: ignore[attr-defined]
        for a in aliases:
            _ALIASES[a] = name
        return cls

    return deco


def available() -> list[str]:
    """The registered estimator names (without aliases), sorted."""
    return sorted(_REGISTRY)


def get(name: str, **kwargs: Any) -> Estimator:
    """Build the estimator registered as ``name`` (or an alias) with its keyword options.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise ValueError(f"unknown estimator {name!r}; available: {', '.join(available())}")
    return _REGISTRY[key](**kwargs)
