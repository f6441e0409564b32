"""benchmarks/semisup: run.py (Table 2's rows: selection on validation, a short sweep end to end
on the shipped subset with its JSON, markdown and figures) and speedup.py (its JSON keys)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "benchmarks" / "semisup"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"semisup_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.usefixtures("one_thread")


def test_selection_uses_validation_only():
    run = _load("run")
    rows = [
        {"method": "gs", "valid_accuracy": 0.5, "test_accuracy": 0.9, "run": "a"},
        {"method": "gs", "valid_accuracy": 0.6, "test_accuracy": 0.1, "run": "b"},
        {"method": "marginal", "valid_accuracy": 0.2, "test_accuracy": 0.2, "run": "c"},
    ]
    assert [r["run"] for r in run.selected(rows)] == ["c", "b"]  # the paper's order


def test_a_short_sweep_writes_its_rows_and_figures(tmp_path):
    run = _load("run")
    argv = [
        "--dataset", "binarized-mnist-subset", "--estimators", "gs", "--alphas", "0.1",
        "--lrs", "1e-3", "--max-steps", "1", "--eval-every", "1", "--eval-images", "20",
        "--test-images", "20", "--results-dir", str(tmp_path),
    ]  # fmt: skip
    assert run.main(argv) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["method"] for r in rows] == ["gs"]
    (r,) = rows
    assert r["steps"] == 1 and r["test_images"] == 20 and 0 <= r["test_accuracy"] <= 1
    assert r["paper_accuracy"] == 0.924 and r["paper_elbo"] == -109.6 and r["test_elbo"] < 0
    md = (tmp_path / "results.md").read_text()
    for column in ("test_accuracy", "test_elbo", "valid_accuracy", "paper_accuracy", "α"):
        assert column in md
    assert "test-selected" in md
    assert (tmp_path / "curves.png").exists()
    assert (tmp_path / "figures" / "gs-class_samples.png").exists()
    # The row carries its validation curve: the figure needs no run record ...
    assert [p[0] for p in r["curve"]] == [1] and 0 <= r["curve"][0][1] <= 1
    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "curves.png").unlink()
    assert run.main(["--render", "--results-dir", str(tmp_path)]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0
    # ... and one without either (a row from before) keeps the figure rather than thin it.
    old = {k: v for k, v in r.items() if k != "curve"}
    (tmp_path / "results.json").write_text(json.dumps([old]))
    (tmp_path / "curves.png").write_bytes(b"kept")
    assert run.main(["--render", "--results-dir", str(tmp_path)]) == 0
    assert (tmp_path / "curves.png").read_bytes() == b"kept"


def test_the_speedup_json_has_its_keys(tmp_path):
    speedup = _load("speedup")
    argv = ["--batch-size", "2", "--labelled-batch-size", "2", "--steps", "1", "--rounds", "1"]
    assert speedup.main([*argv, "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "speedup.json").read_text())
    assert record["classes"] == [10, 100] and record["device"] == "cpu"
    for a, b, s in zip(
        record["steps_per_s_marginal"], record["steps_per_s_gs"], record["speedup"], strict=True
    ):
        assert a > 0 and b > 0 and s == pytest.approx(b / a)
    assert (tmp_path / "speedup.md").exists() and (tmp_path / "speedup.png").exists()
