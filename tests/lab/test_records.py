"""The machine line every benchmark table carries (``lab.records.machine_line``)."""

from __future__ import annotations

import os

import pytest
import torch

from gumbel_softmax.lab import records


def test_machine_line_cpu_names_the_cpu_cores_threads_and_the_load_span(monkeypatch):
    monkeypatch.setattr(records, "cpu_model", lambda: "Some CPU 9000")
    monkeypatch.setattr(os, "getloadavg", lambda: (3.25, 0.0, 0.0))
    line = records.machine_line(load_start=1.0)
    assert line == (
        f"Some CPU 9000, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), 1-min load 1.0-3.2"
    )
    assert records.machine_line().endswith("1-min load 3.2 at the end")


def test_machine_line_cuda_names_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"GPU of {device}")
    line = records.machine_line("cuda:0")
    assert line.startswith("GPU of cuda:0, CUDA ")
    assert line.endswith(f"torch {torch.__version__}")


@pytest.mark.parametrize("text", ["model name\t: AMD EPYC 7B13\n", "flags: x\n"])
def test_cpu_model_reads_proc_cpuinfo_or_falls_back(monkeypatch, text):
    monkeypatch.setattr(records.Path, "read_text", lambda self: text)
    expected = "AMD EPYC 7B13" if "model name" in text else None
    assert records.cpu_model() == (
        expected or records.platform.processor() or records.platform.machine()
    )


def test_put_row_replaces_the_row_of_the_same_run_and_keeps_the_rest(tmp_path):
    path = tmp_path / "results.json"
    assert records.read_rows(path) == []
    records.put_row(path, {"run": "a", "v": 1})
    records.put_row(path, {"run": "b", "v": 2})
    assert records.put_row(path, {"run": "a", "v": 3}) == [
        {"run": "b", "v": 2},
        {"run": "a", "v": 3},
    ]
    assert records.read_rows(path) == [{"run": "b", "v": 2}, {"run": "a", "v": 3}]
    assert (tmp_path / ".results.lock").exists() and not list(tmp_path.glob("*.part"))
