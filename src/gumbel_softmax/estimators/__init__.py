"""Gradient estimators for discrete random variables, behind one interface and one registry.

``gumbel_softmax.estimators.get("st-gs", temperature=0.5)`` builds an estimator by name;
``build(name, event_shape=(N, K))`` builds any of them for latents of that shape (giving the
shape to those with shape-dependent learned parts); ``available()`` lists the names and
``estimator_class(name)`` gives a class and its declared capabilities without building it. See
:mod:`gumbel_softmax.estimators._base` for the interface and the capabilities.
"""

from ._base import (
    Draws,
    Estimator,
    EstimatorResult,
    LossFn,
    PathwiseEstimator,
    TemperatureKind,
    TemperedEstimator,
    available,
    build,
    estimator_class,
    get,
    register,
    scale_gradient,
)
from .binary import ARM, DisARM
from .control_variates import DARN, REBAR, RELAX, MuProp
from .exact import Exact
from .gapped import GappedStraightThrough, gapped_logits
from .rao import GumbelRao, conditional_gumbel
from .reinmax import ReinMax
from .relaxed import (
    DecoupledStraightThroughGumbelSoftmax,
    GumbelSoftmax,
    StraightThroughGumbelSoftmax,
)
from .score_function import NVIL, EMABaseline, LeaveOneOut, ScoreFunction
from .straight_through import SlopeAnnealedStraightThrough, StraightThrough
from .unordered_set import UnorderedSet, log_set_probabilities
from .vimco import VIMCO

__all__ = [
    "ARM",
    "DARN",
    "NVIL",
    "REBAR",
    "RELAX",
    "VIMCO",
    "DecoupledStraightThroughGumbelSoftmax",
    "DisARM",
    "Draws",
    "EMABaseline",
    "Estimator",
    "EstimatorResult",
    "Exact",
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
    "TemperatureKind",
    "TemperedEstimator",
    "UnorderedSet",
    "available",
    "build",
    "conditional_gumbel",
    "estimator_class",
    "gapped_logits",
    "get",
    "log_set_probabilities",
    "register",
    "scale_gradient",
]
