r"""Gumbel noise, exact categorical sampling, and the Gumbel-Softmax (Concrete) relaxation.

Every sampler takes ``logits`` of shape ``(*batch, K)`` along ``dim``, unnormalised log-probabilities
:math:`\log\alpha_k` in which ``-inf`` masks a class out, and a keyword-only ``generator``.
Half-precision inputs are computed in float32 and returned in their own dtype.

References: Gumbel (1954); Maddison, Tarlow & Minka, *A\* Sampling* (arXiv:1411.0030) for the
Gumbel-max trick; Jang, Gu & Poole (arXiv:1611.01144) and Maddison, Mnih & Teh (arXiv:1611.00712)
for the relaxation; Kool, van Hoof & Welling (arXiv:1903.06059) for Gumbel-top-k.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from . import backends as _backends
from ._numerics import (
    check_all_masked,
    check_dim,
    check_generator,
    check_hard,
    check_logits,
    check_noise,
    check_temperature,
    gumbel_noise,
    logistic_noise,
    require,
    strict_validation,
    upcast,
    validation_enabled,
)

__all__ = [
    "gumbel",
    "gumbel_like",
    "gumbel_softmax",
    "relaxed_bernoulli",
    "sample_categorical",
    "sample_without_replacement",
    "straight_through",
]


def gumbel(
    shape: Sequence[int] | torch.Size,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Standard Gumbel noise, :math:`G = -\log(-\log U)` with :math:`U \sim \mathcal U(0, 1)`.

    Its CDF is :math:`\exp(-e^{-g})`, its mean the Euler-Mascheroni constant. The uniforms are
    clamped to ``(tiny, 1)`` in the dtype we compute in (float32 for 16-bit dtypes), so the noise is
    finite in every floating dtype; ``gumbel_softmax._numerics`` documents the bounds.

    Args:
        shape: output shape.
        dtype: a floating dtype (default: ``torch.get_default_dtype()``).
        device: output device.
        generator: the random source; the global generator is untouched when one is given.

    Returns:
        A tensor of ``shape`` and ``dtype``.

    Raises:
        TypeError: if ``dtype`` is not floating, or ``generator`` is not a ``torch.Generator``.
        ValueError: a ``generator`` on another device than ``device``.
    """
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    check_generator(generator, device)
    return gumbel_noise(shape, dtype=dtype, device=device, generator=generator).to(dtype)


def gumbel_like(tensor: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Standard Gumbel noise with the shape, dtype and device of ``tensor``; see :func:`gumbel`."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    return gumbel(tensor.shape, dtype=tensor.dtype, device=tensor.device, generator=generator)


def _perturbed(
    logits: Tensor,
    dim: int,
    generator: torch.Generator | None,
    noise: Tensor | None,
    validate_args: bool | None,
) -> tuple[Tensor, int]:
    """Checks the input and returns ``logits + G`` in the compute dtype, with ``dim`` normalised.

    Categorical logits must be below ``+inf`` (when validating): a class of infinite
    log-probability leaves no distribution, and ``inf - inf`` in the softmax gives NaN.
    """
    validate, strict = validation_enabled(validate_args), strict_validation(validate_args)
    logits = check_logits(logits, validate=validate, finite_above=True, strict=strict)
    d = check_dim(logits, dim)
    if noise is None:
        check_generator(generator, logits.device)
    if validate:
        logits = check_all_masked(logits, d, strict=strict)
    x = upcast(logits)
    if noise is None:
        g = gumbel_noise(logits.shape, dtype=x.dtype, device=x.device, generator=generator)
    else:
        noise = check_noise(noise, logits.shape, kind="Gumbel", validate=validate, strict=strict)
        g = noise.to(x.dtype)
    if noise is None:  # our own fresh noise: add the logits into it instead of allocating
        return g.add_(x), d
    return x + g, d


def sample_categorical(
    logits: Tensor,
    *,
    dim: int = -1,
    generator: torch.Generator | None = None,
    one_hot: bool = False,
    validate_args: bool | None = None,
) -> Tensor:
    r"""Exact categorical samples by the Gumbel-max trick.

    .. math:: k^\star = \arg\max_k\,(\log\alpha_k + G_k), \qquad
              P(k^\star = k) = \alpha_k / \textstyle\sum_i \alpha_i .

    Args:
        logits: ``(*batch, K)`` unnormalised log-probabilities along ``dim``; ``-inf`` masks.
        dim: the class dimension.
        generator: the random source.
        one_hot: return one-hot vectors of ``logits``' shape and dtype instead of indices.
        validate_args: check for NaN or ``+inf`` logits and all-masked rows (default: on,
            unless Python runs with ``-O``).

    Returns:
        ``(*batch)`` int64 indices, or ``(*batch, K)`` one-hot vectors.

    Raises:
        TypeError: non-floating ``logits``, a ``generator`` that is not a ``torch.Generator``.
        ValueError: NaN or ``+inf`` logits, an all-masked row, a ``generator`` on another
        device.
    """
    z, d = _perturbed(logits, dim, generator, None, validate_args)
    index = z.argmax(d)
    if not one_hot:
        return index
    return torch.zeros_like(logits).scatter_(d, index.unsqueeze(d), 1.0)


def sample_without_replacement(
    logits: Tensor,
    k: int,
    *,
    dim: int = -1,
    generator: torch.Generator | None = None,
    validate_args: bool | None = None,
) -> Tensor:
    r"""``k`` distinct classes drawn without replacement, by Gumbel-top-k (arXiv:1903.06059).

    The indices of the ``k`` largest :math:`\log\alpha_i + G_i`, in decreasing order, are
    distributed as ``k`` successive categorical draws, each renormalised over the classes not
    yet drawn:
    :math:`P(i_1,\dots,i_k) = \prod_{j=1}^{k} \alpha_{i_j} / \sum_{l \notin \{i_1..i_{j-1}\}} \alpha_l`.

    Args:
        logits: ``(*batch, K)`` unnormalised log-probabilities along ``dim``; ``-inf`` masks.
        k: how many classes, ``1 <= k <= K``, and at most the number of unmasked classes.

    Returns:
        int64 indices of shape ``logits.shape`` with ``dim`` of size ``k``, in sampled order.

    Raises:
        ValueError: ``k`` out of range, or fewer than ``k`` unmasked classes in a row; and as
        :func:`sample_categorical`.
    """
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {k!r}")
    check_logits(logits, validate=False)
    d = check_dim(logits, dim)
    size = logits.shape[d]
    if not 1 <= k <= size:
        raise ValueError(f"k must satisfy 1 <= k <= K = {size}, got k={k}")
    if validation_enabled(validate_args):
        strict = strict_validation(validate_args)
        logits = require(logits, "k_unmasked", name="logits", dim=d, k=k, strict=strict)
    z, d = _perturbed(logits, dim, generator, None, validate_args)
    return z.topk(k, dim=d, sorted=True).indices


def straight_through(hard: Tensor, soft: Tensor) -> Tensor:
    r"""The value of ``hard`` with the gradient of ``soft`` (Bengio, Léonard & Courville 2013).

    Computed as ``hard + (soft - soft.detach())``: the bracket is exactly zero for finite
    ``soft``, so the forward value is ``hard`` bit for bit (a one-hot stays exactly one-hot), while
    :math:`\partial/\partial\,\mathrm{soft}` is the identity.

    Raises:
        TypeError: ``hard`` or ``soft`` not a tensor. ValueError: their shapes differ (a
        broadcast would silently change the sample's shape or sum the gradient).
    """
    for name, t in (("hard", hard), ("soft", soft)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if hard.shape != soft.shape:
        raise ValueError(
            f"hard and soft must have the same shape, got {tuple(hard.shape)} and "
            f"{tuple(soft.shape)}"
        )
    return hard.detach() + (soft - soft.detach())


class _TemperedSoftmax(torch.autograd.Function):
    r"""``y = softmax(z / tau)`` whose backward needs only the output ``y``.

    With :math:`a = y \odot (g - \langle g, y\rangle)` (the softmax backward),
    :math:`\partial L/\partial z = a / \tau` and, since :math:`\sum_k a_k = 0` lets
    :math:`z_k/\tau` be replaced by :math:`\log y_k`,
    :math:`\partial L/\partial \tau = -\tfrac{1}{\tau} \sum_k a_k \log y_k`. Classes with
    :math:`y_k = 0` have :math:`a_k = 0` and drop out, so masks and tiny temperatures give no NaN.
    """

    @staticmethod
    def forward(ctx, z: Tensor, tau: Tensor, dim: int) -> Tensor:  # type: ignore[override]
        y = torch.softmax(z / tau, dim)
        ctx.save_for_backward(y, tau)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        y, tau = ctx.saved_tensors
        # a = y * (g - <g, y>), in one fused pass (the softmax backward kernel).
        a = torch.ops.aten._softmax_backward_data(g, y, ctx.dim, y.dtype)
        grad_z = a / tau if ctx.needs_input_grad[0] else None
        grad_tau = None
        if ctx.needs_input_grad[1]:
            log_y = torch.where(y > 0, y, 1.0).log()
            grad_tau = (-(a * log_y).sum(ctx.dim, keepdim=True) / tau).sum_to_size(tau.shape)
        return grad_z, grad_tau, None


class _TemperedSigmoid(torch.autograd.Function):
    r"""``y = sigmoid(z / tau)``, differentiable everywhere including ``z = +-inf``.

    With :math:`s = z/\tau` and :math:`d = \sigma(s)\sigma(-s)` (computed so, not as
    :math:`y(1-y)`, which cancels catastrophically near 1): :math:`\partial L/\partial z = g d/\tau`
    and :math:`\partial L/\partial\tau = -g d s/\tau`, taken as 0 where :math:`d = 0`
    (saturated or infinite :math:`s`), where autograd would give :math:`0\cdot\infty`.
    """

    @staticmethod
    def forward(ctx, z: Tensor, tau: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(z, tau)
        return torch.sigmoid(z / tau)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, Tensor | None]:  # type: ignore[override]
        z, tau = ctx.saved_tensors
        s = z / tau
        a = g * torch.sigmoid(s) * torch.sigmoid(-s)
        grad_z = a / tau if ctx.needs_input_grad[0] else None
        grad_tau = None
        if ctx.needs_input_grad[1]:
            grad_tau = (-torch.where(a != 0, a * s, 0.0) / tau).sum_to_size(tau.shape)
        return grad_z, grad_tau


def _temperature_for(
    temperature: float | Tensor, like: Tensor, dim: int, validate_args: bool | None
) -> Tensor:
    """The temperature as a tensor that broadcasts against ``like`` with the class axis at ``dim``."""
    batch = like.shape[:dim] + like.shape[dim + 1 :]
    t = check_temperature(temperature, batch, strict=strict_validation(validate_args))
    if isinstance(t, float):  # a fill, not a host-to-device copy: no synchronisation on CUDA
        return torch.full((), t, dtype=like.dtype, device=like.device)
    return upcast(t).to(like.dtype).expand(batch).unsqueeze(dim)


def gumbel_softmax(
    logits: Tensor,
    temperature: float | Tensor = 1.0,
    *,
    hard: bool | Tensor = False,
    dim: int = -1,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    validate_args: bool | None = None,
    backend: str | None = None,
) -> Tensor:
    r"""A Gumbel-Softmax (Concrete) sample, relaxed or straight-through.

    .. math:: y_k = \frac{\exp((\log\alpha_k + G_k)/\tau)}{\sum_i \exp((\log\alpha_i + G_i)/\tau)},
              \qquad G_k \overset{iid}{\sim} \mathrm{Gumbel}(0, 1).

    With ``hard=True`` the forward value is the one-hot :math:`\arg\max_k(\log\alpha_k + G_k)`
    (an exact categorical sample, by the rounding property) and the gradient is that of the
    relaxed :math:`y` (straight-through Gumbel-Softmax, Jang et al. 2017, arXiv:1611.01144).

    The backward uses only the saved output:
    :math:`\partial L/\partial\log\alpha = y \odot (g - \langle g, y\rangle)/\tau`.

    Args:
        logits: ``(*batch, K)`` unnormalised log-probabilities along ``dim``; ``-inf`` masks a class,
            which then gets exactly zero mass.
        temperature: :math:`\tau > 0`, a float or a tensor broadcastable to ``batch`` (the shape of
            ``logits`` without ``dim``); it may require grad (a learned temperature).
        hard: straight-through: one-hot forward, relaxed gradient. A Python bool, or a 0-d bool
            tensor (on CUDA or under ``torch.compile`` it is not read on the host: both samples
            are computed and one selected with ``torch.where``).
        dim: the class dimension.
        generator: the random source, a ``torch.Generator`` on ``logits``' device; the global
            generator is untouched when one is given.
        noise: pre-drawn Gumbel noise of ``logits``' shape (common random numbers); overrides
            ``generator``.
        validate_args: check for NaN or ``+inf`` logits, NaN ``noise`` and all-masked rows
            (default: on, unless Python runs with ``-O``). On CUDA the default checks are
            asynchronous (``torch._assert_async``: no host synchronisation; a failure is a
            device-side assertion); ``validate_args=True`` given explicitly makes them raise
            the ``ValueError`` there too, at one host synchronisation each. See
            ``gumbel_softmax._numerics``.
        backend: which code computes the sample: ``"reference"`` (this module), ``"numba"``
            (fused CPU kernel), ``"triton"`` (fused GPU kernel), or ``None``/``"auto"``: the
            environment variable ``GUMBEL_SOFTMAX_BACKEND`` if set, else the fastest available
            for the device. The fused kernels draw their own noise (reproducible from
            ``generator``); ``noise=`` takes the reference path. See
            :mod:`gumbel_softmax.backends`.

    Returns:
        A tensor of ``logits``' shape and dtype, on the simplex along ``dim``.

    Raises:
        TypeError: non-floating ``logits``, ``temperature`` or ``noise``; ``hard`` not a bool or
        a 0-d bool tensor; ``generator`` not a ``torch.Generator``.
        ValueError: a non-positive or non-finite temperature, or one whose shape does not
        broadcast to ``batch``; NaN or ``+inf`` logits, an all-masked row, NaN ``noise``, when
        validating; ``noise`` of the wrong shape; a ``generator`` on another device; an unknown
        ``backend``, a fused ``backend`` with ``noise`` or on a device it does not run on.
        BackendUnavailableError: a ``backend`` named explicitly that cannot load here.

    Numerics: 16-bit inputs are computed in float32; softmax subtracts the row maximum, so logits
    of ±1e4 at τ = 1e-3 stay finite, and masked or underflowed classes contribute no NaN to the
    temperature's gradient (see ``_TemperedSoftmax``).
    """
    hard = check_hard(hard)
    fused = _backends.resolve_backend(backend, logits, noise=noise)
    if fused is not None and isinstance(hard, bool):
        return _backends.fused_gumbel_softmax(
            fused,
            logits,
            temperature,
            hard=hard,
            dim=dim,
            generator=generator,
            validate_args=validate_args,
        )
    z, d = _perturbed(logits, dim, generator, noise, validate_args)
    tau = _temperature_for(temperature, z, d, validate_args)
    y = _TemperedSoftmax.apply(z, tau, d)
    if hard is not False:
        index = z.argmax(d, keepdim=True)
        st = straight_through(torch.zeros_like(y).scatter_(d, index, 1.0), y)
        y = st if hard is True else torch.where(hard, st, y)
    return y.to(logits.dtype)


def relaxed_bernoulli(
    logits: Tensor,
    temperature: float | Tensor = 1.0,
    *,
    hard: bool | Tensor = False,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    validate_args: bool | None = None,
) -> Tensor:
    r"""A binary Concrete (relaxed Bernoulli) sample through logistic noise.

    .. math:: y = \sigma\!\left(\frac{\log\alpha + L}{\tau}\right), \qquad
              L = \log U - \log(1 - U) \sim \mathrm{Logistic}(0, 1),

    the two-class Gumbel-Softmax with :math:`\log\alpha` the log-odds (Maddison et al. 2017,
    arXiv:1611.00712, section 3.3). With ``hard=True`` the forward value is
    :math:`\mathbb 1[\log\alpha + L > 0]`, an exact Bernoulli(:math:`\sigma(\log\alpha)`) sample, and
    the gradient is the relaxed sample's.

    Args:
        logits: log-odds of any shape; ``-inf`` and ``+inf`` give exactly 0 and 1.
        temperature: :math:`\tau > 0`, a float or a tensor broadcastable to ``logits``.
        hard: straight-through: {0, 1} forward, relaxed gradient; a bool or a 0-d bool tensor,
            as in :func:`gumbel_softmax`.
        generator: the random source, a ``torch.Generator`` on ``logits``' device.
        noise: pre-drawn logistic noise of ``logits``' shape; overrides ``generator``.
        validate_args: check for NaN in ``logits`` and ``noise`` (default: on, unless Python
            runs with ``-O``).

    Returns:
        A tensor of ``logits``' shape and dtype with values in [0, 1].

    Raises:
        TypeError / ValueError as :func:`gumbel_softmax`.
    """
    validate, strict = validation_enabled(validate_args), strict_validation(validate_args)
    logits = check_logits(logits, validate=validate, min_dim=0, strict=strict)
    hard = check_hard(hard)
    t = check_temperature(temperature, logits.shape, strict=strict)
    x = upcast(logits)
    if noise is None:
        check_generator(generator, logits.device)
        n = logistic_noise(logits.shape, dtype=x.dtype, device=x.device, generator=generator)
    else:
        noise = check_noise(noise, logits.shape, kind="logistic", validate=validate, strict=strict)
        n = noise.to(x.dtype)
    z = x + n
    tau = (  # a fill, not a host-to-device copy: no synchronisation on CUDA
        upcast(t).to(x.dtype)
        if isinstance(t, Tensor)
        else torch.full((), t, dtype=x.dtype, device=x.device)
    )
    y = _TemperedSigmoid.apply(z, tau)
    if hard is not False:
        st = straight_through((z > 0).to(y.dtype), y)
        y = st if hard is True else torch.where(hard, st, y)
    return y.to(logits.dtype)
