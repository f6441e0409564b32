"""The temperature schedules: RelGAN's inverse-temperature ones and Chung et al.'s slope annealing:
their end points, monotonicity, ``lowest`` and errors."""

from __future__ import annotations

import itertools
import math

import pytest

from gumbel_softmax import InverseTemperatureAnneal, SlopeAnneal

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


def test_the_slope_rises_linearly_in_the_epoch_to_its_cap() -> None:
    # Chung et al.'s alpha = min(5, 1 + 0.04 epoch), here per step: E = 10 steps an epoch.
    s = SlopeAnneal(slope0=1.0, rate=0.04, slope_max=5.0, steps_per_epoch=10)
    assert s.slope(0) == 1.0 and s(0) == 1.0
    assert s.slope(5) == pytest.approx(1.02) and s.slope(10) == pytest.approx(1.04)
    assert s.slope(1000) == pytest.approx(5.0) and s.slope(10**6) == 5.0  # epoch 100: the cap
    temps = [s(t) for t in range(0, 2000, 7)]
    assert all(a >= b for a, b in itertools.pairwise(temps))
    assert s.lowest == pytest.approx(0.2) and s.lowest == min(temps)
    assert SlopeAnneal(slope0=2.0, rate=0.0, slope_max=5.0).lowest == 0.5  # rate 0: constant


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"slope0": 0.0}, ValueError, "slope0 must be positive and finite"),
        ({"slope_max": 0.5}, ValueError, r"slope_max must be >= slope0 \(1.0\), got 0.5"),
        ({"rate": -0.1}, ValueError, "rate must be >= 0 and finite"),
        ({"rate": "0.04"}, TypeError, "rate must be a real number"),
        ({"steps_per_epoch": 0}, ValueError, "steps_per_epoch must be >= 1"),
        ({"steps_per_epoch": 1.5}, TypeError, "steps_per_epoch must be an int"),
    ],
)
def test_bad_slope_arguments_are_refused(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        SlopeAnneal(**kwargs)
