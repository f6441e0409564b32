"""The statistical toolkit itself (gumbel_softmax.testing): each assertion fires on a wrong mean,
stays silent on a right one, and does so at the rate it states; its guard code is tested too.

Rates are checked by repeating an assertion on R independent data sets whose true answer is
known: the number of failures is Binomial(R, p) with p the stated rate, and the bounds on the
count come from the exact binomial tails (each with false-alarm rate 1e-6).
"""

from __future__ import annotations

import math

import pytest
import torch

from gumbel_softmax.testing import (
    assert_close_mean,
    assert_mean_at_most,
    assert_mean_differs,
    assert_mean_less,
    assert_same_mean,
    mean_z_scores,
    normal_quantile,
    z_quantile,
)

REPEATS, N, RATE = 2000, 400, 0.05


def _binomial_range(r: int, p: float, tail: float = 1e-6) -> tuple[int, int]:
    """The counts ``[lo, hi]`` outside which Binomial(r, p) falls with probability <= 2 tail."""

    def log_pmf(k: int) -> float:
        return (
            math.lgamma(r + 1)
            - math.lgamma(k + 1)
            - math.lgamma(r - k + 1)
            + k * math.log(p)
            + (r - k) * math.log1p(-p)
        )

    pmf = [math.exp(log_pmf(k)) for k in range(r + 1)]
    lo, acc = 0, 0.0
    while acc + pmf[lo] <= tail:
        acc += pmf[lo]
        lo += 1
    hi, acc = r, 0.0
    while acc + pmf[hi] <= tail:
        acc += pmf[hi]
        hi -= 1
    return lo, hi


def _failures(check, make) -> int:
    count = 0
    for i in range(REPEATS):
        try:
            check(*make(torch.Generator().manual_seed(i)))
        except AssertionError:
            count += 1
    return count


def test_z_quantile_is_the_normal_quantile_with_bonferroni() -> None:
    assert z_quantile(0.05) == pytest.approx(1.959964, abs=1e-6)
    assert z_quantile(0.05, sided="one") == pytest.approx(1.644854, abs=1e-6)
    assert z_quantile(0.05, tests=5) == pytest.approx(normal_quantile(1 - 0.005), abs=1e-12)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="false_alarm must lie in"):
            z_quantile(bad)
    for wrong in ("0.1", True, None):
        with pytest.raises(TypeError, match="false_alarm must be a float"):
            z_quantile(wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sided"):
        z_quantile(0.1, sided="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tests must be a positive int"):
        z_quantile(0.1, tests=0)
    for wrong_tests in (2.0, True):
        with pytest.raises(TypeError, match="tests must be a positive int"):
            z_quantile(0.1, tests=wrong_tests)  # type: ignore[arg-type]


def test_assert_close_mean_fails_at_its_stated_rate() -> None:
    # four independent coordinates with exponential (skewed) draws of known means; Bonferroni
    # makes the family rate 1 - (1 - RATE/4)^4 <= RATE (and within 2% of it)
    means = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)

    def make(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.rand(N, 4, generator=g, dtype=torch.float64)
        return -torch.log1p(-u) * means, means

    count = _failures(lambda x, m: assert_close_mean(x, m, false_alarm=RATE), make)
    lo, _ = _binomial_range(REPEATS, 0.9 * RATE)
    _, hi = _binomial_range(REPEATS, 1.1 * RATE)  # 10% allowance: normal approximation at N
    assert lo <= count <= hi, (count, lo, hi)


def test_assert_close_mean_catches_a_shifted_mean() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 3, generator=g, dtype=torch.float64)
    assert_close_mean(x, torch.zeros(3), false_alarm=1e-3)
    # a shift of 8 standard errors in one coordinate: missed with probability < 1e-8
    with pytest.raises(AssertionError, match="at coordinate 1"):
        assert_close_mean(x, torch.tensor([0.0, 8 / math.sqrt(N), 0.0]), false_alarm=1e-3)
    assert_mean_differs(x, torch.tensor([0.0, 8 / math.sqrt(N), 0.0]), level=1e-3)
    with pytest.raises(AssertionError, match="differs detectably"):
        assert_mean_differs(x, torch.zeros(3), level=1e-3)  # false alarm 1 - 1e-3 of passing
    z = mean_z_scores(x, 0.0)
    torch.testing.assert_close(z, x.mean(0) / (x.std(0) / math.sqrt(N)))


def test_zero_variance_coordinates_must_match_up_to_rounding() -> None:
    x = torch.full((50, 2), 0.1, dtype=torch.float64)
    exact = torch.tensor([0.1, 0.1], dtype=torch.float64)
    assert_close_mean(x, exact)
    with pytest.raises(AssertionError, match="differs"):
        assert_close_mean(x, exact + torch.tensor([0.0, 1e-9], dtype=torch.float64))
    # ... and an expected value given in float32 is allowed its own rounding
    assert_close_mean(x, exact.float())
    assert mean_z_scores(x, 0.1 + 1e-9)[0] == -math.inf
    # float32 draws of 0.1 against the float64 value: off by 1.5e-9, within float32's roundoff
    assert_close_mean(x.float(), torch.tensor([0.1, 0.1], dtype=torch.float64))
    with pytest.raises(AssertionError):
        assert_close_mean(x.float(), torch.tensor([0.1, 0.1 + 1e-7], dtype=torch.float64))


def test_assert_same_mean_and_the_one_sided_tests_fail_at_their_rates() -> None:
    def make(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.randn(N, generator=g, dtype=torch.float64)
        b = 1.0 + 2.0 * torch.randn(N // 2, generator=g, dtype=torch.float64) - 1.0
        return a, b  # equal means, unequal variances and sizes (Welch)

    lo, _ = _binomial_range(REPEATS, 0.9 * RATE)
    _, hi = _binomial_range(REPEATS, 1.1 * RATE)
    for check in (
        lambda a, b: assert_same_mean(a, b, false_alarm=RATE),
        lambda a, b: assert_mean_at_most(a, b, false_alarm=RATE),
    ):
        count = _failures(check, make)
        assert lo <= count <= hi, (count, lo, hi)
    # equal means: assert_mean_less passes by chance at rate RATE, i.e. fails at 1 - RATE
    passes = REPEATS - _failures(lambda a, b: assert_mean_less(a, b, level=RATE), make)
    assert lo <= passes <= hi, (passes, lo, hi)


def test_two_sample_checks_catch_a_difference() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(N, 2, generator=g, dtype=torch.float64)
    b = torch.randn(N, 2, generator=g, dtype=torch.float64) + 1.0  # 14 standard errors
    with pytest.raises(AssertionError, match="means differ"):
        assert_same_mean(a, b)
    assert_mean_at_most(a, b)
    assert_mean_less(a, b)
    with pytest.raises(AssertionError, match="is larger"):
        assert_mean_at_most(b, a)
    with pytest.raises(AssertionError, match="not shown"):
        assert_mean_less(b, a)


def test_nan_draws_fail_every_assertion() -> None:
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x[5, 1] = math.nan
    ok = torch.randn(100, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with pytest.raises(AssertionError, match="z = nan"):
        assert_close_mean(x, torch.zeros(2))
    with pytest.raises(AssertionError, match="differs detectably"):
        assert_mean_differs(x[:, 1:], 100.0)  # NaN is no evidence of a difference
    for check in (assert_same_mean, assert_mean_at_most, assert_mean_less):
        with pytest.raises(AssertionError):
            check(x, ok)
    assert math.isnan(float(mean_z_scores(x, 0.0)[1]))


def test_bad_samples_are_refused_naming_the_argument() -> None:
    with pytest.raises(TypeError, match=r"samples must be a torch\.Tensor"):
        assert_close_mean([1.0, 2.0], 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 samples"):
        assert_close_mean(torch.ones(1, 3), 1.0)
    with pytest.raises(ValueError, match="scalar"):
        assert_close_mean(torch.tensor(1.0), 1.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        assert_close_mean(torch.ones(5, 3), torch.ones(4))
    with pytest.raises(ValueError, match="does not broadcast"):
        assert_close_mean(torch.ones(5, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="same shape apart from dim 0"):
        assert_same_mean(torch.ones(5, 3), torch.ones(5, 2))
    with pytest.raises(ValueError, match="b needs at least 2"):
        assert_mean_less(torch.ones(5), torch.ones(1))
