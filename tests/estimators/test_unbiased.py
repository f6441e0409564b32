"""Every estimator that declares ``unbiased = True`` matches the exact gradient in expectation.

Driven by the registry: a newly registered estimator with ``unbiased = True`` is checked without
editing this file. Categorical estimators run on the four enumerated toy problems of
:func:`gumbel_softmax.diagnostics.toy_problems` ((N, K) = (2, 3) and (4, 4), a quadratic and a
non-linear objective), binary-only ones on quadratic and non-linear problems with K = 2.

Each estimator is first moved away from its initial state by a short training run (its running
statistics and learned parts: EMA and NVIL baselines, REBAR's eta and temperature, RELAX's
network), since unbiasedness must hold for every value of them, then frozen with ``eval()``, so
that the 20 000 rows of one batched call are independent draws. NVIL's normalisation makes its
estimate unbiased for the gradient times ``result.logits_scale``, which ``draw`` divides out.
"""

from __future__ import annotations

import pytest
from _sf_bench import BINARY, STANDARD, draw, make, train_steps

from gumbel_softmax.diagnostics import ToyProblem
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
    assert not {"gs", "st-gs", "st", "st-annealed", "gst", "gumbel-rao", "reinmax", "darn"} & set(
        UNBIASED
    )


@pytest.mark.parametrize(
    ("name", "problem"), CASES, ids=[f"{name}-{problem.name}" for name, problem in CASES]
)
def test_mean_of_many_draws_is_the_exact_gradient(name: str, problem: ToyProblem) -> None:
    n, k = problem.logits.shape
    est = make(name, n, k)
    train_steps(est, problem, steps=20, lr=0.02)  # away from the initial state
    est.eval()
    draws = draw(est, problem.logits, problem.f, N_DRAWS, seed=sum(map(ord, name)))
    # false-alarm rate 1e-3 per case, Bonferroni over the N*K coordinates
    assert_close_mean(draws, problem.exact, false_alarm=1e-3)
