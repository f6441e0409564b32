"""Exact sampling: Gumbel-max (categorical) and Gumbel-top-k (without replacement)."""

from __future__ import annotations

import itertools

import pytest
import torch

import gumbel_softmax as gs
from gumbel_softmax.testing import assert_categorical, chi_square_test


def test_gumbel_max_is_categorical(gen):
    logits = torch.tensor([2.0, 0.5, -1.0, 0.0, 1.0])
    idx = gs.sample_categorical(logits.expand(100_000, 5), generator=gen)
    assert_categorical(idx, logits.softmax(-1), false_alarm=1e-3)


def test_gumbel_max_never_samples_masked_classes(gen):
    logits = torch.tensor([0.3, -torch.inf, 1.0, -torch.inf, -2.0, 0.0])
    idx = gs.sample_categorical(logits.expand(100_000, 6), generator=gen)
    assert not bool(((idx == 1) | (idx == 3)).any())
    assert_categorical(idx, logits.softmax(-1), false_alarm=1e-3)


def test_gumbel_max_with_50000_classes(gen):
    # K = 50,000 with a mask on a quarter of the classes and a skewed distribution; counts are
    # pooled into 50 bins of 1,000 classes so that every expected count is large.
    k, n = 50_000, 4_000
    logits = torch.linspace(0.0, 6.0, k)
    logits[::4] = -torch.inf
    idx = gs.sample_categorical(logits.expand(n, k), generator=gen)
    assert not bool((idx % 4 == 0).any())
    bins = torch.bincount(idx // 1000, minlength=50)
    probs = logits.softmax(-1).reshape(50, 1000).sum(-1)
    assert chi_square_test(bins, probs).p_value > 1e-3  # false-alarm rate 1e-3


def test_one_hot_output(gen):
    logits = torch.randn(7, 4, 3, dtype=torch.float64)
    y = gs.sample_categorical(logits, dim=1, one_hot=True, generator=gen)
    assert y.shape == logits.shape and y.dtype == logits.dtype
    assert torch.equal(y.sum(1), torch.ones(7, 3, dtype=torch.float64))


def test_without_replacement_is_sequential_sampling(gen):
    # P(i1, i2) = p_i1 * p_i2 / (1 - p_i1), enumerated over all ordered pairs.
    logits = torch.tensor([1.0, 0.0, -0.5, 0.7])
    p = logits.softmax(-1)
    idx = gs.sample_without_replacement(logits.expand(100_000, 4), 2, generator=gen)
    assert bool((idx[:, 0] != idx[:, 1]).all())
    pairs = list(itertools.permutations(range(4), 2))
    probs = torch.tensor([float(p[i] * p[j] / (1 - p[i])) for i, j in pairs])
    code = {pair: c for c, pair in enumerate(pairs)}
    cells = torch.tensor([code[(int(a), int(b))] for a, b in idx])
    counts = torch.bincount(cells, minlength=len(pairs))
    assert chi_square_test(counts, probs).p_value > 1e-3  # false-alarm rate 1e-3


def test_without_replacement_respects_masks_and_k(gen):
    logits = torch.tensor([[0.0, -torch.inf, 1.0, 2.0]])
    idx = gs.sample_without_replacement(logits.expand(500, 4), 3, generator=gen)
    assert not bool((idx == 1).any())
    with pytest.raises(ValueError, match="k=4 exceeds the number of unmasked classes"):
        gs.sample_without_replacement(logits, 4)
    with pytest.raises(ValueError, match="k must satisfy 1 <= k <= K = 4, got k=5"):
        gs.sample_without_replacement(logits, 5)
    with pytest.raises(ValueError, match="got k=0"):
        gs.sample_without_replacement(logits, 0)
    with pytest.raises(TypeError, match="k must be an int"):
        gs.sample_without_replacement(logits, 2.0)  # type: ignore[arg-type]


def test_all_masked_row_is_an_error():
    logits = torch.tensor([[0.0, 1.0], [-torch.inf, -torch.inf]])
    with pytest.raises(ValueError, match="all masked"):
        gs.sample_categorical(logits)


def test_integer_and_nan_logits_are_errors():
    with pytest.raises(TypeError, match="logits must have a floating dtype"):
        gs.sample_categorical(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="contains NaN"):
        gs.sample_categorical(torch.tensor([0.0, torch.nan]))
    with pytest.raises(TypeError, match=r"logits must be a torch\.Tensor"):
        gs.sample_categorical([0.0, 1.0])  # type: ignore[arg-type]


_ROW = torch.tensor([[0.0, 1.0, -1.0]])
_NAN_NOISE = torch.tensor([[0.0, torch.nan, 0.0]])


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        # +inf: a class of infinite log-probability (categorical samplers only)
        (lambda: gs.sample_categorical(_ROW.clone().fill_(torch.inf)), ValueError, r"\+inf"),
        (lambda: gs.sample_without_replacement(_ROW * torch.inf, 1), ValueError, r"NaN|\+inf"),
        (lambda: gs.gumbel_softmax(_ROW + torch.inf), ValueError, r"contains \+inf"),
        # NaN in pre-drawn noise
        (lambda: gs.gumbel_softmax(_ROW, noise=_NAN_NOISE), ValueError, r"noise .* contains NaN"),
        (lambda: gs.relaxed_bernoulli(_ROW, noise=_NAN_NOISE), ValueError, r"noise .* NaN"),
        # hard: a Python bool or a 0-d bool tensor only
        (lambda: gs.relaxed_bernoulli(_ROW, hard="yes"), TypeError, "hard must be a bool .*'yes'"),
        (lambda: gs.relaxed_bernoulli(_ROW, hard=torch.tensor(1)), TypeError, "hard must be"),
        # generators
        (lambda: gs.gumbel((2,), generator=123), TypeError, "generator must be a torch.Generator"),
        (lambda: gs.gumbel_like(_ROW, generator="g"), TypeError, "got 'g'"),
        (lambda: gs.sample_categorical(_ROW, generator=1), TypeError, "generator must be"),
        (lambda: gs.sample_without_replacement(_ROW, 2, generator=1), TypeError, "generator"),
        (lambda: gs.relaxed_bernoulli(_ROW, generator=object()), TypeError, "generator"),
        # a temperature that does not broadcast
        (
            lambda: gs.relaxed_bernoulli(_ROW, torch.ones(2)),
            ValueError,
            r"temperature of shape \(2,\) does not broadcast to the batch shape \(1, 3\)",
        ),
        # straight_through's two tensors
        (lambda: gs.straight_through(_ROW, _ROW[0]), ValueError, "same shape"),
        (lambda: gs.straight_through(1.0, _ROW), TypeError, "hard must be a torch.Tensor"),
    ],
)
def test_bad_inputs_are_named(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_plus_inf_log_odds_stay_valid_for_the_binary_relaxation(gen):
    # +inf log-odds are a certain 1 for relaxed_bernoulli (not an error, unlike the categorical)
    y = gs.relaxed_bernoulli(torch.tensor([torch.inf, -torch.inf]), 0.5, generator=gen)
    assert y.tolist() == [1.0, 0.0]


def test_hard_bool_tensor_and_unvalidated_nan_noise(gen):
    h = gs.relaxed_bernoulli(_ROW, hard=torch.tensor(True), noise=torch.zeros(1, 3))
    assert h.tolist() == [[0.0, 1.0, 0.0]]
    y = gs.gumbel_softmax(_ROW, noise=_NAN_NOISE, validate_args=False)
    assert bool(y.isnan().all())  # unvalidated: the caller asked for no check
