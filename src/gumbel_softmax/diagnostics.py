r"""Exact answers for small discrete problems, to test and compare gradient estimators.

:func:`exact_gradient` enumerates every joint state of N categorical variables with K classes
(:math:`K^N` states) and differentiates the exact expectation
:math:`\mathbb E_{z\sim q}[f(z)] = \sum_z f(z) \prod_n q_n(z_n)` with autograd.
:func:`gradient_stats` measures an estimator's mean, bias, variance, cosine with the exact
gradient and time; :func:`toy_problems` gives the standard problems we measure on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from . import _enumeration
from .estimators._base import Estimator, LossFn

__all__ = [
    "GradientStats",
    "ToyProblem",
    "all_states",
    "exact_bound",
    "exact_expectation",
    "exact_gradient",
    "exact_gradient_for",
    "gradient_stats",
    "separable_expectation",
    "toy_problems",
]

#: Enumeration beyond this many joint states is refused (memory and time).
MAX_STATES = 200_000


def all_states(n: int, k: int, *, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Every joint one-hot state of ``n`` variables with ``k`` classes: ``(k**n, n, k)``."""
    if k**n > MAX_STATES:
        raise ValueError(f"{k}**{n} = {k**n} states exceeds MAX_STATES = {MAX_STATES}")
    return _enumeration.all_states(n, k, dtype=dtype, device=device)


def exact_expectation(f: LossFn, logits: Tensor, *, chunk: int = 4096) -> Tensor:
    r"""The exact :math:`\mathbb E_{z \sim q}[f(z)]`, shape ``(*batch)``, differentiable in logits.

    Args:
        f: maps ``(S, *batch, N, K)`` one-hot states to ``(S, *batch)`` losses.
        logits: ``(*batch, N, K)`` logits of a factorised categorical.
        chunk: states evaluated per call of ``f``.
    """
    if logits.dim() < 2:
        raise ValueError(f"logits must have shape (*batch, N, K), got {tuple(logits.shape)}")
    n, k = logits.shape[-2:]
    states = all_states(n, k, dtype=logits.dtype, device=logits.device)
    log_q = torch.log_softmax(logits, -1)
    batch = logits.shape[:-2]
    total = logits.new_zeros(batch)
    for start in range(0, states.shape[0], chunk):
        z = states[start : start + chunk]
        z = z.reshape(z.shape[0], *([1] * len(batch)), n, k).expand(z.shape[0], *batch, n, k)
        # (S, *batch): log prod_n q_n(z_n); where(), not z * log_q, so masked classes (-inf) give
        # -inf for the states that use them and no 0 * -inf = NaN for the others.
        log_p = torch.where(z > 0, log_q, 0.0).sum((-1, -2))
        total = total + (log_p.exp() * f(z)).sum(0)
    return total


def exact_bound(f: LossFn, logits: Tensor, num_samples: int) -> Tensor:
    r"""The exact S-sample bound :math:`\mathbb E_{z_1..z_S \overset{iid}{\sim} q}
    \big[-\log \tfrac1S \sum_s e^{-f(z_s)}\big]`, shape ``(*batch)``, differentiable in logits.

    With :math:`f = -\log w` (``w = p(x, z) / q(z | x)``) it is the negative importance-weighted
    bound of Burda et al. (2016) that VIMCO optimises; S = 1 gives :math:`\mathbb E f`. It
    enumerates the :math:`(K^N)^S` ordered S-tuples of joint states (``f`` is evaluated once per
    state), so it is for tiny problems only.

    Args:
        f: maps ``(M, *batch, N, K)`` one-hot states to ``(M, *batch)``.
        logits: ``(*batch, N, K)``.
        num_samples: S >= 1.

    Raises:
        ValueError: S < 1, or :math:`(K^N)^S` beyond ``MAX_STATES``.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
    if logits.dim() < 2:
        raise ValueError(f"logits must have shape (*batch, N, K), got {tuple(logits.shape)}")
    n, k = logits.shape[-2:]
    m = k**n
    if m**num_samples > MAX_STATES:
        raise ValueError(
            f"({k}**{n})**{num_samples} = {m**num_samples} tuples of states exceeds "
            f"MAX_STATES = {MAX_STATES}"
        )
    batch = logits.shape[:-2]
    states = all_states(n, k, dtype=logits.dtype, device=logits.device)
    z = states.reshape(m, *([1] * len(batch)), n, k).expand(m, *batch, n, k)
    values = f(z)  # (M, *batch)
    log_q = _enumeration.joint_log_prob(
        torch.log_softmax(logits, -1), _enumeration.state_indices(n, k, device=logits.device)
    ).movedim(-1, 0)  # (M, *batch)
    # every ordered tuple (i_1..i_S): (M**S, S)
    grid = torch.cartesian_prod(*[torch.arange(m, device=logits.device)] * num_samples)
    grid = grid.reshape(-1, num_samples)
    log_p = log_q[grid].sum(1)  # (M**S, *batch): log prod_s q(z_{i_s})
    bound = math.log(num_samples) - torch.logsumexp(-values[grid], 1)
    # where(), so that tuples with a masked state (probability 0) add 0, not 0 * inf
    return torch.where(torch.isneginf(log_p), 0.0, log_p.exp() * bound).sum(0)


def exact_gradient(f: LossFn, logits: Tensor, *, bound_samples: int | None = None) -> Tensor:
    r"""The exact :math:`\nabla_{\text{logits}} \sum_{\text{batch}} \mathbb E_{z\sim q}[f(z)]`,
    or with ``bound_samples = S`` that of the S-sample bound :func:`exact_bound` (the objective of
    an estimator that declares ``multi_sample_bound``).

    Returns a tensor of ``logits``' shape; ``logits`` itself is left untouched (no ``.grad``).
    """
    x = logits.detach().requires_grad_(True)
    with torch.enable_grad():
        if bound_samples is None:
            objective = exact_expectation(f, x)
        else:
            objective = exact_bound(f, x, bound_samples)
        (grad,) = torch.autograd.grad(objective.sum(), x)
    return grad


def exact_gradient_for(estimator: Estimator, f: LossFn, logits: Tensor) -> Tensor:
    r""":func:`exact_gradient` of the objective ``estimator`` declares: :math:`\mathbb E f`, or
    the ``estimator.num_samples``-sample bound when it declares ``multi_sample_bound``."""
    if estimator.multi_sample_bound:
        s = int(cast(Any, estimator).num_samples)  # declared with multi_sample_bound
        return exact_gradient(f, logits, bound_samples=s)
    return exact_gradient(f, logits)


def separable_expectation(g: Callable[[Tensor], Tensor], logits: Tensor) -> Tensor:
    r"""The exact :math:`\mathbb E_{z\sim q}\big[\tfrac1N \sum_n g(z_n)\big]` of a separable loss.

    Only K states per variable are needed, so N may be large (the polynomial programme has
    N = 128 binary variables, :math:`2^{128}` joint states).

    Args:
        g: maps one-hot ``(K, *batch, N, K)`` states of each variable to ``(K, *batch, N)``.
        logits: ``(*batch, N, K)``.

    Returns:
        ``(*batch)``, differentiable in ``logits``.
    """
    k = logits.shape[-1]
    eye = torch.eye(k, dtype=logits.dtype, device=logits.device)
    states = eye.reshape(k, *([1] * (logits.dim() - 1)), k).expand(k, *logits.shape)
    values = g(states)  # (K, *batch, N): g at class j of every variable
    probs = torch.softmax(logits, -1).movedim(-1, 0)
    return (probs * values).sum(0).mean(-1)


@dataclass(frozen=True)
class ToyProblem:
    r"""A gradient-estimation problem with its exact answer.

    Attributes:
        name: short identifier, e.g. ``"quadratic-small"``.
        logits: ``(N, K)`` logits at which the gradient is taken.
        f: the loss, mapping ``(*sample, N, K)`` samples to ``(*sample)``; defined on the simplex,
            so relaxed estimators can use it too.
        exact: ``(N, K)`` exact gradient of :math:`\mathbb E_{z \sim q}[f(z)]` at ``logits``.
        description: one line, with its source.
    """

    name: str
    logits: Tensor
    f: LossFn
    exact: Tensor
    description: str


def _quadratic(n: int, k: int, g: torch.Generator, dtype: torch.dtype) -> LossFn:
    # (z - t)^T Q (z - t) over the flattened sample, Q = A A^T / (NK) couples every class of
    # every variable, so f is genuinely quadratic on one-hot samples
    d = n * k
    a = torch.randn(d, d, generator=g, dtype=dtype)
    q = a @ a.T / d
    t = torch.rand(d, generator=g, dtype=dtype)

    def f(z: Tensor) -> Tensor:
        v = z.flatten(-2) - t.to(z.dtype)
        return ((v @ q.to(z.dtype)) * v).sum(-1)

    return f


def _nonlinear(n: int, k: int, g: torch.Generator, dtype: torch.dtype) -> LossFn:
    # a one-hidden-layer tanh network with a log-sum-exp readout: smooth, not polynomial
    d, h = n * k, 8
    w1 = torch.randn(d, h, generator=g, dtype=dtype) * (2.0 / math.sqrt(d))
    b1 = torch.randn(h, generator=g, dtype=dtype)
    w2 = torch.randn(h, 3, generator=g, dtype=dtype)

    def f(z: Tensor) -> Tensor:
        hid = torch.tanh(z.flatten(-2) @ w1.to(z.dtype) + b1.to(z.dtype))
        return torch.logsumexp(hid @ w2.to(z.dtype), -1)

    return f


def _polynomial(p: float, target: float = 0.45) -> Callable[[Tensor], Tensor]:
    def g(z: Tensor) -> Tensor:  # z: (..., N, 2); the binary variable is the first class
        return (z[..., 0] - target).abs().pow(p)

    return g


def toy_problems(
    *, dtype: torch.dtype = torch.float64, seed: int = 0, names: list[str] | None = None
) -> dict[str, ToyProblem]:
    r"""The standard problems of our tests and benchmark, each with its exact gradient.

    - ``quadratic-small`` (N=2, K=3) and ``quadratic-large`` (N=4, K=4):
      :math:`f(z) = (\mathrm{vec}\,z - t)^\top Q (\mathrm{vec}\,z - t)`, :math:`Q = AA^\top/(NK)`,
      random :math:`A`, :math:`t`; logits standard normal.
    - ``nonlinear-small`` / ``nonlinear-large`` (same sizes):
      :math:`f(z) = \log\sum_j \exp\big(W_2^\top \tanh(W_1^\top \mathrm{vec}\,z + b_1)\big)_j`.
    - ``simplex-qp`` (N=1, K=3), the Gumbel-Rao paper's quadratic programme on the simplex
      (Paulus et al. 2021, arXiv:2010.04838): :math:`f(z) = (z - c)^\top Q (z - c)`,
      :math:`Q_{ij} = e^{-2|i-j|}`, :math:`c_i = 1/3`; logits standard normal.
    - ``poly-1.5``, ``poly-2``, ``poly-3``, ReinMax's polynomial programming (Liu et al. 2023,
      arXiv:2304.08612): N = 128 binary variables (K = 2, :math:`z_d` the first class),
      :math:`f(z) = \frac1{128}\sum_d |z_d - 0.45|^p`; logits uniform in ±0.01 as the authors
      initialise them. The exact gradient is closed-form (:func:`separable_expectation`).

    The enumerated problems have at most :math:`4^4 = 256` states, so every exact gradient is
    cheap. All tensors are drawn from ``torch.Generator().manual_seed(seed)``.

    Args:
        dtype: dtype of the logits, exact gradients and the constants inside ``f``.
        seed: seed of the random constants.
        names: build only these (default: all).

    Raises:
        ValueError: an unknown name.
    """
    makers: dict[str, Callable[[torch.Generator], ToyProblem]] = {}

    def enumerated(name: str, n: int, k: int, build: Callable[..., LossFn], desc: str) -> None:
        def make(g: torch.Generator) -> ToyProblem:
            f = build(n, k, g, dtype)
            logits = torch.randn(n, k, generator=g, dtype=dtype)
            return ToyProblem(name, logits, f, exact_gradient(f, logits), desc)

        makers[name] = make

    quad, mlp = "(vec z - t)^T Q (vec z - t)", "logsumexp(W2^T tanh(W1^T vec z + b1))"
    enumerated("quadratic-small", 2, 3, _quadratic, f"{quad}, N=2, K=3")
    enumerated("quadratic-large", 4, 4, _quadratic, f"{quad}, N=4, K=4")
    enumerated("nonlinear-small", 2, 3, _nonlinear, f"{mlp}, N=2, K=3")
    enumerated("nonlinear-large", 4, 4, _nonlinear, f"{mlp}, N=4, K=4")

    def simplex_qp(g: torch.Generator) -> ToyProblem:
        i = torch.arange(3, dtype=dtype)
        q = torch.exp(-2.0 * (i[:, None] - i[None, :]).abs())
        c = torch.full((3,), 1.0 / 3.0, dtype=dtype)

        def f(z: Tensor) -> Tensor:
            v = z[..., 0, :] - c.to(z.dtype)
            return ((v @ q.to(z.dtype)) * v).sum(-1)

        logits = torch.randn(1, 3, generator=g, dtype=dtype)
        desc = "(z - c)^T Q (z - c), Q_ij = exp(-2|i-j|), c_i = 1/3, K=3 (Paulus et al. 2021)"
        return ToyProblem("simplex-qp", logits, f, exact_gradient(f, logits), desc)

    makers["simplex-qp"] = simplex_qp

    def polynomial(p: float) -> Callable[[torch.Generator], ToyProblem]:
        def make(g: torch.Generator) -> ToyProblem:
            per_var = _polynomial(p)

            def f(z: Tensor) -> Tensor:
                return per_var(z).mean(-1)

            logits = (torch.rand(128, 2, generator=g, dtype=dtype) - 0.5) * 0.02
            x = logits.detach().requires_grad_(True)
            with torch.enable_grad():
                (exact,) = torch.autograd.grad(separable_expectation(per_var, x).sum(), x)
            desc = f"mean_d |z_d - 0.45|^{p:g}, N=128 binary (Liu et al. 2023)"
            return ToyProblem(f"poly-{p:g}", logits, f, exact, desc)

        return make

    for p in (1.5, 2.0, 3.0):
        makers[f"poly-{p:g}"] = polynomial(p)

    wanted = list(makers) if names is None else list(names)
    unknown = [n for n in wanted if n not in makers]
    if unknown:
        raise ValueError(f"unknown toy problem(s) {unknown}; available: {', '.join(makers)}")
    # one generator per problem, seeded from its name, so a problem does not change when
    # others are added or left out
    out = {}
    for name in wanted:
        g = torch.Generator().manual_seed(seed * 1_000_003 + sum(map(ord, name)) * 7919)
        out[name] = makers[name](g)
    return out


@dataclass(frozen=True)
class GradientStats:
    r"""What :func:`gradient_stats` measured over S independent estimates :math:`\hat g_s`.

    Attributes:
        mean: :math:`\bar g = \frac1S\sum_s \hat g_s`, logits' shape.
        exact: the exact gradient it is compared with.
        bias: :math:`\bar g - g`, logits' shape (its noise has standard error ``stderr``).
        variance: per-coordinate sample variance :math:`\frac1{S-1}\sum_s(\hat g_s - \bar g)^2`.
        total_variance: ``variance.sum()``, the expected squared distance of one estimate from
            the estimator's mean.
        bias_norm: :math:`\lVert \bar g - g \rVert_2`.
        mse: :math:`\frac1S \sum_s \lVert \hat g_s - g\rVert^2` (= squared bias + variance).
        cosine: :math:`\cos(\bar g, g)`, the direction of the mean estimate.
        mean_cosine: :math:`\frac1S\sum_s \cos(\hat g_s, g)`, the direction of one estimate.
        seconds_per_estimate: wall time of one call and backward, averaged.
        num_samples: S.
    """

    mean: Tensor
    exact: Tensor
    bias: Tensor
    variance: Tensor
    total_variance: float
    bias_norm: float
    mse: float
    cosine: float
    mean_cosine: float
    seconds_per_estimate: float
    num_samples: int

    @property
    def stderr(self) -> Tensor:
        """Per-coordinate standard error of ``mean`` (and of ``bias``)."""
        return (self.variance / self.num_samples).sqrt()


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    # 0 when either vector is 0, rather than NaN
    denom = a.norm(dim=-1) * b.norm(dim=-1)
    return torch.where(denom > 0, (a * b).sum(-1) / denom.clamp_min(torch.finfo(a.dtype).tiny), 0.0)


def gradient_stats(
    estimator: Estimator,
    f: LossFn,
    logits: Tensor,
    *,
    num_samples: int,
    generator: torch.Generator | None = None,
    exact: Tensor | None = None,
    vectorize: bool = False,
) -> GradientStats:
    r"""Mean, bias, variance, cosine and time of ``estimator``'s gradient for ``logits``.

    Draws S = ``num_samples`` independent estimates
    :math:`\hat g_s = \nabla_\theta\,\mathrm{surrogate}_s / s_s` (the gradient of the summed
    surrogate with respect to ``logits`` only; parameters inside ``f`` or the estimator are not
    touched), with :math:`s_s` the call's ``result.logits_scale`` (NVIL's variance
    normalisation, 1 for every other estimator: the normalised estimate is unbiased for
    :math:`s\,\nabla`, so dividing by it gives the estimate of the gradient itself), and
    compares them with the exact gradient.

    Args:
        estimator: any registered estimator.
        f: the loss, ``(*sample, *batch, N, K) -> (*sample, *batch)``.
        logits: ``(*batch, N, K)``.
        num_samples: S >= 2.
        generator: the random source of every estimate.
        exact: the exact gradient if known (default: :func:`exact_gradient_for`, by enumeration
            of the objective the estimator declares).
        vectorize: draw the S estimates in one call, stacked along a new leading batch dim
            (much faster; only for estimators whose estimates are independent across the batch
            and that keep no state between calls). The time is then the batched call's divided
            by S.

    Returns:
        :class:`GradientStats`.

    Raises:
        ValueError: ``num_samples < 2``; ``exact`` of another shape than ``logits``.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"num_samples must be an int >= 2, got {num_samples!r}")
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    target = exact_gradient_for(estimator, f, logits) if exact is None else exact.detach()
    if target.shape != logits.shape:
        raise ValueError(
            f"exact must have the shape of logits {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    base = logits.detach()
    with torch.enable_grad():
        if vectorize:
            x = base.expand(num_samples, *base.shape).clone().requires_grad_(True)
            start = time.perf_counter()
            result = estimator(x, f, generator=generator)
            (grads,) = torch.autograd.grad(result.surrogate.sum(), x)
            elapsed = time.perf_counter() - start
            grads = grads / result.logits_scale
        else:
            rows = []
            start = time.perf_counter()
            for _ in range(num_samples):
                x = base.clone().requires_grad_(True)
                result = estimator(x, f, generator=generator)
                rows.append(torch.autograd.grad(result.surrogate.sum(), x)[0] / result.logits_scale)
            elapsed = time.perf_counter() - start
            grads = torch.stack(rows)
    grads = grads.detach()
    flat = grads.reshape(num_samples, -1)
    g = target.reshape(-1).to(flat.dtype)
    mean = flat.mean(0)
    variance = flat.var(0, unbiased=True)
    return GradientStats(
        mean=mean.reshape(base.shape),
        exact=target,
        bias=(mean - g).reshape(base.shape),
        variance=variance.reshape(base.shape),
        total_variance=float(variance.sum()),
        bias_norm=float((mean - g).norm()),
        mse=float(((flat - g) ** 2).sum(-1).mean()),
        cosine=float(_cosine(mean, g)),
        mean_cosine=float(_cosine(flat, g.expand_as(flat)).mean()),
        seconds_per_estimate=elapsed / num_samples,
        num_samples=num_samples,
    )
