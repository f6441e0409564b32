"""Every registered estimator inside ``torch.compile`` gives what it gives eagerly.

Driven by ``available()``: a new estimator is covered without editing this file. A training
step (an encoder's logits, the estimator with a loss that has its own parameter, the surrogate's
backward) is run twice from the same state and the same generator seed: eagerly, and compiled with
``torch.compile(step, backend="aot_eager")`` (Dynamo's tracing and AOTAutograd's joint graph, the
parts where library code breaks; Inductor's code generation is the functional sampler's test, in
``tests/test_compile.py``, and is too slow to run per estimator here). Compiled, the samplers take
the pure-PyTorch path, so the eager run takes it too (``GUMBEL_SOFTMAX_BACKEND=reference``): the
two then draw the same numbers and must agree on the surrogate, every gradient (encoder, loss,
the estimator's own learned parts) and every state the call updates (running baselines), up to
float64 rounding (the compiled graph may reorder sums).

Estimators that declare ``differentiates_twice`` (their variance gradient needs a double backward
through ``f``, which AOTAutograd does not support) run eagerly inside the compiled function: the
same check shows that this works and is not a crash.
"""

from __future__ import annotations

import copy

import pytest
import torch
from _sf_bench import num_classes
from torch import nn

from gumbel_softmax.backends import BACKEND_ENV
from gumbel_softmax.estimators import available, build, estimator_class

N, BATCH, FEATURES = 3, 4, 5


class _Loss(nn.Module):
    """A quadratic loss with a parameter, defined on the simplex (relaxed samples too)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, N * k, dtype=torch.float64))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        v = z.flatten(-2)
        return (v @ self.w - 0.25) ** 2 + 0.1 * (v * v).sum(-1)


def _parts(name: str) -> tuple[nn.Linear, nn.Module, _Loss]:
    k = num_classes(name)
    torch.manual_seed(0)
    encoder = nn.Linear(FEATURES, N * k).double()
    estimator = build(name, event_shape=(N, k), context_features=FEATURES)
    estimator.double()
    return encoder, estimator, _Loss(k)


def _step(encoder: nn.Module, estimator: nn.Module, loss: nn.Module, x: torch.Tensor, seed: int):
    k = loss.w.numel() // N
    logits = encoder(x).view(BATCH, N, k)
    kw = {"context": x} if estimator_class(estimator.registry_name).takes_context else {}
    g = torch.Generator().manual_seed(seed)
    result = estimator(logits, loss, generator=g, **kw)
    return result.surrogate.sum()


@pytest.mark.parametrize("name", available())
def test_compiled_step_equals_eager(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV, "reference")  # the path compiled code takes
    eager = _parts(name)
    compiled = copy.deepcopy(eager)
    x = torch.randn(BATCH, FEATURES, generator=torch.Generator().manual_seed(1)).double()
    torch._dynamo.reset()
    step = torch.compile(_step, backend="aot_eager")
    values = []
    for parts, run in ((eager, _step), (compiled, step)):
        surrogate = run(*parts, x, 7)
        surrogate.backward()
        values.append(surrogate.detach())
    torch.testing.assert_close(values[1], values[0])
    for a, b in zip(eager, compiled, strict=True):
        for (what, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
            assert pa.grad is not None or pb.grad is None, what
            if pa.grad is not None:
                torch.testing.assert_close(pb.grad, pa.grad, msg=f"{name}: grad of {what}")
        # buffers the call updates (baselines, running moments), and the temperature
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            if isinstance(sa[key], torch.Tensor):
                torch.testing.assert_close(sb[key], sa[key], msg=f"{name}: state {key}")


@pytest.mark.parametrize("name", ["st", "arm"])  # the shared check, and the binary estimators'
def test_nan_logits_raise_in_compiled_code(name: str) -> None:
    encoder, estimator, loss = _parts(name)
    with torch.no_grad():
        encoder.bias[0] = torch.nan
    torch._dynamo.reset()
    step = torch.compile(_step, backend="aot_eager")
    with pytest.raises(ValueError, match=r"logits .*NaN"):
        step(encoder, estimator, loss, torch.zeros(BATCH, FEATURES, dtype=torch.float64), 7)
