"""Fixtures of the VAE tests: a tiny stand-in dataset and a fast config.

The stand-in replaces :func:`gumbel_softmax.lab.runner.load_splits` (which reads data through
``gumbel_softmax.lab.data``) with random 0/1 images, so these tests need neither the data module nor
the network, and stay fast.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gumbel_softmax.lab import runner
from gumbel_softmax.lab.config import VAEConfig


def fake_splits(n_train: int = 120, n_eval: int = 20, *, binarized: bool = True, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(784, generator=g) * 0.6  # a per-pixel mean so there is something to learn

    def draw(n: int) -> torch.Tensor:
        x = p.expand(n, 784)
        return torch.bernoulli(x, generator=g) if binarized else x.clone()

    return SimpleNamespace(
        train=draw(n_train), valid=draw(n_eval), test=draw(n_eval), binarized=binarized, name="fake"
    )


@pytest.fixture
def fake_data(monkeypatch):
    """Make every run read the stand-in dataset; returns it."""
    splits = fake_splits()
    monkeypatch.setattr(runner, "load_splits", lambda config: splits)
    return splits


@pytest.fixture
def tiny_config(tmp_path):
    """A config that trains a few steps and evaluates cheaply."""
    return VAEConfig(
        epochs=1,
        batch_size=20,
        max_steps=6,
        eval_samples=5,
        eval_samples_during=3,
        eval_images=10,
        test_images=10,
        eval_chunk=3,
        checkpoint_every=2,
        log_every=2,
        eval_every=3,
        anneal_every=2,
        anneal_rate=0.1,
        figures=False,
        progress=False,
        run_dir=str(tmp_path / "run"),
    )
