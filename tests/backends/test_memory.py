"""Output buffers of the fused kernels (``backends._memory``): huge-page advice inside the
tensor's own bytes only, and nothing at all where the advice is not available."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from gumbel_softmax.backends import _memory


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, start: int, length: int, advice: int) -> int:
        self.calls.append((start, length, advice))
        return 0


def test_advice_covers_whole_huge_pages_inside_the_tensor(monkeypatch):
    rec = _Recorder()
    size = 2 << 20
    monkeypatch.setattr(_memory, "_state", [(rec, size)])
    t = _memory.empty_like(torch.empty(5 << 20, dtype=torch.float32))  # 20 MiB
    assert t.shape == (5 << 20,) and t.dtype == torch.float32
    ((start, length, advice),) = rec.calls
    lo, hi = t.data_ptr(), t.data_ptr() + t.numel() * 4
    assert advice == 14 and start % size == 0 and length % size == 0 and length > 0
    assert lo <= start and start + length <= hi
    assert hi - lo - length < 2 * size  # every whole aligned huge page is advised


def test_small_or_unadvisable_tensors_get_no_advice(monkeypatch):
    rec = _Recorder()
    monkeypatch.setattr(_memory, "_state", [(rec, 2 << 20)])
    _memory.empty_like(torch.empty(1000))
    _memory.advise_huge_pages(torch.empty(0))
    assert rec.calls == []
    monkeypatch.setattr(_memory, "_state", [None])  # no THP, no libc: a plain tensor
    t = _memory.empty_like(torch.empty(4 << 20))
    assert t.shape == (4 << 20,)


def test_the_probe_answers_on_this_system(monkeypatch):
    """Probing the system never raises; on Linux with THP it finds madvise and the page size."""
    monkeypatch.setattr(_memory, "_state", [])
    found = _memory._huge_pages()
    sysfs = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if sys.platform.startswith("linux") and sysfs.exists() and "[never]" not in sysfs.read_text():
        assert found is not None
    if found is not None:
        madvise, size = found
        assert callable(madvise) and size >= 1 << 20 and size & (size - 1) == 0


def test_the_experimental_switch_turns_huge_pages_off(monkeypatch):
    monkeypatch.setenv("GUMBEL_SOFTMAX_EXPERIMENTAL", "0")
    monkeypatch.setattr(_memory, "_state", [])  # probed anew
    assert _memory._huge_pages() is None
    assert _memory.empty_like(torch.empty(3 << 20)).shape == (3 << 20,)
