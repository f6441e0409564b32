r"""Score-function estimators with sample-dependent control variates: DARN and MuProp (Taylor
expansions of ``f``), REBAR and RELAX (the conditional Gumbel relaxation).

Each subtracts a control variate :math:`c(z)` from :math:`f(z)` in the score-function term and,
except DARN, adds back its exact gradient in expectation:

.. math:: \hat g = \big(f(z) - c(z)\big)\nabla_\theta\log q_\theta(z)
                   + \nabla_\theta\,\mathbb E_{q_\theta}[c(z)] .

These need ``f`` to be differentiable in ``z`` and defined off the vertices of the simplex:
DARN and MuProp evaluate it at a mean point, REBAR and RELAX at relaxed samples. All evaluations
of one call go through ``f`` once, stacked along a leading dimension.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._numerics import compute_dtype, gumbel_noise
from ..functional import _TemperedSoftmax
from ._base import Estimator, EstimatorResult, LossFn, call_f, positive_float, register
from ._score import (
    ZeroStartMLP,
    check_categorical,
    check_positive_int,
    inject_gradient,
    log_prob,
    network_input_size,
    one_hot_sample,
    variance_term,
)
from .rao import conditional_gumbel

__all__ = ["DARN", "REBAR", "RELAX", "MuProp"]

_NEEDS_GRAD = (
    "{name} differentiates f with respect to its input z; f returned a loss with no gradient "
    "for z (is f built from differentiable operations on z?)"
)


def _taylor(f: LossFn, z: Tensor, point: Tensor, name: str) -> tuple[Tensor, Tensor, Tensor]:
    r"""``f(z)``, ``f(point)`` and :math:`f'(\text{point})`, with ``f`` called once on
    ``stack([z, point])``. ``point`` is ``(*batch, N, K)`` and detached."""
    p = point.detach().requires_grad_(True)
    with torch.enable_grad():
        out = call_f(f, torch.stack([z, p]), torch.Size((2, *z.shape[:-2])))
        if not out.requires_grad:
            raise ValueError(_NEEDS_GRAD.format(name=name))
        (slope,) = torch.autograd.grad(out[1].sum(), p, retain_graph=True, allow_unused=True)
    if slope is None:
        raise ValueError(_NEEDS_GRAD.format(name=name))
    return out[0], out[1].detach(), slope


class _TaylorBaseline(Estimator):
    r"""Score function with the baseline :math:`b(z) = f(\bar z) + f'(\bar z)^\top(z - \bar z)`
    around :meth:`expansion_point`; with ``correct`` the term
    :math:`f'(\bar z)^\top \nabla_\theta \bar z` is added back (MuProp), else dropped (DARN)."""

    correct: bool
    evaluates_relaxed = True
    reports_signal = True

    def expansion_point(self, logits: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        x = check_categorical(logits, f)
        z = one_hot_sample(x, generator)
        point = self.expansion_point(x)
        name = str(getattr(self, "registry_name", type(self).__name__))
        loss, f_bar, slope = _taylor(f, z, point, name)
        baseline = f_bar + (slope * (z - point.detach())).sum((-1, -2))
        signal = (loss - baseline).detach()
        surrogate = loss + signal * log_prob(x, z)
        if self.correct:
            surrogate = surrogate + inject_gradient(point, slope, (-1, -2))
        return EstimatorResult(surrogate, loss.detach(), z, signal=signal)


@register("darn")
class DARN(_TaylorBaseline):
    r"""DARN's estimator as Jang, Gu & Poole (2017, arXiv:1611.01144, section 3.2) describe it:
    the score function with a first-order Taylor baseline around a fixed point and *no*
    correction term (Gregor et al. 2014, *Deep AutoRegressive Networks*, arXiv:1310.8499).

    .. math:: b(z) = f(\bar z) + f'(\bar z)^\top (z - \bar z), \qquad
              \hat g = \big(f(z) - b(z)\big)\,\nabla_\theta \log q_\theta(z),

    with :math:`\bar z = 1/2` for Bernoulli variables, here :math:`\bar z = (1/K, \dots, 1/K)`
    for each categorical (which is :math:`1/2` for K = 2). :math:`b` depends on :math:`z`, and
    the term :math:`\mu_b = \nabla_\theta \mathbb E[b(z)] = f'(\bar z)^\top \nabla_\theta
    \mathbb E[z]` that would correct for it is dropped, so exactly

    .. math:: \mathbb E[\hat g] = \nabla_\theta\,\mathbb E[f(z)]
              - f'(\bar z)^\top\,\nabla_\theta\,\mathbb E_{q_\theta}[z] .

    **Biased** whenever :math:`f'(\bar z)^\top\nabla_\theta\mathbb E[z] \ne 0`; in particular
    for a linear ``f`` the learning signal :math:`f - b` is identically zero. Jang et al. summarise
    the bias as "for non-quadratic f"; the expectation above (tested against enumeration in
    ``tests/estimators/test_control_variates.py``) is what this description computes. It is
    unbiased when :math:`f'(\bar z)` is orthogonal to every direction the mean can move in, e.g.
    when :math:`\bar z` is a stationary point of ``f``. Adding :math:`\mu_b` back gives an
    unbiased estimator (MuProp's, with a fixed expansion point). Provided to reproduce the
    paper's comparison; prefer ``muprop`` otherwise.

    ``f`` is called once on ``stack([z, z_bar])`` and must be differentiable in ``z``.
    """

    unbiased = False
    correct = False

    def expansion_point(self, logits: Tensor) -> Tensor:
        return torch.full_like(logits, 1.0 / logits.shape[-1])


@register("muprop")
class MuProp(_TaylorBaseline):
    r"""MuProp (Gu, Levine, Sutskever & Mnih 2016, arXiv:1511.05176): the first-order Taylor
    expansion of ``f`` around the mean-field point as a control variate.

    With :math:`\bar z = \mu_\theta = \mathbb E_{q_\theta}[z] = \mathrm{softmax}(\text{logits})`
    held fixed inside the baseline,

    .. math:: b(z) = f(\bar z) + f'(\bar z)^\top (z - \bar z), \qquad
              \hat g = \big(f(z) - b(z)\big)\nabla_\theta\log q_\theta(z)
                       + f'(\bar z)^\top \nabla_\theta \mu_\theta .

    Since :math:`b` is linear in :math:`z`, :math:`\nabla_\theta\mathbb E[b] =
    f'(\bar z)^\top\nabla_\theta\mu_\theta` exactly: unbiased for any ``f``, with low variance
    when ``f`` is close to linear over the simplex. This is the single-layer form of the paper's
    estimator (its deterministic mean-field pass is ``f`` at :math:`\mu`). Use it when ``f`` is
    differentiable in ``z`` and cheap to evaluate twice; it has no learned parts.

    ``f`` is called once on ``stack([z, mu])``; ``value`` is :math:`f(z)`.
    """

    unbiased = True
    correct = True

    def expansion_point(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits, -1)


class _ConditionalRelaxation(Estimator):
    r"""The machinery REBAR and RELAX share.

    With :math:`\log\theta = \log\mathrm{softmax}(\text{logits})`, :math:`u, v` uniform:
    :math:`z = \log\theta + G(u)`, :math:`b = H(z) = \text{one-hot}(\arg\max z)`, and the
    conditional relaxation :math:`\tilde z \sim p(z \mid b)` reparameterised by :math:`v`
    (Tucker et al. 2017, appendix; Grathwohl et al. 2018, appendix B):

    .. math:: \tilde z_b = -\log(-\log v_b), \qquad
              \tilde z_i = -\log\Big(-\frac{\log v_i}{\theta_i} - \log v_b\Big)\ (i \ne b),

    computed as :math:`-\mathrm{logaddexp}(\log(-\log v_i) - \log\theta_i,\ \log(-\log v_b))`.
    The estimate for the logits is

    .. math:: \hat g = \big(f(b) - c(\tilde z)\big)\nabla\log q(b)
              + \nabla c(z) - \nabla c(\tilde z),

    unbiased for any control variate :math:`c` because :math:`z` and :math:`\tilde z` have the
    same distribution. :math:`\hat g` is computed with autograd on a detached copy of the logits
    and injected into the surrogate, so parameters inside ``f`` receive exactly
    :math:`\nabla_\phi f(b)` (never the zero-mean control-variate terms) and the control variate's
    own parameters receive only their variance gradient (see :func:`._score.variance_term`).
    """

    unbiased = True
    evaluates_relaxed = True
    temperature_kind = "learned"
    differentiates_twice = True  # the variance gradient differentiates f's gradient

    def __init__(self, temperature: float, eta: float) -> None:
        super().__init__()
        t = positive_float(temperature, "temperature")
        if isinstance(eta, bool) or not isinstance(eta, (int, float)):
            raise TypeError(f"eta must be a float, got {eta!r}")
        e = float(eta)
        if e != e or abs(e) == float("inf"):
            raise ValueError(f"eta must be finite, got {eta!r}")
        self.log_temperature = nn.Parameter(torch.tensor(t, dtype=torch.float64).log())
        self.eta = nn.Parameter(torch.tensor(e, dtype=torch.float64))

    @property
    def temperature(self) -> float:
        """The current relaxation temperature :math:`\\lambda`."""
        return float(self.log_temperature.detach().exp())

    def control_variate(self, f_relaxed: Tensor, relaxed: Tensor) -> Tensor:
        """:math:`c` from ``f`` at relaxed samples ``relaxed`` ``(2, *batch, N, K)``."""
        raise NotImplementedError

    def forward(  # type: ignore[override]
        self, logits: Tensor, f: LossFn, *, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        x = check_categorical(logits, f)
        name = type(self).__name__
        dt = compute_dtype(x.dtype)
        batch = x.shape[:-2]
        with torch.enable_grad():
            xl = x.detach().to(dt).requires_grad_(True)
            log_theta = torch.log_softmax(xl, -1)
            noise = gumbel_noise(x.shape, dtype=dt, device=x.device, generator=generator)
            z = log_theta + noise
            index = z.detach().argmax(-1, keepdim=True)
            b = torch.zeros_like(z).scatter_(-1, index, 1.0)
            z_tilde = conditional_gumbel(log_theta, b, 1, generator=generator)[0]
            tau = self.log_temperature.exp().to(dt)
            relaxed = _TemperedSoftmax.apply(torch.stack([z, z_tilde]), tau, -1)
            out = call_f(
                f, torch.cat([b.unsqueeze(0), relaxed]).to(x.dtype), torch.Size((3, *batch))
            )
            out = out.to(dt)
            if not out[1:].requires_grad:
                raise ValueError(_NEEDS_GRAD.format(name=name.lower()))
            c = self.control_variate(out[1:], relaxed)
            train = self.training and any(p.requires_grad for p in self.parameters())
            (path,) = torch.autograd.grad(
                (c[0] - c[1]).sum(), xl, create_graph=train, retain_graph=True
            )
            # The score term in closed form, d log q(b) / d logits = b - softmax(logits), so that
            # its coefficient f(b) - c(z~) stays a function of the control variate's parameters
            # (the variance gradient needs it) without being differentiated for the logits.
            score = b - log_theta.detach().exp()
            coefficient = out[0].detach() - c[1]
            grad = coefficient[..., None, None] * score + path
        loss = out[0].to(x.dtype)
        surrogate = loss + inject_gradient(x, grad.to(x.dtype), (-1, -2))
        if train and torch.is_grad_enabled():
            with torch.enable_grad():
                term = variance_term(grad, self.parameters(), batch)
            if term is not None:
                surrogate = surrogate + term.to(x.dtype)
        return EstimatorResult(surrogate, loss.detach(), b.to(x.dtype))


@register("rebar")
class REBAR(_ConditionalRelaxation):
    r"""REBAR (Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein 2017, arXiv:1703.07370).

    The control variate is the Gumbel-Softmax relaxation of ``f`` itself, scaled by
    :math:`\eta`: :math:`c(z) = \eta\, f(\sigma_\lambda(z))` with
    :math:`\sigma_\lambda(z) = \mathrm{softmax}(z/\lambda)`, giving

    .. math:: \hat g = \big[f(b) - \eta f(\sigma_\lambda(\tilde z))\big]\nabla\log q(b)
              + \eta\,\nabla f(\sigma_\lambda(z)) - \eta\,\nabla f(\sigma_\lambda(\tilde z)),

    with :math:`z`, :math:`\tilde z` and :math:`b` as in :class:`_ConditionalRelaxation`.
    Unbiased for every :math:`\eta, \lambda`; low variance when the relaxation is good.

    Learned parameters: ``eta`` and ``log_temperature`` (:math:`\log\lambda`). As in the paper
    (section 3.3) they minimise the estimator's variance, using
    :math:`\nabla_{\eta,\lambda}\operatorname{Var}[\hat g] = \nabla_{\eta,\lambda}
    \mathbb E\lVert\hat g\rVert^2` (valid because :math:`\mathbb E\hat g` does not depend on
    them). In training mode the surrogate carries that gradient (summed over the batch, for the
    variance of the logits' gradient, computed by a second backward pass through ``f``), so one
    ``surrogate.sum().backward()`` and one optimiser step over the model's and the estimator's
    parameters train both; ``eval()`` (or ``requires_grad_(False)``) freezes them and skips the
    second pass. The paper minimises the variance of the gradient of the model's parameters; this
    minimises that of the logits', which is what the estimator sees.

    ``f`` is called once on the stacked ``(3, *batch, N, K)`` inputs
    ``[b, softmax(z/lambda), softmax(z_tilde/lambda)]`` and must be differentiable in ``z``.
    ``value`` is :math:`f(b)` and ``sample`` is :math:`b`.

    Args:
        temperature: initial :math:`\lambda > 0` (the paper initialises at 0.5).
        eta: initial :math:`\eta` (1.0).
    """

    def __init__(self, temperature: float = 0.5, eta: float = 1.0) -> None:
        super().__init__(temperature, eta)

    def control_variate(self, f_relaxed: Tensor, relaxed: Tensor) -> Tensor:
        return self.eta.to(f_relaxed.dtype) * f_relaxed


@register("relax")
class RELAX(_ConditionalRelaxation):
    r"""RELAX (Grathwohl, Choi, Wu, Roeder & Duvenaud 2018, arXiv:1711.00123).

    A learned control variate on the same conditional relaxation as REBAR:

    .. math:: c_\phi(z) = \eta\, f(\sigma_\lambda(z)) + r_\rho(\sigma_\lambda(z)), \qquad
              \hat g = \big[f(b) - c_\phi(\tilde z)\big]\nabla\log q(b)
              + \nabla c_\phi(z) - \nabla c_\phi(\tilde z),

    the paper's choice for discrete models (section 3.3 and its experiments: the relaxed ``f``
    plus a neural network :math:`r_\rho`). Unbiased for every :math:`\phi = (\eta, \lambda,
    \rho)`. With :math:`r_\rho \equiv 0` it is REBAR; the network lets ``c`` fit what the
    relaxation misses (e.g. an ``f`` that is a black box on the simplex).

    Learned parameters :math:`\phi`: trained like REBAR's, by
    :math:`\nabla_\phi\mathbb E\lVert\hat g\rVert^2` carried in the surrogate in training mode
    (Grathwohl et al., eq. 6 and algorithm 1; the official code's ``var_loss``). Optimise them
    with the model's parameters, or in a separate optimiser over ``estimator.parameters()``.

    Args:
        network: ``r_rho``, an ``nn.Module`` mapping relaxed samples ``(*s, N, K)`` to ``(*s)``;
            default a ``N*K -> hidden (tanh) -> 1`` network whose output starts at zero, built
            here (so that ``parameters()`` is complete before an optimiser is made): pass
            ``event_shape=(N, K)`` or ``in_features=N*K``.
        event_shape: ``(N, K)`` of the latents, for the default network.
        in_features: ``N*K`` given directly.
        hidden: width of the default network.
        temperature: initial :math:`\lambda` (0.5).
        eta: initial :math:`\eta` (1.0).

    Raises:
        ValueError: no ``network`` and neither ``event_shape`` nor ``in_features``.
    """

    needs_event_shape = True

    def __init__(
        self,
        network: nn.Module | None = None,
        *,
        event_shape: tuple[int, int] | None = None,
        in_features: int | None = None,
        hidden: int = 32,
        temperature: float = 0.5,
        eta: float = 1.0,
    ) -> None:
        super().__init__(temperature, eta)
        if network is not None and not isinstance(network, nn.Module):
            raise TypeError(f"network must be an nn.Module, got {type(network).__name__}")
        self.hidden = check_positive_int(hidden, "hidden")
        if network is None:
            d = network_input_size(None, in_features, event_shape)
            network = ZeroStartMLP(d, self.hidden, flatten=True)
        self.network = network

    def control_variate(self, f_relaxed: Tensor, relaxed: Tensor) -> Tensor:
        param = next(self.network.parameters(), None)
        inp = relaxed if param is None else relaxed.to(param.dtype)
        r = self.network(inp)
        if r.shape != f_relaxed.shape:
            raise ValueError(
                f"network must map relaxed samples {tuple(relaxed.shape)} to "
                f"{tuple(f_relaxed.shape)}, got {tuple(r.shape)}"
            )
        return self.eta.to(f_relaxed.dtype) * f_relaxed + r.to(f_relaxed.dtype)
