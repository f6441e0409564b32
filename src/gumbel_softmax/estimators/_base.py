r"""The one interface every gradient estimator shares, and the registry of estimators by name.

An estimator estimates :math:`\nabla_\theta\, \mathbb E_{z \sim q_\theta}[f(z)]` for a factorised
categorical :math:`q_\theta` with ``logits`` of shape ``(*batch, N, K)`` (N independent variables of
K classes each). It is called as ``result = estimator(logits, f, generator=...)`` where ``f`` maps
one-hot (or relaxed) samples ``z`` of shape ``(*sample, *batch, N, K)`` to a per-example loss of shape
``(*sample, *batch)``. ``result.surrogate.sum().backward()`` deposits the estimate in
``logits.grad`` (through whatever produced the logits) and in the parameters used inside ``f``.

Declared capabilities. What a training loop needs to know of an estimator is declared once, as
class attributes, and read without building it (``estimator_class(name).binary_only``):

============================  =======================================================================
``unbiased``                  the estimate is unbiased for :math:`\nabla\,\mathbb E f(z)`, z discrete
``binary_only``               it takes K = 2 only
``supports_masks``            it accepts ``-inf`` (masked) logits
``evaluates_relaxed``         ``f`` is also called off the vertices of the simplex (so ``f`` must be
                              defined, and differentiable, there)
``temperature_kind``          ``None`` (no temperature); ``"fixed"`` (a constructor option the method
                              keeps constant: plain straight-through); ``"scheduled"`` (meant to
                              follow a schedule: set ``est.temperature = schedule(step)``);
                              ``"learned"`` (a parameter the estimator trains itself)
``annealed``                  its annealing is the method (slope-annealed straight-through): an
                              experiment that keeps every other temperature fixed (the paper's
                              SBN) still anneals this one, with
                              :class:`~gumbel_softmax.schedules.SlopeAnneal`
``learnable_temperature``     a ``"scheduled"`` temperature can instead be learned
                              (``learn_temperature=True``)
``min_temperature``           the smallest temperature it accepts (0: any positive value)
``needs_event_shape``         it has learned parts whose size depends on ``(N, K)``: pass
                              ``event_shape`` to :func:`build` so they exist before an optimiser does
``takes_context``             it accepts ``context=`` (an input the samples do not depend on)
``draws``                     how the samples of one call are drawn: ``"independent"`` (each an
                              exact draw of :math:`q`); ``"without-replacement"`` (M distinct
                              joint states by Gumbel-top-k: only the first, ``sample[0]``, is
                              distributed as :math:`q`); ``"every-state"`` (no randomness: every
                              joint state once, the estimate is exact)
``max_states``                the largest joint state space :math:`K^N` it accepts (``None``: any);
                              :func:`build` and the call refuse a larger one
``multi_sample_bound``        it estimates the gradient of the S-sample bound
                              :math:`-\mathbb E\log\frac1S\sum_s e^{-f(z_s)}` (VIMCO), not of
                              :math:`\mathbb E f`: ``f`` returns per-sample negative log-weights
                              :math:`-\log w_s` and ``est.num_samples`` is S
``extra_temperatures``        names of further float temperatures besides ``temperature``,
                              each a settable, validated attribute saved in ``state_dict()``
``differentiates_twice``      training differentiates ``f`` twice (the variance gradient of a
                              learned control variate): AOTAutograd cannot, so under
                              ``torch.compile`` the call runs eagerly (a graph break), ``f`` too
``single_evaluation``         one call evaluates ``f`` once, on one sample ``(*batch, N, K)`` (no
                              stacked points, no M draws): T nested nodes (a sequence sampled one
                              token at a time, each fed back) then cost T evaluations of the
                              downstream function, where one that evaluates it at M points a call
                              costs :math:`M^T` (the sequence GAN of the lab takes only these)
``learning_signal``           the estimate for the logits uses ``f`` only through its values at
                              exact (one-hot) samples, and affinely: score-function terms
                              :math:`(f(z) - b)\,\nabla\log q(z)` with baselines that do not
                              depend on the sample, never :math:`\nabla_z f`. So an unbiased
                              estimate of :math:`f(z)` given :math:`z` may stand in for
                              :math:`f(z)` and the estimate stays unbiased: the lab's sequence GAN
                              gives these SeqGAN's per-token rollout reward
``reports_signal``            the result carries ``signal``: the per-example learning signal
                              :math:`f(z) - b` that multiplies :math:`\nabla\log q(z)` in its
                              one score-function term (for the variance normalisation of NVIL,
                              which divides that signal by its running standard deviation)
============================  =======================================================================

``unbiased`` means unbiased for the gradient of the estimator's objective: :math:`\mathbb E f(z)`,
or the S-sample bound when ``multi_sample_bound`` is set.

Everything an estimator learns or tracks is in its ``state_dict()`` (parameters, buffers, and the
temperature as extra state), so a checkpoint of it resumes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import torch
from torch import Tensor, nn

from .._numerics import check_logits, validation_enabled

__all__ = [
    "Draws",
    "Estimator",
    "EstimatorResult",
    "LossFn",
    "PathwiseEstimator",
    "TemperatureKind",
    "TemperedEstimator",
    "available",
    "build",
    "call_f",
    "check_state_space",
    "estimator_class",
    "get",
    "positive_float",
    "register",
    "scale_gradient",
]

LossFn = Callable[[Tensor], Tensor]
TemperatureKind = Literal["fixed", "scheduled", "learned"] | None
Draws = Literal["independent", "without-replacement", "every-state"]


def positive_float(value: object, name: str, *, minimum: float = 0.0) -> float:
    """``value`` as a float, checked to be finite and positive (and ``>= minimum`` when that is
    positive); the errors name ``name`` and the value. The one check of every estimator option
    that must be a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive float, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    return v


def check_state_space(cls: type[Estimator], n: int, k: int) -> int:
    """The joint state-space size :math:`K^N`, checked against ``cls.max_states``; the error
    names the size and the limit."""
    size = k**n
    if cls.max_states is not None and size > cls.max_states:
        raise ValueError(
            f"estimator {cls.registry_name!r} enumerates the joint states of N = {n} variables "
            f"of K = {k} classes: K**N = {size} states exceeds its max_states = "
            f"{cls.max_states}"
        )
    return size


def call_f(f: LossFn, z: Tensor, expected: torch.Size) -> Tensor:
    """``f(z)``, checked to have the per-example shape ``expected``."""
    out = f(z)
    if not isinstance(out, Tensor) or out.shape != expected:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"f must map samples of shape {tuple(z.shape)} to losses of shape "
            f"{tuple(expected)} (the leading dimensions of z), got {got}"
        )
    return out


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    r"""``x`` with its value unchanged (bit for bit) and its gradient multiplied by ``scale``:
    :math:`\mathrm{sg}(x) + s\,(x - \mathrm{sg}(x))`. Masked (``-inf``) entries pass unchanged.

    Use it to apply :attr:`EstimatorResult.logits_scale` to the other terms of the inference
    network's objective (e.g. an analytic KL computed from the same logits).

    Raises:
        TypeError: ``x`` not a tensor, ``scale`` not a float. ValueError: ``scale`` not
        positive and finite.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    scale = positive_float(scale, "scale")
    if scale == 1.0:
        return x
    return x.detach() + torch.where(torch.isfinite(x), x - x.detach(), 0.0) * scale


@dataclass(frozen=True)
class EstimatorResult:
    """What every estimator returns.

    Attributes:
        surrogate: ``(*batch)``; ``surrogate.sum().backward()`` produces the estimator's gradient
            of :math:`\\mathbb E[f(z)]` for the logits and for any parameters inside ``f``. Its
            value is not necessarily :math:`f` (score-function terms add zero-mean pieces).
        value: :math:`f` at the sample(s), detached, for logging: ``(*batch)`` or
            ``(M, *batch)`` for estimators that draw M samples.
        sample: the sample(s) ``f`` was evaluated at, detached: ``(*batch, N, K)`` or
            ``(M, *batch, N, K)``.
        logits_scale: the positive factor by which the estimator scaled the learning signal of
            the logits (1 for all but NVIL's variance normalisation). A model whose inference
            network has other loss terms from the same logits (an analytic KL) scales their
            gradient by the same factor with :func:`scale_gradient`, so that the whole learning
            signal of the inference network is normalised, as Mnih & Gregor (2014) do.
        estimate: ``(*batch)``, detached: the estimator's own estimate of its objective where
            the plain mean of ``value`` is not one (the q-weighted sum of ``exact`` and
            ``unordered-set``, the bound of ``vimco``); None for the others, whose objective
            estimate is ``value`` averaged over its samples (see :meth:`objective`).
        signal: ``(*batch)``, detached, from estimators that declare ``reports_signal``: the
            learning signal :math:`f(z) - b` by which their score-function term multiplies
            :math:`\\nabla\\log q(z)`, before any scaling (``sf``: :math:`f`; ``sf-ema``:
            :math:`f` less the running mean; ``darn``, ``muprop``: :math:`f` less the Taylor
            baseline :math:`b(z)`; ``nvil``: :math:`f - b_\\psi(x) - c`); None for the others.
            Its spread, not that of :math:`f`, is what NVIL's variance normalisation divides by:
            a good baseline leaves a signal far narrower than :math:`f`.
    """

    surrogate: Tensor
    value: Tensor
    sample: Tensor
    logits_scale: float = 1.0
    estimate: Tensor | None = None
    signal: Tensor | None = None

    def objective(self) -> Tensor:
        """``(*batch)``: the estimate of the objective, for logging: ``estimate`` when the
        estimator gives one, else ``value`` averaged over its leading sample dimension (if any)."""
        if self.estimate is not None:
            return self.estimate
        batch = self.surrogate.shape
        return self.value.reshape(-1, *batch).mean(0)


class Estimator(nn.Module):
    """Base class: subclasses implement :meth:`forward` with the shared signature and declare
    their capabilities (see the module docstring).

    Estimators are ``nn.Module`` so that those with learned parts (baselines, control variates,
    temperatures) carry their parameters and can be moved, saved and optimised like any model;
    estimators without learned parts simply have none. Learned parts are built in the
    constructor, so ``parameters()`` is complete before an optimiser is made.
    """

    registry_name: ClassVar[str]
    unbiased: ClassVar[bool] = False
    binary_only: ClassVar[bool] = False
    supports_masks: ClassVar[bool] = True
    evaluates_relaxed: ClassVar[bool] = False
    temperature_kind: ClassVar[TemperatureKind] = None
    annealed: ClassVar[bool] = False
    learnable_temperature: ClassVar[bool] = False
    min_temperature: ClassVar[float] = 0.0
    needs_event_shape: ClassVar[bool] = False
    takes_context: ClassVar[bool] = False
    draws: ClassVar[Draws] = "independent"
    max_states: ClassVar[int | None] = None
    multi_sample_bound: ClassVar[bool] = False
    extra_temperatures: ClassVar[tuple[str, ...]] = ()
    differentiates_twice: ClassVar[bool] = False
    single_evaluation: ClassVar[bool] = False
    learning_signal: ClassVar[bool] = False
    reports_signal: ClassVar[bool] = False

    @classmethod
    def check_temperature(cls, value: object) -> float:
        """``value`` as a temperature this estimator accepts, else a ValueError/TypeError naming
        it (run it on a schedule's lowest value before training)."""
        if cls.temperature_kind is None:
            raise TypeError(f"estimator {cls.__name__} has no temperature")
        return positive_float(value, "temperature", minimum=cls.min_temperature)

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        raise NotImplementedError

    def __call__(  # type: ignore[override]
        self,
        logits: Tensor,
        f: LossFn,
        *,
        generator: torch.Generator | None = None,
        context: Tensor | None = None,
    ) -> EstimatorResult:
        # The checks every estimator shares; shape rules are each estimator's own. The returned
        # logits carry the value check under torch.compile (see _numerics.require).
        logits = check_logits(logits, validate=validation_enabled(None))
        if not callable(f):
            raise TypeError(f"f must be a callable mapping samples to losses, got {f!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {generator!r}")
        call = _eager_call if self.differentiates_twice else nn.Module.__call__
        if self.takes_context:
            return call(self, logits, f, generator=generator, context=context)
        if context is not None:
            raise TypeError(f"{type(self).__name__} takes no context (takes_context is False)")
        return call(self, logits, f, generator=generator)


# Dynamo runs this eagerly (a graph break) instead of tracing it: the double backward through
# ``f`` that ``differentiates_twice`` estimators need is not supported by AOTAutograd. torch's
# lazy form of ``torch.compiler.disable``: that one imports Dynamo (and Triton) at once, which
# would make ``import gumbel_softmax`` heavy (tests/test_layering.py).
_eager_call = torch._disable_dynamo(nn.Module.__call__, recursive=True)


class TemperedEstimator(Estimator):
    """An estimator with a float temperature: ``est.temperature`` reads and sets it (validated
    by :meth:`check_temperature`), and ``state_dict()`` carries it as extra state."""

    temperature_kind: ClassVar[TemperatureKind] = "scheduled"

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self._temperature = self.check_temperature(temperature)

    @property
    def temperature(self) -> float | Tensor:
        """The temperature :math:`\\tau`."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._temperature = self.check_temperature(value)

    def get_extra_state(self) -> dict[str, Any]:
        return {"temperature": self._temperature}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._temperature = self.check_temperature(state["temperature"])


class PathwiseEstimator(Estimator):
    """An estimator that only changes how a sample is drawn and differentiated.

    Its :meth:`sample` is a drop-in differentiable sampler, and calling it evaluates ``f`` at
    that sample: the surrogate is ``f(z)`` itself (checked to have shape ``(*batch)``).
    """

    single_evaluation: ClassVar[bool] = True

    def sample(self, logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        z = self.sample(logits, generator=generator)
        loss = call_f(f, z, z.shape[:-2])
        return EstimatorResult(surrogate=loss, value=loss.detach(), sample=z.detach())


_E = TypeVar("_E", bound=type[Estimator])
_REGISTRY: dict[str, type[Estimator]] = {}
_ALIASES: dict[str, str] = {}


def register(name: str, *aliases: str) -> Callable[[_E], _E]:
    """Class decorator: make an estimator available as ``get(name)`` (and under ``aliases``)."""

    def deco(cls: _E) -> _E:
        for n in (name, *aliases):
            if n in _REGISTRY or n in _ALIASES:
                raise ValueError(f"estimator name {n!r} is already registered")
        _REGISTRY[name] = cls
        cls.registry_name = name
        for a in aliases:
            _ALIASES[a] = name
        return cls

    return deco


def available() -> list[str]:
    """The registered estimator names (without aliases), sorted."""
    return sorted(_REGISTRY)


def estimator_class(name: str) -> type[Estimator]:
    """The class registered as ``name`` (or an alias): its capabilities, without building it.

    Raises:
        TypeError: ``name`` is not a str. ValueError: an unknown name (the message lists the
        known ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise ValueError(f"unknown estimator {name!r}; available: {', '.join(available())}")
    return _REGISTRY[key]


def get(name: str, **kwargs: Any) -> Estimator:
    """Build the estimator registered as ``name`` (or an alias) with its keyword options.

    Raises:
        ValueError: an unknown name (the message lists the known ones), or a bad option.
    """
    return estimator_class(name)(**kwargs)


def build(
    name: str,
    *,
    event_shape: Sequence[int],
    context_features: int | None = None,
    **options: Any,
) -> Estimator:
    """Build ``name`` for latents of shape ``(*batch, *event_shape)`` = ``(*batch, N, K)``.

    The shape information goes to the estimators that declare they need it
    (``needs_event_shape``, and ``context_features`` to those that ``takes_context``), so that
    their learned parts exist before an optimiser is made; the others get ``options`` only. This
    is how a training loop builds any registered estimator without knowing which one it is.

    Raises:
        ValueError: an unknown name, an ``event_shape`` that is not ``(N, K)`` with K >= 2, a
            binary-only estimator with K != 2, or a bad option.
    """
    cls = estimator_class(name)
    shape = tuple(event_shape)
    if len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, int) for s in shape):
        raise ValueError(f"event_shape must be (N, K), two ints, got {event_shape!r}")
    if shape[0] < 1 or shape[1] < 2:
        raise ValueError(f"event_shape must be (N >= 1, K >= 2), got {event_shape!r}")
    if cls.binary_only and shape[1] != 2:
        raise ValueError(
            f"estimator {name!r} handles binary variables only (K = 2), got event_shape {shape}"
        )
    check_state_space(cls, shape[0], shape[1])
    if cls.needs_event_shape:
        options["event_shape"] = shape
    if context_features is not None and cls.takes_context:
        options["context_features"] = context_features
    return cls(**options)
