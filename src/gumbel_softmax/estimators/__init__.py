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
from .relaxed import GumbelSoftmax, StraightThroughGumbelSoftmax

__all__ = [
    "Estimator",
    "EstimatorResult",
    "GumbelSoftmax",
    "LossFn",
    "PathwiseEstimator",
    "StraightThroughGumbelSoftmax",
    "available",
    "get",
    "register",
]
