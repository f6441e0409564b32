"""Relaxed distributions, subclasses of :class:`torch.distributions.Distribution`.

``ExpConcrete`` holds the log-space mathematics; ``Concrete`` (alias ``RelaxedCategorical``) is its
image under ``exp``; ``LogitBinaryConcrete`` and ``BinaryConcrete`` (alias ``RelaxedBernoulli``)
are the two-class case; the ``StraightThrough*`` forms round to a vertex in the forward pass.
``HardConcrete`` stretches and rectifies the binary Concrete (L0 gates with exact zeros); ``IGR``
maps a Gaussian onto the simplex invertibly (closed-form density and KL).
"""

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
    "logistic_kl",
    "mc_kl",
]
