"""Relaxed distributions, subclasses of :class:`torch.distributions.Distribution`.

``ExpConcrete`` holds the log-space mathematics; ``Concrete`` (alias ``RelaxedCategorical``) is its
image under ``exp``; ``LogitBinaryConcrete`` and ``BinaryConcrete`` (alias ``RelaxedBernoulli``)
are the two-class case; the ``StraightThrough*`` forms round to a vertex in the forward pass.

Constructors take ``temperature`` positionally and ``probs`` / ``logits`` by keyword only. The
constraints they declare live in :mod:`.constraints`, registered with ``transform_to`` and
``biject_to`` when this package is imported.
"""

from . import constraints
from .binary import BinaryConcrete, LogitBinaryConcrete, StraightThroughBinaryConcrete
from .concrete import Concrete, ExpConcrete, RelaxedSample, StraightThroughConcrete
from .kl import logistic_kl, mc_kl

RelaxedCategorical = Concrete
RelaxedBernoulli = BinaryConcrete

__all__ = [
    "BinaryConcrete",
    "Concrete",
    "ExpConcrete",
    "LogitBinaryConcrete",
    "RelaxedBernoulli",
    "RelaxedCategorical",
    "RelaxedSample",
    "StraightThroughBinaryConcrete",
    "StraightThroughConcrete",
    "constraints",
    "logistic_kl",
    "mc_kl",
]
