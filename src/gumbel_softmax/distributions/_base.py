"""What every relaxed distribution shares: sampling with a generator, ``expand``, and the
"exp/sigmoid of a log-space base" composition (PyTorch builds RelaxedOneHotCategorical the same
way: the mathematics is written once, in log space, and the rest is derived)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

__all__ = ["LogSpaceDistribution", "RelaxedDistribution", "TransformedRelaxed"]


class RelaxedDistribution(Distribution):
    """``sample`` is ``rsample`` without gradient; both take a keyword-only ``generator``."""

    has_rsample = True

    def rsample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        raise NotImplementedError

    def sample(
        self, sample_shape: Any = torch.Size(), *, generator: torch.Generator | None = None
    ) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)


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
        Distribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


class TransformedRelaxed(RelaxedDistribution):
    """The image of a log-space ``base`` under a fixed bijection (``exp`` or ``sigmoid``)."""

    base: LogSpaceDistribution

    def __init__(self, base: LogSpaceDistribution, validate_args: bool | None) -> None:
        self.base = base
        super().__init__(base.batch_shape, base.event_shape, validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Any:
        new = self._get_checked_instance(type(self), _instance)
        new.base = self.base.expand(batch_shape)
        Distribution.__init__(new, new.base.batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    logits = property(lambda self: self.base.logits, doc="The base's (normalised) logits.")
    probs = property(lambda self: self.base.probs, doc="The zero-temperature probabilities.")
    temperature = property(lambda self: self.base.temperature, doc="The temperature tau.")
