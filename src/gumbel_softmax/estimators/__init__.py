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
from .gapped import GappedStraightThrough, gapped_logits
from .rao import GumbelRao, conditional_gumbel
from .reinmax import ReinMax
from .relaxed import GumbelSoftmax, StraightThroughGumbelSoftmax
from .score_function import NVIL, EMABaseline, LeaveOneOut, ScoreFunction
from .straight_through import SlopeAnnealedStraightThrough, StraightThrough

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
    "GappedStraightThrough",
    "GumbelRao",
    "GumbelSoftmax",
    "LeaveOneOut",
    "LossFn",
    "MuProp",
    "PathwiseEstimator",
    "ReinMax",
    "ScoreFunction",
    "SlopeAnnealedStraightThrough",
    "StraightThrough",
    "StraightThroughGumbelSoftmax",
    "available",
    "conditional_gumbel",
    "gapped_logits",
    "get",
    "register",
]
