import itertools
import math

import pytest

from gumbel_softmax import Constant, ExponentialAnneal


def test_constant():
    s = Constant(0.7)
    assert s(0) == s(10**6) == 0.7


def test_exponential_anneal_is_the_paper_staircase():
    s = ExponentialAnneal(tau0=1.0, rate=1e-4, tau_min=0.5, every=1000)
    assert s(0) == s(999) == 1.0
    assert s(1000) == pytest.approx(math.exp(-0.1))
    assert s(1999) == s(1000)
    assert s(10**6) == 0.5  # the floor
    values = [s(t) for t in range(0, 20000, 250)]
    assert all(a >= b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"tau0": 0.0}, ValueError, "tau0"),
        ({"tau0": math.inf}, ValueError, "tau0"),
        ({"tau_min": -1.0}, ValueError, "tau_min"),
        ({"rate": -1e-3}, ValueError, "rate"),
        ({"rate": "fast"}, TypeError, "rate"),
        ({"every": 0}, ValueError, "every"),
        ({"every": 1.5}, TypeError, "every"),
    ],
)
def test_exponential_anneal_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ExponentialAnneal(**kwargs)


def test_bad_step_and_constant():
    with pytest.raises(ValueError, match="temperature"):
        Constant(-1.0)
    with pytest.raises(TypeError, match="temperature"):
        Constant(True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step"):
        Constant(1.0)(-1)
    with pytest.raises(TypeError, match="step"):
        ExponentialAnneal()(1.5)  # type: ignore[arg-type]
