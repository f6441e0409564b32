r"""Statistical assertions with stated false-alarm rates, for our tests and for users' own.

Every check of an equality takes ``false_alarm``, the probability that it fails although the
implementation is correct. Tolerances are derived from the sample size, never tuned: a z-test
bounds a mean by :math:`z\, s/\sqrt n` (:func:`z_quantile`, Bonferroni over coordinates), a
chi-square test compares observed with expected counts, and a Kolmogorov-Smirnov test compares a
sample with a continuous CDF. Where a dtype limits the precision (a coordinate whose draws are
all equal), the allowance is the rounding bound of that dtype, stated in :func:`mean_z_scores`.

The checks that something *differs* (:func:`assert_mean_differs`, :func:`assert_mean_less`)
take ``level`` instead: the probability that they pass by chance when there is no difference.
They show that a test has power (a biased estimator is caught, a variance is reduced).

==============================  ==========================================================
:func:`assert_close_mean`       mean equals an exact value (two-sided z, per coordinate)
:func:`assert_mean_differs`     some coordinate's mean differs from an exact value
:func:`assert_same_mean`        two independent samples have the same mean (Welch)
:func:`assert_mean_at_most`     mean(a) <= mean(b) is not contradicted (one-sided Welch)
:func:`assert_mean_less`        mean(a) < mean(b) is shown (one-sided Welch)
:func:`assert_categorical`      integer draws follow a categorical distribution (chi-square)
:func:`chi_square_test`         Pearson's goodness of fit, with pooling of small cells
:func:`ks_test`                 one-sample Kolmogorov-Smirnov test against a continuous CDF
:func:`z_quantile`              the z-bound for a false-alarm rate, sides and tests
==============================  ==========================================================

Torch only; no SciPy needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "Sided",
    "TestResult",
    "assert_categorical",
    "assert_close_mean",
    "assert_mean_at_most",
    "assert_mean_differs",
    "assert_mean_less",
    "assert_same_mean",
    "chi2_sf",
    "chi_square_test",
    "ks_test",
    "mean_z_scores",
    "normal_quantile",
    "z_quantile",
]

Sided = Literal["two", "one"]


@dataclass(frozen=True)
class TestResult:
    """A test statistic and its p-value (the probability of a statistic this extreme under H0)."""

    statistic: float
    p_value: float
    dof: float = math.nan

    __test__ = False  # not a pytest test class


def normal_quantile(p: float) -> float:
    """The standard normal quantile :math:`\\Phi^{-1}(p)`."""
    if not 0 < p < 1:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    return float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64)))


def chi2_sf(x: float, dof: float) -> float:
    r"""Chi-square survival function :math:`P(\chi^2_{\nu} > x) = Q(\nu/2, x/2)`."""
    return float(
        torch.special.gammaincc(
            torch.tensor(dof / 2, dtype=torch.float64), torch.tensor(x / 2, dtype=torch.float64)
        )
    )


def chi_square_test(counts: Tensor, probs: Tensor, *, min_expected: float = 5.0) -> TestResult:
    r"""Pearson's goodness-of-fit test of ``counts`` against ``probs``.

    .. math:: X^2 = \sum_k (O_k - E_k)^2/E_k \;\sim\; \chi^2_{\text{cells}-1}

    Cells with zero probability must have zero counts (else the p-value is 0). Cells whose
    expected count falls below ``min_expected`` are pooled into one, so that the chi-square
    approximation holds.
    """
    counts = counts.double().flatten()
    probs = probs.double().flatten()
    if counts.shape != probs.shape:
        raise ValueError(f"counts {tuple(counts.shape)} and probs {tuple(probs.shape)} differ")
    n = counts.sum()
    if bool((counts[probs == 0] > 0).any()):
        return TestResult(math.inf, 0.0)
    probs = probs / probs.sum()
    expected = n * probs
    keep = expected >= min_expected
    obs = torch.cat([counts[keep], counts[~keep & (probs > 0)].sum().reshape(1)])
    exp = torch.cat([expected[keep], expected[~keep & (probs > 0)].sum().reshape(1)])
    if float(exp[-1]) < min_expected:  # pool the leftover into the smallest kept cell
        i = int(exp[:-1].argmin())
        obs[i] += obs[-1]
        exp[i] += exp[-1]
        obs, exp = obs[:-1], exp[:-1]
    stat = float(((obs - exp) ** 2 / exp).sum())
    dof = obs.numel() - 1
    return TestResult(stat, chi2_sf(stat, dof) if dof > 0 else 1.0, dof)


def assert_categorical(samples: Tensor, probs: Tensor, *, false_alarm: float = 1e-3) -> TestResult:
    """Assert that integer ``samples`` (any shape) are draws from ``probs`` (chi-square test)."""
    counts = torch.bincount(samples.flatten().long(), minlength=probs.numel())
    result = chi_square_test(counts, probs)
    if result.p_value < false_alarm:
        raise AssertionError(
            f"samples do not follow the categorical distribution: chi2 = {result.statistic:.2f} "
            f"on {result.dof} dof, p = {result.p_value:.3g} < {false_alarm}"
        )
    return result


def _kolmogorov_sf(x: float) -> float:
    r""":math:`P(K > x)` for the Kolmogorov distribution, :math:`2\sum_{j\ge1}(-1)^{j-1}e^{-2j^2x^2}`."""
    if x < 0.2:
        return 1.0
    return max(
        0.0,
        min(1.0, 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * x * x) for j in range(1, 101))),
    )


def ks_test(samples: Tensor, cdf: Callable[[Tensor], Tensor]) -> TestResult:
    r"""One-sample Kolmogorov-Smirnov test of ``samples`` against the continuous ``cdf``.

    :math:`D_n = \sup_x |F_n(x) - F(x)|`; the p-value uses Stephens' (1970) correction
    :math:`P(K > (\sqrt n + 0.12 + 0.11/\sqrt n) D_n)`, accurate for :math:`n \ge 5`.
    """
    x = samples.double().flatten().sort().values
    n = x.numel()
    if n < 5:
        raise ValueError(f"ks_test needs at least 5 samples, got {n}")
    f = cdf(x).double()
    i = torch.arange(1, n + 1, dtype=torch.float64)
    d = float(torch.maximum(i / n - f, f - (i - 1) / n).max())
    rn = math.sqrt(n)
    return TestResult(d, _kolmogorov_sf((rn + 0.12 + 0.11 / rn) * d))


# ------------------------------------------------------------------------------- z-tests of means


def z_quantile(false_alarm: float, *, sided: Sided = "two", tests: int = 1) -> float:
    r"""The bound :math:`z` of a normal test with family-wise false-alarm rate ``false_alarm``.

    Two-sided: :math:`P(|Z| > z) = a/m`; one-sided: :math:`P(Z > z) = a/m`, with
    :math:`a` = ``false_alarm`` and :math:`m` = ``tests`` simultaneous tests (Bonferroni: the
    probability that any of the m fails is at most a, whatever their dependence).

    Raises:
        TypeError: ``false_alarm`` not a float or ``tests`` not an int. ValueError:
            ``false_alarm`` outside (0, 1), ``sided`` not ``"two"``/``"one"``, ``tests < 1``.
    """
    if isinstance(false_alarm, bool) or not isinstance(false_alarm, (int, float)):
        raise TypeError(f"false_alarm must be a float in (0, 1), got {false_alarm!r}")
    if not 0 < false_alarm < 1:
        raise ValueError(f"false_alarm must lie in (0, 1), got {false_alarm!r}")
    if sided not in ("two", "one"):
        raise ValueError(f"sided must be 'two' or 'one', got {sided!r}")
    if isinstance(tests, bool) or not isinstance(tests, int):
        raise TypeError(f"tests must be a positive int, got {tests!r}")
    if tests < 1:
        raise ValueError(f"tests must be a positive int, got {tests!r}")
    tail = false_alarm / tests / (2 if sided == "two" else 1)
    return normal_quantile(1 - tail)


def _unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype if dtype.is_floating_point else torch.float64).eps / 2


def _moments(samples: Tensor, dim: int, what: str) -> tuple[Tensor, Tensor, Tensor, int]:
    r"""(mean, squared standard error, rounding allowance, n) of ``samples`` along ``dim``.

    The rounding allowance is :math:`(u + \gamma_n)\,\frac1n\sum_i |x_i|`: u, the unit
    roundoff of the samples' dtype, for the rounding of each draw to that dtype, and
    :math:`\gamma_n = nu_{64}/(1 - nu_{64})`, Higham's bound for the error of a float64 sum of n
    terms (Higham 2002, *Accuracy and Stability of Numerical Algorithms*, eq. 4.4). It only
    matters for coordinates whose draws are (nearly) constant, where the standard error is 0
    and a mean can still differ from the exact value by rounding.
    """
    if not isinstance(samples, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(samples).__name__}")
    if samples.dim() == 0:
        raise ValueError(f"{what} must have a sample dimension, got a scalar")
    n = samples.shape[dim]
    if n < 2:
        raise ValueError(f"{what} needs at least 2 samples along dim {dim}, got {n}")
    x = samples.double()
    u64 = _unit_roundoff(torch.float64)
    allowance = _unit_roundoff(samples.dtype) + n * u64 / (1 - n * u64)
    return x.mean(dim), x.var(dim) / n, allowance * x.abs().mean(dim), n


def _z(gap: Tensor, var: Tensor, rounding: Tensor) -> Tensor:
    # gap beyond the rounding allowance, in standard errors; 0/0 = 0 and x/0 = inf (a
    # zero-variance coordinate must match up to rounding)
    excess = (gap.abs() - rounding).clamp_min(0.0)
    se = var.sqrt()
    z = torch.where(se > 0, excess / torch.where(se > 0, se, 1.0), 0.0)
    z = torch.where((se == 0) & (excess > 0), math.inf, z)
    # NaN draws give a NaN z, which every assertion below treats as a failure
    z = torch.where(torch.isnan(gap) | torch.isnan(var), math.nan, z)
    return torch.sign(gap) * z


def mean_z_scores(samples: Tensor, expected: Tensor | float, *, dim: int = 0) -> Tensor:
    r"""Per-coordinate z-scores of the sample mean against ``expected``.

    .. math:: z_i = \operatorname{sign}(\bar x_i - \mu_i)\,
              \frac{\max(0,\ |\bar x_i - \mu_i| - r_i)}{s_i/\sqrt n}

    with :math:`\bar x_i, s_i` the mean and standard deviation of the n samples along ``dim``
    and :math:`r_i` the precision the dtype allows: :math:`(u + \gamma_n)\,\overline{|x_i|}`
    (u the unit roundoff of the samples' dtype, :math:`\gamma_n` Higham's bound for a float64
    sum of n terms) plus :math:`2u\,|\mu_i|` for the rounding of ``expected`` (u the larger of
    the samples' and ``expected``'s unit roundoffs). A coordinate with :math:`s_i = 0` gets 0
    if it matches up to :math:`r_i`, else :math:`\pm\infty`.

    Args:
        samples: ``(..., n, ...)`` with the n draws along ``dim``.
        expected: the exact means, broadcastable to the shape of the mean.

    Returns:
        ``samples``' shape without ``dim``, float64.

    Raises:
        TypeError: ``samples`` not a tensor. ValueError: fewer than 2 samples, ``expected`` not
        broadcastable.
    """
    mean, var, rounding, _ = _moments(samples, dim, "samples")
    mu = torch.as_tensor(expected, dtype=torch.float64, device=mean.device)
    try:
        gap = mean - mu
    except RuntimeError as err:
        raise ValueError(
            f"expected of shape {tuple(mu.shape)} does not broadcast to the mean's shape "
            f"{tuple(mean.shape)}"
        ) from err
    if gap.shape != mean.shape:
        raise ValueError(
            f"expected of shape {tuple(mu.shape)} does not broadcast to the mean's shape "
            f"{tuple(mean.shape)}"
        )
    # expected is rounded to its own dtype (a float32 constant) or, as a Python float, to float64
    u_mu = (
        _unit_roundoff(expected.dtype)
        if isinstance(expected, Tensor)
        else _unit_roundoff(torch.float64)
    )
    return _z(gap, var, rounding + 2 * max(u_mu, _unit_roundoff(samples.dtype)) * mu.abs())


def _two_sample_z(a: Tensor, b: Tensor, dim: int) -> Tensor:
    """Welch's z of mean(a) - mean(b) per coordinate (independent samples, sizes may differ)."""
    mean_a, var_a, r_a, _ = _moments(a, dim, "a")
    mean_b, var_b, r_b, _ = _moments(b, dim, "b")
    if mean_a.shape != mean_b.shape:
        raise ValueError(
            f"a and b must have the same shape apart from dim {dim}, got means of shape "
            f"{tuple(mean_a.shape)} and {tuple(mean_b.shape)}"
        )
    return _z(mean_a - mean_b, var_a + var_b, r_a + r_b)


def _fail(message: str, z: Tensor, bound: float, false_alarm: float) -> AssertionError:
    worst = int(z.abs().flatten().argmax()) if z.numel() else 0
    where = f" at coordinate {worst}" if z.numel() > 1 else ""
    return AssertionError(
        f"{message}: z = {float(z.flatten()[worst]):.3g}{where}, bound {bound:.3g} "
        f"(rate {false_alarm:g} over {max(1, z.numel())} coordinate(s))"
    )


def assert_close_mean(
    samples: Tensor, expected: Tensor | float, *, false_alarm: float = 1e-3, dim: int = 0
) -> None:
    r"""Assert each coordinate's sample mean is within :math:`z\,s/\sqrt n` of ``expected``.

    :math:`z` = :func:`z_quantile` (``false_alarm``, two-sided, Bonferroni over the m
    coordinates), so when the true means are ``expected`` the assertion fails with probability at
    most ``false_alarm`` (for n large enough that each sample mean is near normal; n in the
    thousands for skewed draws). Rounding in the samples' dtype is allowed for as in
    :func:`mean_z_scores`.

    Raises:
        AssertionError: a coordinate's mean is further from ``expected`` than the bound (the
            message names the worst one). ValueError/TypeError: as :func:`mean_z_scores`.
    """
    z = mean_z_scores(samples, expected, dim=dim)
    bound = z_quantile(false_alarm, tests=max(1, z.numel()))
    if not bool((z.abs() <= bound).all()):
        raise _fail("sample mean differs from expected", z, bound, false_alarm)


def assert_mean_differs(
    samples: Tensor, expected: Tensor | float, *, level: float = 1e-3, dim: int = 0
) -> None:
    r"""Assert that some coordinate's mean differs from ``expected`` (e.g. that a bias is
    detected): the opposite of :func:`assert_close_mean`.

    It passes when some :math:`|z_i|` exceeds :func:`z_quantile` (``level``, two-sided,
    Bonferroni), so if every true mean were ``expected`` it would pass by chance with probability
    at most ``level``. How often it fails when the means do differ depends on the difference (its
    power); check it with an effect of many standard errors.

    Raises:
        AssertionError: no coordinate differs detectably. ValueError/TypeError: as
            :func:`mean_z_scores`.
    """
    z = mean_z_scores(samples, expected, dim=dim)
    bound = z_quantile(level, tests=max(1, z.numel()))
    if not bool((z.abs() > bound).any()):
        raise _fail("no coordinate's mean differs detectably from expected", z, bound, level)


def assert_same_mean(a: Tensor, b: Tensor, *, false_alarm: float = 1e-3, dim: int = 0) -> None:
    r"""Assert two independent samples have the same mean in every coordinate (Welch's z-test).

    .. math:: |\bar a_i - \bar b_i| \le z\,\sqrt{s_{a,i}^2/n_a + s_{b,i}^2/n_b}

    with :math:`z` = :func:`z_quantile` (``false_alarm``, two-sided, Bonferroni): fails with
    probability at most ``false_alarm`` when the means are equal.

    Raises:
        AssertionError: a coordinate's means differ by more than the bound. ValueError: shapes
            that differ apart from ``dim``, fewer than 2 samples.
    """
    z = _two_sample_z(a, b, dim)
    bound = z_quantile(false_alarm, tests=max(1, z.numel()))
    if not bool((z.abs() <= bound).all()):
        raise _fail("the two samples' means differ", z, bound, false_alarm)


def assert_mean_at_most(a: Tensor, b: Tensor, *, false_alarm: float = 1e-3, dim: int = 0) -> None:
    r"""Assert :math:`\mathbb E a \le \mathbb E b` is not contradicted, in every coordinate.

    One-sided Welch test: fails when :math:`\bar a_i - \bar b_i > z\,\mathrm{se}_i`, with
    :math:`z` = :func:`z_quantile` (``false_alarm``, one-sided, Bonferroni), so with probability
    at most ``false_alarm`` when :math:`\mathbb E a \le \mathbb E b` holds.

    Raises:
        AssertionError: some coordinate of ``a`` is detectably larger. ValueError: as
            :func:`assert_same_mean`.
    """
    z = _two_sample_z(a, b, dim)
    bound = z_quantile(false_alarm, sided="one", tests=max(1, z.numel()))
    if not bool((z <= bound).all()):
        raise _fail("the first sample's mean is larger", z, bound, false_alarm)


def assert_mean_less(a: Tensor, b: Tensor, *, level: float = 1e-3, dim: int = 0) -> None:
    r"""Assert :math:`\mathbb E a < \mathbb E b` is shown, in every coordinate (e.g. a variance
    reduction, with a and b per-draw squared deviations).

    One-sided Welch test: passes only when :math:`\bar b_i - \bar a_i > z\,\mathrm{se}_i` for
    every i, :math:`z` = :func:`z_quantile` (``level``, one-sided, Bonferroni), so if some
    :math:`\mathbb E a_i \ge \mathbb E b_i` it passes by chance with probability at most
    ``level``. Its power depends on the true difference; use it where that is many standard
    errors.

    Raises:
        AssertionError: the difference is not shown. ValueError: as :func:`assert_same_mean`.
    """
    z = _two_sample_z(a, b, dim)
    bound = z_quantile(level, sided="one", tests=max(1, z.numel()))
    if not bool((z < -bound).all()):
        raise _fail("the first sample's mean is not shown to be smaller", z, bound, level)
