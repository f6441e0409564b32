r"""Statistical assertions with stated false-alarm rates, for our tests and for users' own.

Every check takes ``false_alarm``, the probability that it fails although the implementation is
correct. Tolerances are derived from the sample size, never tuned: a z-test bounds a mean by
:math:`z_{1-a/2}\, s/\sqrt n`, a chi-square test compares observed with expected counts, and a
Kolmogorov-Smirnov test compares a sample with a continuous CDF. Torch only; no SciPy needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "TestResult",
    "assert_categorical",
    "assert_close_mean",
    "chi2_sf",
    "chi_square_test",
    "ks_test",
    "normal_quantile",
]


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


def assert_close_mean(
    samples: Tensor, expected: Tensor | float, *, false_alarm: float = 1e-3, dim: int = 0
) -> None:
    r"""Assert each coordinate's sample mean is within :math:`z\,s/\sqrt n` of ``expected``.

    ``z`` is the two-sided normal quantile at ``false_alarm`` divided by the number of coordinates
    (Bonferroni), so the whole assertion fails with probability at most ``false_alarm`` when the
    true means are ``expected`` (for n large enough that the sample mean is near normal).
    """
    x = samples.double()
    n = x.shape[dim]
    mean, std = x.mean(dim), x.std(dim)
    m = max(1, mean.numel())
    z = normal_quantile(1 - false_alarm / (2 * m))
    bound = z * std / math.sqrt(n)
    err = (mean - torch.as_tensor(expected, dtype=torch.float64)).abs()
    if bool((err > bound).any()):
        worst = int((err - bound).flatten().argmax())
        raise AssertionError(
            f"sample mean differs from expected by {err.flatten()[worst]:.4g} > bound "
            f"{bound.flatten()[worst]:.4g} (z = {z:.2f}, n = {n}, false-alarm rate {false_alarm})"
        )
