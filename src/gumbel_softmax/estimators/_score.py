r"""Shared pieces of the score-function family: argument checks, exact one-hot samples, the
log-probability of a sample, and the "gradient injection" that turns a computed gradient into a
surrogate term.

The score-function (REINFORCE) identity that every estimator here builds on is

.. math:: \nabla_\theta\,\mathbb E_{q_\theta}[f(z)] = \mathbb E_{q_\theta}\big[f(z)\,
          \nabla_\theta \log q_\theta(z)\big],

and any control variate :math:`c` with a known :math:`\nabla_\theta \mathbb E[c]` may be
subtracted from :math:`f` and that gradient added back.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.utils import skip_init

from .._numerics import check_all_masked, check_logits, validation_enabled
from ..functional import sample_categorical
from ._base import Estimator, call_f

__all__ = [
    "ZeroStartMLP",
    "call_f",
    "check_categorical",
    "check_positive_int",
    "check_unit_interval",
    "inject_gradient",
    "log_prob",
    "network_input_size",
    "one_hot_sample",
    "variance_term",
]


def check_categorical(logits: object, f: object) -> Tensor:
    """Logits of a factorised categorical ``(*batch, N, K)`` and a callable ``f``."""
    if not callable(f):
        raise TypeError(f"f must be callable (z -> per-example loss), got {type(f).__name__}")
    validate = validation_enabled(None)
    x = check_logits(logits, validate=validate)
    if x.dim() < 2:
        raise ValueError(
            f"logits must have shape (*batch, N, K) (N variables of K classes), "
            f"got shape {tuple(x.shape)}"
        )
    if validate:
        check_all_masked(x, -1)
    return x


def check_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_unit_interval(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)


def one_hot_sample(
    logits: Tensor, generator: torch.Generator | None, num_samples: int | None = None
) -> Tensor:
    """Exact one-hot samples of ``logits``' shape (``(M, *logits.shape)`` with ``num_samples``)."""
    x = logits.detach()
    if num_samples is not None:
        x = x.expand(num_samples, *x.shape)
    return sample_categorical(x, generator=generator, one_hot=True)


def log_prob(logits: Tensor, z: Tensor) -> Tensor:
    r""":math:`\log q(z) = \sum_n \langle z_n, \log\mathrm{softmax}(\text{logits}_n)\rangle`.

    ``z`` is one-hot, ``(*sample, *batch, N, K)``; the result is ``(*sample, *batch)``. Masked
    classes (``-inf`` logits) are never sampled, so their ``0 * -inf`` is replaced by 0.
    """
    log_q = torch.log_softmax(logits, -1)
    return torch.where(z > 0, z * log_q, 0.0).sum((-1, -2))


def inject_gradient(target: Tensor, grad: Tensor, dims: tuple[int, ...]) -> Tensor:
    r"""A term whose value is 0 and whose gradient for ``target`` is ``grad`` (detached).

    :math:`\langle t - \mathrm{sg}(t), \mathrm{sg}(g)\rangle`, summed over ``dims``; used to
    deposit a gradient computed with :func:`torch.autograd.grad` into whatever produced
    ``target`` without letting anything else receive it.
    """
    g = torch.where(torch.isfinite(target), grad.detach(), 0.0)
    diff = torch.where(torch.isfinite(target), target - target.detach(), 0.0)
    return (diff * g).sum(dims)


def variance_term(
    grad: Tensor, params: Iterable[nn.Parameter], batch_shape: torch.Size
) -> Tensor | None:
    r"""The surrogate term that trains ``params`` to minimise the estimator's variance.

    Since the estimate :math:`\hat g` is unbiased for every value of the parameters
    :math:`\phi` of its control variate, :math:`\nabla_\phi \operatorname{tr}\operatorname{Var}
    [\hat g] = \nabla_\phi \mathbb E\,\lVert\hat g\rVert^2` (Tucker et al. 2017, section 3.3;
    Grathwohl et al. 2018, eq. 6). ``grad`` is :math:`\hat g` built with ``create_graph=True``;
    the returned ``(*batch)`` term has value 0 and carries
    :math:`\nabla_\phi \sum_{\text{batch}} \lVert\hat g\rVert^2` to ``params`` only (never to the
    logits or to ``f``). Returns None when no parameter requires grad.
    """
    trainable = [p for p in params if p.requires_grad]
    if not trainable or not grad.requires_grad:
        return None
    loss = grad.pow(2).sum()
    grads = torch.autograd.grad(loss, trainable, retain_graph=True, allow_unused=True)
    total = grad.new_zeros(())
    for p, g in zip(trainable, grads, strict=True):
        if g is not None:
            total = total + ((p - p.detach()) * g.detach()).sum()
    count = max(1, batch_shape.numel())
    return (total / count).expand(batch_shape)


def network_input_size(
    context_features: int | None, in_features: int | None, event_shape: tuple[int, int] | None
) -> int:
    """The input size D of a default network: the first of the three that is given."""
    if context_features is not None:
        return check_positive_int(context_features, "context_features")
    if in_features is not None:
        return check_positive_int(in_features, "in_features")
    if event_shape is not None:
        n, k = (check_positive_int(s, "event_shape") for s in event_shape)
        return n * k
    raise ValueError(
        "the default network is built at construction and needs its input size: pass "
        "event_shape=(N, K) (or in_features=, or a module of your own)"
    )


class _MultiSampleEstimator(Estimator):
    r"""An estimator that evaluates ``f`` at ``num_samples`` :math:`\ge 2` samples per call, each
    the others' baseline (RLOO, VIMCO, the unordered-set estimator)."""

    def __init__(self, num_samples: int = 4) -> None:
        super().__init__()
        self.num_samples = check_positive_int(num_samples, "num_samples", minimum=2)


class ZeroStartMLP(nn.Module):
    """``in_features -> hidden (tanh) -> 1``, the default learned baseline / surrogate network.

    Its output layer starts at zero, so a fresh NVIL baseline is 0 and a fresh RELAX starts as
    REBAR. The hidden layer is drawn from a private generator seeded with 0: building it (also
    lazily, inside a call) never touches the global RNG. With ``flatten=True`` the input
    ``(*s, N, K)`` is flattened to ``(*s, N*K)``. Returns ``(*s)``.
    """

    def __init__(
        self, in_features: int, hidden: int, *, flatten: bool = False, dtype=None, device=None
    ) -> None:
        super().__init__()
        self.flatten = flatten
        if device is None:  # skip_init needs a concrete device (None would leave "meta")
            device = torch.empty(()).device
        self.hidden = skip_init(nn.Linear, in_features, hidden, dtype=dtype, device=device)
        self.out = skip_init(nn.Linear, hidden, 1, dtype=dtype, device=device)
        g = torch.Generator(device="cpu").manual_seed(0)
        bound = 1.0 / in_features**0.5  # nn.Linear's default scale
        with torch.no_grad():
            w = torch.rand(self.hidden.weight.shape, generator=g, dtype=torch.float64)
            self.hidden.weight.copy_((2 * w - 1) * bound)
            self.hidden.bias.zero_()
            self.out.weight.zero_()
            self.out.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if self.flatten:
            x = x.flatten(-2)
        if x.shape[-1] != self.hidden.in_features:
            # a clear message instead of a matrix-product error deep inside nn.Linear
            raise ValueError(
                f"the default network was built for inputs of {self.hidden.in_features} "
                f"features (N*K of the event_shape, or context_features), got {x.shape[-1]}: "
                "build the estimator for the shape of these logits"
            )
        return self.out(torch.tanh(self.hidden(x))).squeeze(-1)
