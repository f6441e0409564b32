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
from .binary import ARM, DisARM
from .control_variates import DARN, REBAR, RELAX, MuProp
from .relaxed import GumbelSoftmax, StraightThroughGumbelSoftmax
from .score_function import NVIL, EMABaseline, LeaveOneOut, ScoreFunction

__all__ = [
    "ARM",
    "DARN",
    "NVIL",
    "REBAR",
    "RELAX",
    "DisARM",
    "EMABaseline",
    "Estimator",
    "EstimatorResult",
    "GumbelSoftmax",
    "LeaveOneOut",
    "LossFn",
    "MuProp",
    "PathwiseEstimator",
    "ScoreFunction",
    "StraightThroughGumbelSoftmax",
    "available",
    "get",
    "register",
]
