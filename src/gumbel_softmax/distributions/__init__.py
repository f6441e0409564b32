"""Relaxed distributions, subclasses of :class:`torch.distributions.Distribution`.

``ExpConcrete`` holds the log-space mathematics; ``Concrete`` (alias ``RelaxedCategorical``) is its
image under ``exp``; ``LogitBinaryConcrete`` and ``BinaryConcrete`` (alias ``RelaxedBernoulli``)
are the two-class case; the ``StraightThrough*`` forms round to a vertex in the forward pass.
``HardConcrete`` stretches and rectifies the binary Concrete (L0 gates with exact zeros); ``IGR``
maps a Gaussian onto the simplex invertibly (closed-form density and KL).

Constructors take ``temperature`` positionally and ``probs`` / ``logits`` by keyword only. The
constraints they declare live in :mod:`.constraints`, registered with ``transform_to`` and
``biject_to`` when this package is imported.
"""

from . import constraints
from .binary import BinaryConcrete, LogitBinaryConcrete, StraightThroughBinaryConcrete
from .concrete import Concrete, ExpConcrete, RelaxedSample, StraightThroughConcrete
from .hard_concrete import HardConcrete
from .igr import IGR
from .kl import logistic_kl, mc_kl

RelaxedCategorical = Concrete
RelaxedBernoulli = BinaryConcrete

__all__ = [
    "IGR",
    "BinaryConcrete",
    "Concrete",
    "ExpConcrete",
    "HardConcrete",
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
