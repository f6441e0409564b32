"""RelGAN's inverse-temperature schedules: their end points, monotonicity, ``lowest`` and errors."""

from __future__ import annotations

import itertools
import math

import pytest

from gumbel_softmax import InverseTemperatureAnneal

KINDS = ["exp", "lin", "log", "quad", "sigmoid"]


@pytest.mark.parametrize("kind", KINDS)
def test_beta_rises_from_one_to_beta_max_and_stays(kind: str) -> None:
    s = InverseTemperatureAnneal(beta_max=100.0, steps=50, kind=kind)
    betas = [s.beta(t) for t in range(80)]
    assert all(a <= b for a, b in itertools.pairwise(betas))
    start = 1 + 99 / (1 + math.exp(10)) if kind == "sigmoid" else 1.0
    end = 1 + 99 / (1 + math.exp(-10)) if kind == "sigmoid" else 100.0
    assert betas[0] == pytest.approx(start, rel=1e-12)
    assert betas[50] == pytest.approx(end, rel=1e-12) and betas[79] == betas[50]
    assert [s(t) for t in range(80)] == [1 / b for b in betas]
    assert s.lowest == min(s(t) for t in range(80))


def test_the_formulas_at_the_midpoint() -> None:
    mid = {k: InverseTemperatureAnneal(beta_max=101.0, steps=10, kind=k).beta(5) for k in KINDS}
    assert mid["exp"] == pytest.approx(math.sqrt(101.0))
    assert mid["lin"] == pytest.approx(51.0)
    assert mid["quad"] == pytest.approx(26.0)
    assert mid["sigmoid"] == pytest.approx(51.0)
    assert mid["log"] == pytest.approx(1 + 100 * math.log(6) / math.log(11))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beta_max": 0.5}, ValueError, "beta_max must be >= 1"),
        ({"beta_max": math.inf}, ValueError, "beta_max must be positive and finite"),
        ({"beta_max": "9"}, TypeError, "beta_max must be a real number"),
        ({"steps": 0}, ValueError, "steps must be >= 1"),
        ({"steps": 2.0}, TypeError, "steps must be an int"),
        ({"kind": "cosine"}, ValueError, "kind must be one of"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        InverseTemperatureAnneal(**kwargs)


def test_a_negative_step_is_refused() -> None:
    with pytest.raises(ValueError, match="step must be >= 0"):
        InverseTemperatureAnneal()(-1)
