"""gumbel-softmax: the Gumbel-Softmax / Concrete relaxation and gradient estimators for discrete
random variables, in PyTorch.

The library depends on torch alone; the research side lives in :mod:`gumbel_softmax.lab`.
"""

from .functional import (
    gumbel,
    gumbel_like,
    gumbel_softmax,
    relaxed_bernoulli,
    sample_categorical,
    sample_without_replacement,
    straight_through,
)
from .graph import stochastic_node
from .schedules import (
    Constant,
    ExponentialAnneal,
    InverseTemperatureAnneal,
    Schedule,
    SlopeAnneal,
)
from .subsets import relaxed_top_k

__version__ = "0.1.0"

__all__ = [
    "Constant",
    "ExponentialAnneal",
    "InverseTemperatureAnneal",
    "Schedule",
    "SlopeAnneal",
    "__version__",
    "gumbel",
    "gumbel_like",
    "gumbel_softmax",
    "relaxed_bernoulli",
    "relaxed_top_k",
    "sample_categorical",
    "sample_without_replacement",
    "stochastic_node",
    "straight_through",
]
