r"""Every estimator that declares ``unbiased = True`` matches the exact gradient in expectation.

Driven by the registry: a newly registered estimator with ``unbiased = True`` is checked without
editing this file. Categorical estimators run on the four enumerated toy problems of
:func:`gumbel_softmax.diagnostics.toy_problems` ((N, K) = (2, 3) and (4, 4), a quadratic and a
non-linear objective), binary-only ones on quadratic and non-linear problems with K = 2.

Each estimator is first moved away from its initial state by a short training run (its running
statistics and learned parts: EMA and NVIL baselines, REBAR's eta and temperature, RELAX's
network), since unbiasedness must hold for every value of them, then frozen with ``eval()``, so
that the 20 000 rows of one batched call are independent draws. NVIL's normalisation makes its
estimate unbiased for the gradient times ``result.logits_scale``, which ``draw`` divides out.

The target is the gradient of the objective each estimator declares
(:func:`gumbel_softmax.diagnostics.exact_gradient_for`): :math:`\mathbb E f`, or for a
``multi_sample_bound`` estimator (VIMCO) the S-sample bound, enumerated over every S-tuple of
states; such estimators are built with S = 2 here so that the (4, 4) problems' 256**2 tuples stay
small. An estimator that draws nothing (``draws = "every-state"``) must give the exact gradient on
every call: two draws, equal to each other and to the target up to float64 rounding.
"""

from __future__ import annotations

import pytest
import torch
from _sf_bench import BINARY, STANDARD, draw, make, train_steps

from gumbel_softmax.diagnostics import ToyProblem, exact_gradient_for
from gumbel_softmax.estimators import available, estimator_class
from gumbel_softmax.testing import assert_close_mean

N_DRAWS = 20_000
UNBIASED = [name for name in available() if estimator_class(name).unbiased]
CASES = [
    (name, problem)
    for name in UNBIASED
    for problem in (BINARY if estimator_class(name).binary_only else STANDARD)
]


def test_the_unbiased_estimators_are_the_expected_ones() -> None:
    # a guard on the selection above: the papers' unbiased estimators are all in it
    assert {"sf", "sf-ema", "rloo", "nvil", "muprop", "rebar", "relax", "arm", "disarm"} <= set(
        UNBIASED
    )
    assert {"vimco", "unordered-set", "exact"} <= set(UNBIASED)  # issue 14
    assert "decoupled-st-gs" not in UNBIASED
    assert not {"gs", "st-gs", "st", "st-annealed", "gst", "gumbel-rao", "reinmax", "darn"} & set(
        UNBIASED
    )


@pytest.mark.parametrize(
    ("name", "problem"), CASES, ids=[f"{name}-{problem.name}" for name, problem in CASES]
)
def test_mean_of_many_draws_is_the_exact_gradient(name: str, problem: ToyProblem) -> None:
    n, k = problem.logits.shape
    cls = estimator_class(name)
    est = make(name, n, k, **({"num_samples": 2} if cls.multi_sample_bound else {}))
    train_steps(est, problem, steps=20, lr=0.02)  # away from the initial state
    est.eval()
    target = exact_gradient_for(est, problem.f, problem.logits)
    if cls.draws == "every-state":
        draws = draw(est, problem.logits, problem.f, 2, seed=sum(map(ord, name)))
        # zero variance, and the same sum as the enumeration in another order (and another
        # blocking of the batched products): float64 rounding only
        torch.testing.assert_close(draws[0], draws[1], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(draws[0], target, rtol=1e-12, atol=1e-12)
        return
    draws = draw(est, problem.logits, problem.f, N_DRAWS, seed=sum(map(ord, name)))
    # false-alarm rate 1e-3 per case, Bonferroni over the N*K coordinates
    assert_close_mean(draws, target, false_alarm=1e-3)
