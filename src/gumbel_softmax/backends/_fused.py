r"""What the fused backends share: the random-number stream, the autograd function, the driver.

The random numbers
------------------
A kernel draws its own noise from SplitMix64 used as a counter-based generator (Steele, Lea &
Flood, *Fast splittable pseudorandom number generators*, OOPSLA 2014; the generator of
``java.util.SplittableRandom``, which passes BigCrush): hash number ``j`` is

.. math:: r_j = \operatorname{mix}(s + (j + 1)\,\gamma \bmod 2^{64}), \qquad
          \gamma = \texttt{0x9E3779B97F4A7C15},

where ``mix`` is two xor-shift-multiply rounds and a final xor-shift and ``s`` a 64-bit seed
drawn from the caller's ``torch.Generator`` (``torch.randint``), so the same generator state
gives the same sample and the global generator is untouched when one is given. Element ``i``
(its flat index in the ``(rows, K)`` layout with the class dimension last) takes, in float32,
24 bits of :math:`r_{\lfloor i/2 \rfloor}` (the top of its high 32-bit half for even ``i``, of
its low half for odd ``i``: one 64-bit multiply chain per two elements, the generator's main
cost), and in float64 53 bits of :math:`r_i`. Any element's number is computed without the
others', so the result does not depend on how the work is split.

The uniform follows ``gumbel_softmax._numerics`` exactly: those bits give :math:`k\,2^{-24}`
(or :math:`k\,2^{-53}`), the grid of ``torch.rand``, clamped up to ``finfo.tiny``; then
:math:`G_i = -\log(-\log U_i)`.

The autograd function
---------------------
Forward: ``y = softmax((x + G) / tau)`` along the last axis, or the one-hot of
:math:`\arg\max_k (x_k + G_k)` for ``hard`` (straight-through). Backward needs only the saved
relaxed sample :math:`y` (that of ``_TemperedSoftmax`` in ``functional.py``): with
:math:`a = y \odot (g - \langle g, y\rangle)`,

.. math:: \frac{\partial L}{\partial x} = \frac{a}{\tau}, \qquad
          \frac{\partial L}{\partial \tau} = -\frac{1}{\tau} \sum_{k:\,y_k>0} a_k \log y_k .

Memory: the forward allocates the output only; with gradients, ``hard`` also keeps the relaxed
sample, into which the backward writes the gradient when the graph is not retained. Peak: one
output (forward), two (forward and backward).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._numerics import (
    check_all_masked,
    check_dim,
    check_generator,
    check_logits,
    check_temperature,
    compute_dtype,
    saturating_cast,
    strict_validation,
    upcast,
    validation_enabled,
)

# Cephes' float32 logf (Moshier, Cephes Math Library): for x = 2^e (1 + f), f + 1 in
# [sqrt(1/2), sqrt(2)), log x = f - f^2/2 + f^3 P(f) + e ln 2, with P's coefficients below
# (highest degree first, for Horner's rule) and ln 2 split in two so that e ln 2 is exact in its
# high part (Cody & Waite). Both fused backends compute their float32 log from these.
LOGF_P = (
    7.0376836292e-2,
    -1.1514610310e-1,
    1.1676998740e-1,
    -1.2420140846e-1,
    1.4249322787e-1,
    -1.6668057665e-1,
    2.0000714765e-1,
    -2.4999993993e-1,
    3.3333331174e-1,
)
LN2_HI = 0.693359375
LN2_LO = -2.12194440e-4
# Cephes' float32 expf: exp(r) = 1 + r + r^2 Q(r) on |r| <= ln(2)/2 (numba backend; Triton uses
# its own exp), Q highest degree first.
EXPF_Q = (
    1.9875691500e-4,
    1.3981999507e-3,
    8.3334519073e-3,
    4.1665795894e-2,
    1.6666665459e-1,
    5.0000001201e-1,
)

# SplitMix64's increment (the golden ratio times 2^64) and its two mixing multipliers.
GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


class Kernels:
    """The interface a fused backend implements, on ``(rows, K)`` C-contiguous tensors.

    All tensors are in the compute dtype (float32 or float64) on one device; ``inv_tau`` holds
    :math:`1/\\tau` per row, or one value for all rows, and ``seed`` is a one-element int64
    tensor.
    """

    name: str = ""
    # whether forward counts NaN or +inf logits and all-masked rows itself, sparing the driver two
    # passes over the logits for validate_args
    checks_input: bool = False

    def supports(self, device: torch.device) -> bool:
        """Whether the kernels run on tensors of ``device``."""
        raise NotImplementedError

    def prepare(self, dtype: torch.dtype) -> None:
        """Compile what a compute ``dtype`` needs, once; raise if it cannot be compiled."""

    def forward(
        self, x: Tensor, inv_tau: Tensor, seed: Tensor, out: Tensor, soft: Tensor | None, hard: bool
    ) -> tuple[int, int]:
        """Write the sample into ``out`` (one-hot if ``hard``) and, if given, ``y`` into ``soft``.

        Returns how many logits are NaN or ``+inf`` and how many rows are all ``-inf`` if
        ``checks_input``, else ``(0, 0)``.
        """
        raise NotImplementedError

    def backward(
        self, y: Tensor, g: Tensor, inv_tau: Tensor, grad: Tensor, grad_tau: Tensor | None
    ) -> None:
        """Write :math:`a/\\tau` into ``grad`` (which may be ``y``) and, if given, the
        temperature's gradient per row into ``grad_tau`` (shape ``(rows,)``)."""
        raise NotImplementedError

    def noise(self, seed: Tensor, out: Tensor) -> None:
        """Write the Gumbel noise numbers ``0 .. out.numel() - 1`` of stream ``seed`` into ``out``."""
        raise NotImplementedError


def draw_seed(generator: torch.Generator | None, device: torch.device) -> Tensor:
    """A 64-bit seed from ``generator`` (or the default generator of ``device``), on its device.

    Kept as a tensor so that a GPU kernel reads it without synchronising with the host.
    """
    where = generator.device if generator is not None else device
    return torch.randint(
        -(2**63), 2**63 - 1, (1,), dtype=torch.int64, device=where, generator=generator
    )


def _graph_kept() -> bool:
    """Whether the running backward keeps the graph (``retain_graph=True``); True if unknown."""
    probe = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if probe is None else bool(probe())


def _to_rows(t: Tensor, d: int, dtype: torch.dtype) -> tuple[Tensor, torch.Size]:
    """``t`` in the kernels' layout: class axis ``d`` last, ``dtype``, ``(rows, K)``,
    C-contiguous; and its shape with the class axis moved last. Each step that would be a no-op
    is skipped: at small sizes a tensor operation costs about as much as the kernel."""
    last = d == t.dim() - 1
    x = t if last else t.movedim(d, -1)
    moved = x.shape
    if x.dtype != dtype:
        x = x.to(dtype)
    if x.dim() != 2:
        x = x.reshape(-1, moved[-1])
    if not x.is_contiguous():
        x = x.contiguous()
    return x, moved


def _from_rows(x: Tensor, moved: torch.Size, d: int) -> Tensor:
    """The inverse of :func:`_to_rows`'s layout (not of its dtype): ``(rows, K)`` back to the
    shape ``moved`` with the class axis at ``d``; no-op steps skipped likewise."""
    y = x if len(moved) == 2 else x.view(moved)
    return y if d == len(moved) - 1 else y.movedim(-1, d)


def _sample(
    kernels: Kernels,
    logits: Tensor,
    inv_tau: Tensor,
    seed: Tensor,
    hard: bool,
    d: int,
    want_grad: bool,
    found: list[int],
) -> tuple[Tensor, Tensor | None, torch.Size]:
    """The sample in ``logits``' layout and dtype; (``want_grad``) the relaxed sample in the
    kernels' ``(rows, K)`` layout, for the backward; the shape with the class axis moved last."""
    x, moved = _to_rows(logits, d, compute_dtype(logits.dtype))
    out = torch.empty_like(x)
    soft = torch.empty_like(x) if hard and want_grad else None
    found.extend(kernels.forward(x, inv_tau, seed, out, soft, hard))
    y = _from_rows(out, moved, d)
    if y.dtype != logits.dtype:
        y = y.to(logits.dtype)
    return y, (soft if soft is not None else out) if want_grad else None, moved


class FusedGumbelSoftmax(torch.autograd.Function):
    """``(logits, tau, seed) -> sample`` along axis ``d``; see the module docstring. ``tau``:
    ``(rows,)`` in the compute dtype, or ``(1,)`` for a temperature shared by all rows (then
    without gradient). The kernels' ``(rows, K)`` layout and compute dtype are made inside, so
    that the autograd graph holds this one node (each node costs microseconds per call). A call
    that needs no gradient skips this class (:func:`_sample` alone): ``Function.apply`` costs
    several times a small kernel."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: Tensor,
        tau: Tensor,
        seed: Tensor,
        kernels: Kernels,
        hard: bool,
        d: int,
        found: list[int],
    ) -> Tensor:
        y, saved, moved = _sample(kernels, logits, tau.reciprocal(), seed, hard, d, True, found)
        ctx.kernels = kernels
        ctx.hard = hard
        ctx.layout = (d, moved, logits.dtype)
        ctx.save_for_backward(saved, tau)
        return y

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, g: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None, None, None, None, None]:
        y, tau = ctx.saved_tensors
        d, moved, dtype = ctx.layout
        # hard: y is ours alone, so the gradient may take its memory once the graph is let go
        grad = y if ctx.hard and not _graph_kept() else torch.empty_like(y)
        grad_tau = torch.empty_like(tau) if ctx.needs_input_grad[1] else None
        g, _ = _to_rows(g, d, y.dtype)
        ctx.kernels.backward(y, g, tau.reciprocal(), grad, grad_tau)
        grad_logits = None
        if ctx.needs_input_grad[0]:
            # a 16-bit input: saturate rather than overflow, as upcast's backward does
            grad_logits = saturating_cast(_from_rows(grad, moved, d), dtype)
        return grad_logits, grad_tau, None, None, None, None, None


def fused_gumbel_softmax(
    kernels: Kernels,
    logits: Tensor,
    temperature: float | Tensor,
    *,
    hard: bool,
    dim: int,
    generator: torch.Generator | None,
    validate_args: bool | None,
) -> Tensor:
    """``functional.gumbel_softmax`` (without ``noise``) computed by ``kernels``: same checks,
    same errors, same result up to the noise, which the kernels draw themselves."""
    validate, strict = validation_enabled(validate_args), strict_validation(validate_args)
    early = validate and not kernels.checks_input  # else the kernel checks in passing
    # on CUDA these checks are queued on the device (torch._assert_async) unless strict
    logits = check_logits(logits, validate=early, finite_above=True, strict=strict)
    d = check_dim(logits, dim)
    check_generator(generator, logits.device)
    if early:
        logits = check_all_masked(logits, d, strict=strict)
    batch = logits.shape[:d] + logits.shape[d + 1 :]
    t = check_temperature(temperature, batch, strict=strict)
    dt, dev = compute_dtype(logits.dtype), logits.device
    if isinstance(t, float):  # one value, not one per row: no memory proportional to the batch
        tau = torch.full((1,), t, dtype=dt, device=dev)
    else:
        tau = upcast(t).to(device=dev, dtype=dt).expand(batch).reshape(-1)
    want_grad = torch.is_grad_enabled() and (logits.requires_grad or tau.requires_grad)
    seed = draw_seed(generator, dev)
    found: list[int] = []
    if want_grad:
        out = FusedGumbelSoftmax.apply(logits, tau, seed, kernels, hard, d, found)
    else:
        # a float's tau is ours alone: its reciprocal may take its memory
        inv_tau = tau.reciprocal_() if isinstance(t, float) else tau.reciprocal()
        out, _, _ = _sample(kernels, logits, inv_tau, seed, hard, d, False, found)
    if validate and any(found):  # the checks raise the reference's errors
        check_logits(logits, validate=True, finite_above=True, strict=True)
        check_all_masked(logits, d, strict=True)
    return out
