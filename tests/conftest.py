"""Shared fixtures: dtypes, temperatures and seeded generators used across the suite."""

from __future__ import annotations

import pytest
import torch

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
TEMPERATURES = [1e-3, 1e-2, 0.1, 1.0, 10.0, 1e3]


@pytest.fixture
def gen():
    """A fresh generator with a fixed seed for each test."""
    return torch.Generator().manual_seed(20170101)
