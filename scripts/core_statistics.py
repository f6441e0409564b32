"""Print the p-values of the core statistical identities, with fixed seeds (the tests assert
p > 1e-3 on the same kinds of checks): Gumbel-max, masks, K = 50,000, rounding, noise KS.

    python scripts/core_statistics.py [--backend reference|numba|auto]
"""

from __future__ import annotations

import argparse

import torch

import gumbel_softmax as gs
from gumbel_softmax.testing import chi_square_test, ks_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([2.0, 0.5, -1.0, 0.0, 1.0])
    p = logits.softmax(-1)

    def counts(idx: torch.Tensor, k: int) -> torch.Tensor:
        return torch.bincount(idx.flatten(), minlength=k)

    idx = gs.sample_categorical(logits.expand(100_000, 5), generator=g)
    print(
        f"Gumbel-max, K=5, n=1e5:            p = {chi_square_test(counts(idx, 5), p).p_value:.3f}"
    )
    masked = logits.clone()
    masked[[1, 3]] = -torch.inf
    idx = gs.sample_categorical(masked.expand(100_000, 5), generator=g)
    print(
        f"Gumbel-max, 2 of 5 masked:         p = "
        f"{chi_square_test(counts(idx, 5), masked.softmax(-1)).p_value:.3f}, "
        f"masked draws = {int(((idx == 1) | (idx == 3)).sum())}"
    )
    big = torch.linspace(0.0, 6.0, 50_000)
    big[::4] = -torch.inf
    idx = gs.sample_categorical(big.expand(4000, 50_000), generator=g)
    bins = torch.bincount(idx // 1000, minlength=50)
    print(
        f"Gumbel-max, K=50,000 (50 bins):    p = "
        f"{chi_square_test(bins, big.softmax(-1).reshape(50, 1000).sum(-1)).p_value:.3f}"
    )
    for tau in (0.1, 1.0, 10.0):
        y = gs.gumbel_softmax(logits.expand(100_000, 5), tau, generator=g, backend=args.backend)
        print(
            f"rounding, tau={tau:<4g} ({args.backend}):     p = "
            f"{chi_square_test(counts(y.argmax(-1), 5), p).p_value:.3f}"
        )
    noise = gs.gumbel((200_000,), dtype=torch.float64, generator=g)
    ks = ks_test(noise, lambda x: torch.exp(-torch.exp(-x)))
    print(f"Gumbel noise KS, n=2e5:            D = {ks.statistic:.5f}, p = {ks.p_value:.3f}")


if __name__ == "__main__":
    main()
