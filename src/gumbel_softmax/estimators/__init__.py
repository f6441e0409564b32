"""Gradient estimators for discrete random variables, behind one interface and one registry.

``gumbel_softmax.estimators.get("st-gs", temperature=0.5)`` builds an estimator by name;
``available()`` lists the names. See :mod:`gumbel_softmax.estimators._base` for the interface.
"""

from ._base import (
    Estimator,
    EstimatorResult,
    LossFn,
    PathwiseEstimator,
    available,
    get,
    register,
)
from .gapped import GappedStraightThrough, gapped_logits
from .rao import GumbelRao, conditional_gumbel
from .reinmax import ReinMax
from .relaxed import GumbelSoftmax, StraightThroughGumbelSoftmax
from .straight_through import SlopeAnnealedStraightThrough, StraightThrough

__all__ = [
    "Estimator",
    "EstimatorResult",
    "GappedStraightThrough",
    "GumbelRao",
    "GumbelSoftmax",
    "LossFn",
    "PathwiseEstimator",
    "ReinMax",
    "SlopeAnnealedStraightThrough",
    "StraightThrough",
    "StraightThroughGumbelSoftmax",
    "available",
    "conditional_gumbel",
    "gapped_logits",
    "get",
    "register",
]
