r"""Score-function (REINFORCE) estimators and their baselines.

All four are unbiased for :math:`\nabla_\theta\,\mathbb E_{z\sim q_\theta}[f(z)]` with exact
one-hot samples ``z``; they differ in the baseline :math:`b` subtracted from :math:`f`:

.. math:: \hat g = \big(f(z) - b\big)\,\nabla_\theta \log q_\theta(z),
          \qquad \mathbb E[b\,\nabla_\theta\log q_\theta(z)] = 0
          \text{ whenever } b \text{ does not depend on } z .

``f`` needs no gradient in ``z`` (it may be a black box, e.g. a reward); parameters used inside
``f`` receive :math:`\nabla_\phi f(z)` from the surrogate. Stateful baselines (``sf-ema``,
``nvil``) are updated and trained only in training mode (``module.train()``, the default); in
``module.eval()`` they are frozen, so successive calls are independent draws.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._base import Estimator, EstimatorResult, LossFn, call_f, register
from ._score import (
    ZeroStartMLP,
    _MultiSampleEstimator,
    check_categorical,
    check_positive_int,
    check_unit_interval,
    log_prob,
    network_input_size,
    one_hot_sample,
)

__all__ = ["NVIL", "EMABaseline", "LeaveOneOut", "ScoreFunction"]


def _reinforce(logits: Tensor, z: Tensor, loss: Tensor, signal: Tensor) -> Tensor:
    r"""``loss + sg(signal) * log q(z)``: gradient :math:`\nabla_\phi f + \text{signal}\,
    \nabla_\theta \log q(z)`."""
    return loss + signal.detach() * log_prob(logits, z)


@register("sf", "reinforce", "score-function")
class ScoreFunction(Estimator):
    r"""The score-function estimator, REINFORCE (Williams 1992; Glynn 1990), without baseline.

    .. math:: \hat g = f(z)\,\nabla_\theta \log q_\theta(z), \qquad z \sim q_\theta .

    Unbiased, works for any ``f`` (no gradient in ``z`` needed), and has the highest variance of
    the family: use it as the reference, or where nothing else applies. Reference:
    Williams, *Simple statistical gradient-following algorithms for connectionist reinforcement
    learning*, Machine Learning 8 (1992).

    Call: ``est(logits, f, generator=g)`` with ``logits`` ``(*batch, N, K)``; ``f`` receives the
    one-hot sample ``(*batch, N, K)`` and returns ``(*batch)``. The result's ``value`` is
    ``f(z)`` ``(*batch)`` and ``sample`` is ``z``.

    Raises:
        TypeError: non-tensor or non-floating logits, ``f`` not callable.
        ValueError: logits with fewer than 2 dimensions, NaN logits, ``f`` returning another shape.
    """

    unbiased = True
    learning_signal = True
    reports_signal = True
    single_evaluation = True

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        x = check_categorical(logits, f)
        z = one_hot_sample(x, generator)
        loss = call_f(f, z, x.shape[:-2])
        return EstimatorResult(_reinforce(x, z, loss, loss), loss.detach(), z, signal=loss.detach())


@register("sf-ema", "reinforce-ema")
class EMABaseline(Estimator):
    r"""Score function with an exponential-moving-average baseline.

    .. math:: \hat g = (f(z) - b_t)\,\nabla_\theta\log q_\theta(z), \qquad
              m_t = \beta m_{t-1} + (1-\beta)\,\overline{f}_t, \quad
              b_t = m_{t-1} / (1 - \beta^{t-1})

    where :math:`\overline f_t` is the batch mean of :math:`f` at call :math:`t` and the division
    removes the bias towards the initial :math:`m_0 = 0` (as in Adam); :math:`b_1 = 0`. The
    baseline used at a call is the one from *before* that call's samples, so the estimate is
    unbiased (Williams 1992 discusses reinforcement baselines; this is the common running-average
    form). Use it when ``f``'s mean drifts slowly and a learned baseline is not worth it.

    Args:
        decay: :math:`\beta \in [0, 1)`.

    State: buffers ``running_mean`` (:math:`m`) and ``num_updates`` (:math:`t`), updated in
    training mode only; ``eval()`` freezes them.
    """

    unbiased = True
    learning_signal = True
    reports_signal = True
    single_evaluation = True
    running_mean: Tensor
    num_updates: Tensor

    def __init__(self, decay: float = 0.9) -> None:
        super().__init__()
        self.decay = check_unit_interval(decay, "decay")
        self.register_buffer("running_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def baseline(self) -> float:
        """The baseline the next call will subtract (0 before any update)."""
        t = int(self.num_updates)
        return 0.0 if t == 0 else float(self.running_mean) / (1.0 - self.decay**t)

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        x = check_categorical(logits, f)
        z = one_hot_sample(x, generator)
        # Read before f runs: an f that calls this estimator again (the tokens of a sequence,
        # nested) would otherwise update the average with this very sample first.
        baseline = self.baseline
        loss = call_f(f, z, x.shape[:-2])
        signal = loss.detach() - baseline
        surrogate = _reinforce(x, z, loss, signal)
        if self.training and loss.numel() > 0:
            with torch.no_grad():
                mean = loss.detach().mean().to(self.running_mean.dtype)
                self.running_mean.mul_(self.decay).add_((1 - self.decay) * mean)
                self.num_updates.add_(1)
        return EstimatorResult(surrogate, loss.detach(), z, signal=signal)


@register("rloo", "reinforce-loo", "loo")
class LeaveOneOut(_MultiSampleEstimator):
    r"""Score function with the leave-one-out baseline over M samples (RLOO).

    .. math:: \hat g = \frac1M\sum_{m=1}^M \Big(f(z_m) - \frac{1}{M-1}\sum_{j\ne m} f(z_j)\Big)
              \nabla_\theta \log q_\theta(z_m), \qquad z_1..z_M \overset{iid}{\sim} q_\theta .

    Each sample's baseline is independent of that sample, so the estimator is unbiased for
    :math:`\nabla\,\mathbb E f`; it needs no state and no learned parts. Kool, van Hoof & Welling,
    *Buy 4 REINFORCE samples, get a baseline for free!* (ICLR workshop 2019); the same baseline
    as VIMCO's (Mnih & Rezende 2016, arXiv:1602.06725) for a single-sample objective. Use it when
    M evaluations of ``f`` per example are affordable: it is the strongest state-free baseline.

    ``f`` is called once on the stacked samples ``(M, *batch, N, K)`` and returns
    ``(M, *batch)``; ``value`` is that ``(M, *batch)`` and ``sample`` the ``(M, *batch, N, K)``
    samples. The surrogate's gradient for parameters inside ``f`` is the mean over the M samples.

    Args:
        num_samples: :math:`M \ge 2`.
    """

    unbiased = True
    learning_signal = True

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        x = check_categorical(logits, f)
        m = self.num_samples
        z = one_hot_sample(x, generator, m)
        loss = call_f(f, z, torch.Size((m, *x.shape[:-2])))
        others = (loss.detach().sum(0, keepdim=True) - loss.detach()) / (m - 1)
        surrogate = _reinforce(x, z, loss, loss.detach() - others).mean(0)
        return EstimatorResult(surrogate, loss.detach(), z)


def _apply(module: nn.Module, inp: Tensor) -> Tensor:
    """``module(inp)`` with ``inp`` cast to the module's parameter dtype (if it has any)."""
    param = next(module.parameters(), None)
    return module(inp if param is None else inp.to(param.dtype))


@register("nvil")
class NVIL(Estimator):
    r"""Neural variational inference and learning: a learned, input-dependent baseline with
    centring and variance normalisation (Mnih & Gregor 2014, arXiv:1402.0030).

    .. math:: \ell = f(z) - b_\psi(x) - c, \qquad
              \hat g = \frac{\ell}{\max(1, \sqrt{v})}\,\nabla_\theta \log q_\theta(z),

    where :math:`b_\psi` is a small network of an input :math:`x` that does not depend on the
    sample, and :math:`c, v` are running estimates of the mean and variance of
    :math:`f - b_\psi` (:math:`c \leftarrow \alpha c + (1-\alpha)\,\mathrm{mean}`, same for
    :math:`v`, with :math:`\alpha` = ``momentum`` = 0.8 as in the paper). The values of
    :math:`b_\psi, c, v` used at a call are fixed before that call's samples are seen.

    What the normalisation scales. With ``normalize=True`` (the paper's choice) the learning
    signal of the logits, :math:`\ell`, is divided by :math:`s^{-1} = \max(1, \sqrt v)`; the
    gradient of parameters inside ``f`` (a decoder: the generative model) is not scaled, as in the
    paper, whose model gradient is :math:`\nabla \log p(x, h)`. The factor
    :math:`s = 1/\max(1, \sqrt v)` is returned as ``result.logits_scale``: in the paper the
    learning signal of the inference network is the whole :math:`\log p(x,h) - \log q(h|x)`, so a
    model that computes part of it in closed form from the same logits (an analytic KL) must
    scale that part's gradient by the same :math:`s`
    (:func:`~gumbel_softmax.estimators.scale_gradient`); the lab's VAE does. The estimate is then
    unbiased for the gradient times the positive batch-wide factor :math:`s`, which changes the
    step size of the inference network, never its expected direction; the factor is 1 until
    :math:`v > 1` (:attr:`scale` reports it). With ``normalize=False`` the estimate is unbiased.

    Baseline input: ``context`` passed at call time, ``(*batch, D)`` (e.g. the observation the
    encoder saw, as in the paper), else the probabilities ``softmax(logits)`` flattened to
    ``(*batch, N*K)``. Either way it is detached: the baseline never sends gradient to the logits.

    Training the baseline: in training mode the surrogate also contains the regression loss
    :math:`(\mathrm{sg}[f(z)] - c - b_\psi(x))^2`, so ``surrogate.sum().backward()`` gives
    :math:`\psi` its gradient and an optimiser over the estimator's parameters trains it. This
    term has zero gradient for the logits (its input and target are detached), so the logits'
    estimate stays as above. The running :math:`c, v` are updated in training mode too;
    ``eval()`` freezes everything.

    Args:
        baseline: an ``nn.Module`` mapping the input ``(*batch, D)`` to ``(*batch)``; default a
            ``D -> hidden (tanh) -> 1`` network whose output layer starts at zero, built here
            (so that ``parameters()`` is complete before an optimiser is made). Its ``D`` is
            ``context_features`` if given (then every call must pass ``context``), else
            ``in_features``, else ``N*K`` from ``event_shape``.
        event_shape: ``(N, K)`` of the latents, for the default network on probabilities.
        context_features: ``D`` of the ``context`` the baseline reads.
        in_features: ``D`` given directly.
        hidden: width of the default network (the paper used 100).
        momentum: :math:`\alpha \in [0, 1)`.
        normalize: divide the learning signal by :math:`\max(1, \sqrt v)`.

    Raises:
        ValueError: no ``baseline`` and none of ``context_features``, ``in_features``,
            ``event_shape``; a call without ``context`` when ``context_features`` was given; a
            ``context`` of the wrong shape.

    Use it for long training runs where ``f`` varies strongly with the input (amortised
    inference); for a fixed problem ``rloo`` needs no training.
    """

    unbiased = True
    learning_signal = True
    reports_signal = True
    single_evaluation = True
    needs_event_shape = True
    takes_context = True
    signal_mean: Tensor
    signal_var: Tensor

    def __init__(
        self,
        baseline: nn.Module | None = None,
        *,
        event_shape: tuple[int, int] | None = None,
        context_features: int | None = None,
        in_features: int | None = None,
        hidden: int = 100,
        momentum: float = 0.8,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if baseline is not None and not isinstance(baseline, nn.Module):
            raise TypeError(f"baseline must be an nn.Module, got {type(baseline).__name__}")
        self.hidden = check_positive_int(hidden, "hidden")
        self.momentum = check_unit_interval(momentum, "momentum")
        self.normalize = bool(normalize)
        self.needs_context = context_features is not None
        if baseline is None:
            baseline = ZeroStartMLP(
                network_input_size(context_features, in_features, event_shape), hidden
            )
        self.baseline = baseline
        self.register_buffer("signal_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("signal_var", torch.zeros((), dtype=torch.float64))

    @property
    def scale(self) -> float:
        r"""The factor :math:`1/\max(1, \sqrt v)` applied to the next estimate."""
        if not self.normalize:
            return 1.0
        return 1.0 / max(1.0, math.sqrt(float(self.signal_var)))

    def _baseline_input(self, x: Tensor, context: Tensor | None) -> Tensor:
        batch = x.shape[:-2]
        if context is None:
            if self.needs_context:
                raise ValueError(
                    "this NVIL baseline reads a context (context_features was given): pass "
                    "context=<tensor of shape (*batch, D)>"
                )
            return torch.softmax(x.detach(), -1).flatten(-2)
        if not isinstance(context, Tensor) or not context.is_floating_point():
            raise TypeError(f"context must be a floating tensor, got {type(context).__name__}")
        if context.shape[:-1] != batch or context.dim() != len(batch) + 1:
            raise ValueError(
                f"context must have shape (*batch, D) with batch {tuple(batch)}, "
                f"got {tuple(context.shape)}"
            )
        return context.detach().to(x.dtype)

    def forward(  # type: ignore[override]
        self,
        logits: Tensor,
        f: LossFn,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> EstimatorResult:
        x = check_categorical(logits, f)
        inp = self._baseline_input(x, context)
        z = one_hot_sample(x, generator)
        # The running centre and scale are read before f runs: an f that calls this estimator
        # again (the tokens of a sequence, nested) would otherwise update them with this very
        # sample first, and the learning signal would no longer be independent of it.
        c = self.signal_mean.to(x.dtype, copy=True)
        scale = self.scale
        loss = call_f(f, z, x.shape[:-2])
        b = _apply(self.baseline, inp).to(x.dtype)
        if b.shape != loss.shape:
            raise ValueError(
                f"baseline must map its input {tuple(inp.shape)} to shape {tuple(loss.shape)}, "
                f"got {tuple(b.shape)}"
            )
        residual = loss.detach() - c - b
        surrogate = _reinforce(x, z, loss, residual.detach() * scale)
        if self.training:
            # Regression of the baseline onto the centred signal: gradient for psi only.
            surrogate = surrogate + residual.pow(2)
            with torch.no_grad():
                centred = (loss - b).detach().to(self.signal_mean.dtype).flatten()
                a = self.momentum
                if centred.numel() > 0:
                    self.signal_mean.mul_(a).add_((1 - a) * centred.mean())
                if centred.numel() > 1:
                    self.signal_var.mul_(a).add_((1 - a) * centred.var())
        return EstimatorResult(
            surrogate, loss.detach(), z, logits_scale=scale, signal=residual.detach()
        )
