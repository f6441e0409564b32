"""Choosing a backend: automatic choice, forcing by keyword or environment, fallbacks, errors."""

from __future__ import annotations

import pytest
import torch
from tests.backends.conftest import device_of, generator, require

import gumbel_softmax as gs
from gumbel_softmax import backends
from gumbel_softmax.backends import BACKEND_ENV, BackendUnavailableError, resolve_backend


class _CpuLess(backends.Kernels):
    """Kernels that run on no device here."""

    name = "numba"

    def supports(self, device: torch.device) -> bool:
        return False


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)


def test_available_backends_lists_reference_first_and_only_known_names():
    names = backends.available_backends()
    assert names[0] == "reference"
    assert set(names) <= set(backends.BACKENDS)


def test_auto_picks_numba_for_cpu_tensors():
    require("numba")
    kernels = resolve_backend(None, torch.zeros(2, 3))
    assert kernels is not None and kernels.name == "numba"
    assert resolve_backend("auto", torch.zeros(2, 3)) is kernels


def test_auto_takes_the_reference_path_for_noise_and_empty_tensors():
    x = torch.zeros(2, 3)
    assert resolve_backend(None, x, noise=torch.zeros(2, 3)) is None
    assert resolve_backend(None, torch.zeros(0, 3)) is None
    # an empty batch still returns an empty sample of the right shape
    assert gs.gumbel_softmax(torch.zeros(0, 3), backend="numba").shape == (0, 3)


def test_auto_falls_back_silently_when_numba_cannot_load(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(backends._loaded, "numba", ImportError("numba is not installed"))
    assert "numba" not in backends.available_backends()
    assert resolve_backend(None, torch.zeros(2, 3)) is None
    y = gs.gumbel_softmax(torch.zeros(2, 3), generator=torch.Generator().manual_seed(0))
    ref = gs.gumbel_softmax(
        torch.zeros(2, 3), generator=torch.Generator().manual_seed(0), backend="reference"
    )
    assert torch.equal(y, ref)


def test_forcing_an_unloadable_backend_says_why(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(backends._loaded, "numba", ImportError("numba is not installed"))
    with pytest.raises(
        BackendUnavailableError,
        match=r"backend='numba' is not available here.*"
        r"numba is not installed",
    ):
        gs.gumbel_softmax(torch.zeros(2, 3), backend="numba")
    monkeypatch.setenv(BACKEND_ENV, "numba")
    with pytest.raises(BackendUnavailableError, match=f"{BACKEND_ENV}='numba' is not available"):
        gs.gumbel_softmax(torch.zeros(2, 3))


def test_forcing_a_backend_on_a_device_it_does_not_run_on_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setitem(backends._loaded, "numba", _CpuLess())
    with pytest.raises(ValueError, match=r"backend='numba' does not run on tensors of device cpu"):
        gs.gumbel_softmax(torch.zeros(2, 3), backend="numba")
    # the automatic choice skips it
    assert resolve_backend(None, torch.zeros(2, 3)) is None


@pytest.mark.parametrize("bad", ["fast", "Numba", 3, True])
def test_unknown_backend_names_are_rejected(bad, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ValueError, match=rf"backend must be one of .* got {bad!r}"):
        gs.gumbel_softmax(torch.zeros(2, 3), backend=bad)
    monkeypatch.setenv(BACKEND_ENV, str(bad))
    with pytest.raises(ValueError, match=rf"{BACKEND_ENV} must be one of .* got '{bad}'"):
        gs.gumbel_softmax(torch.zeros(2, 3))


def test_a_named_fused_backend_refuses_noise(fused):
    x = torch.zeros(2, 3, device=device_of(fused))
    with pytest.raises(ValueError, match=rf"backend='{fused}' draws its noise inside .*noise="):
        gs.gumbel_softmax(x, backend=fused, noise=torch.zeros_like(x))


def test_environment_variable_chooses_and_yields_to_noise(fused, monkeypatch: pytest.MonkeyPatch):
    x = torch.randn(4, 7, device=device_of(fused))
    forced = gs.gumbel_softmax(x, generator=generator(fused, 3), backend=fused)
    monkeypatch.setenv(BACKEND_ENV, fused)
    assert torch.equal(gs.gumbel_softmax(x, generator=generator(fused, 3)), forced)
    # pre-drawn noise: the reference path, whatever the environment says
    noise = gs.gumbel_like(x, generator=generator(fused, 4))
    expected = ((x + noise) / 0.5).softmax(-1)
    torch.testing.assert_close(gs.gumbel_softmax(x, 0.5, noise=noise), expected)
    # the keyword wins over the environment
    monkeypatch.setenv(BACKEND_ENV, "reference")
    assert torch.equal(gs.gumbel_softmax(x, generator=generator(fused, 3), backend=fused), forced)


def test_environment_reference_and_auto(monkeypatch: pytest.MonkeyPatch):
    x = torch.randn(3, 5)
    monkeypatch.setenv(BACKEND_ENV, "reference")
    assert resolve_backend(None, x) is None
    ref = gs.gumbel_softmax(x, generator=torch.Generator().manual_seed(1), backend="reference")
    assert torch.equal(gs.gumbel_softmax(x, generator=torch.Generator().manual_seed(1)), ref)
    for auto in ("auto", ""):
        monkeypatch.setenv(BACKEND_ENV, auto)
        assert resolve_backend(None, x) is resolve_backend("auto", x)


def test_kernel_noise_entry_point_rejects_the_reference():
    with pytest.raises(ValueError, match="has no kernel noise"):
        backends._noise("reference", (3,))


class _Uncompilable(backends.Kernels):
    """Kernels that load but fail to compile for any dtype."""

    name = "numba"

    def supports(self, device: torch.device) -> bool:
        return True

    def prepare(self, dtype: torch.dtype) -> None:
        raise RuntimeError(f"cannot lower for {dtype}")


def test_a_compile_failure_falls_back_silently_or_says_why_when_forced(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setitem(backends._loaded, "numba", _Uncompilable())
    x = torch.zeros(2, 3)
    assert resolve_backend(None, x) is None  # the automatic choice: the reference path
    assert gs.gumbel_softmax(x).shape == (2, 3)
    with pytest.raises(
        BackendUnavailableError,
        match=r"failed to compile for torch.float32: "
        r"RuntimeError: cannot lower for torch.float32",
    ):
        gs.gumbel_softmax(x, backend="numba")
    # non-floating logits are left to the argument checks
    with pytest.raises(TypeError, match="logits must have a floating dtype"):
        gs.gumbel_softmax(torch.zeros(2, 3, dtype=torch.int64), backend="numba")


def test_numba_prepares_every_compute_dtype():
    require("numba")
    kernels = resolve_backend("numba", torch.zeros(1, 2))
    assert kernels is not None
    for dtype in (torch.float32, torch.float64):
        kernels.prepare(dtype)  # compiles or loads from cache, once
        assert kernels._prepared[dtype] is None  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        kernels.prepare(torch.int64)


def test_numba_kernels_ask_for_512_bit_vectors():
    """The kernel functions carry the ``prefer-vector-width`` attribute, so that on Intel CPUs
    with AVX-512, where LLVM's tuning would pick 256-bit vectors, their loops are vectorised 512
    bits wide (``zmm`` registers). Compiled afresh: functions loaded from numba's disk cache show
    no IR."""
    require("numba")
    import llvmlite.binding as llvm
    import numba
    import numpy as np

    from gumbel_softmax.backends import _numba_math, _numba_noise, _numba_rows

    def fresh(kernel, *args):
        copy = numba.njit(fastmath=_numba_math._FASTMATH, error_model="numpy")(kernel.py_func)
        copy(*args)
        ((_, ir),) = copy.inspect_llvm().items()
        ((_, asm),) = copy.inspect_asm().items()
        return ir, asm

    x, out, soft = (np.zeros(600, np.float32) for _ in range(3))
    tau, seed = np.ones(1, np.float32), np.uint64(3)
    compiled = {
        "forward": fresh(_numba_rows._forward, 0, 2, x, tau, seed, out, soft, 300, False, False),
        "backward": fresh(_numba_rows._backward, 0, 2, x, out, tau, soft, tau, 300, False),
        "noise": fresh(_numba_noise._fill_noise32, out, seed, 0),
    }
    for name, (ir, _) in compiled.items():
        assert _numba_math._PREFER_512 in ir, name
    if "+avx512f" in llvm.get_host_cpu_features().flatten().split(","):
        assert "zmm" in compiled["noise"][1]
