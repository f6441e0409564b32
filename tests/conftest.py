"""Shared fixtures: dtypes, temperatures and seeded generators used across the suite."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
TEMPERATURES = [1e-3, 1e-2, 0.1, 1.0, 10.0, 1e3]


@pytest.fixture
def gen():
    """A fresh generator with a fixed seed for each test."""
    return torch.Generator().manual_seed(20170101)


# Tensor methods that read a value back to the host: on CUDA, each one is a synchronisation.
HOST_READS = frozenset(
    {"__bool__", "item", "tolist", "__float__", "__int__", "__index__", "numpy", "cpu"}
)


class HostReads(TorchFunctionMode):
    """Records, in ``seen``, every host read of a tensor (``bool()``, ``.item()``, ...) made
    inside the ``with`` block: on the CPU, what would be a host synchronisation on CUDA."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_READS:
            self.seen.append(func.__name__)
        return func(*args, **(kwargs or {}))
