"""Backends under test, and the device each runs on here.

Without a CUDA device the triton backend runs under Triton's interpreter on CPU tensors:
``TRITON_INTERPRET`` must be set before triton compiles our kernels, i.e. before the first
test touches the backend (the backend module is imported lazily).
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from gumbel_softmax import backends

FUSED = backends.FUSED
ALL = ("reference", *FUSED)


def device_of(name: str) -> torch.device:
    """Where backend ``name`` runs in these tests."""
    cuda = name == "triton" and torch.cuda.is_available()
    return torch.device("cuda" if cuda else "cpu")


def interpreted(name: str) -> bool:
    """Whether ``name`` runs under Triton's (slow) interpreter here: tests use smaller sizes."""
    return name == "triton" and device_of(name).type == "cpu"


def require(name: str) -> str:
    """Skip unless backend ``name``'s package is installed and loads here."""
    if name != "reference":
        pytest.importorskip(name)
        if name not in backends.available_backends():
            pytest.skip(f"backend {name!r} does not load here")
    return name


def generator(name: str, seed: int) -> torch.Generator:
    return torch.Generator(device=device_of(name)).manual_seed(seed)


@pytest.fixture(params=FUSED)
def fused(request: pytest.FixtureRequest) -> str:
    """Each fused backend (skipped where it does not load)."""
    return require(request.param)


@pytest.fixture(params=ALL)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend, the reference included."""
    return require(request.param)
