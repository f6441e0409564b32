"""benchmarks/sbn/run.py: which cells it runs, a short sweep end to end on the shipped subset (its
JSON rows, markdown and figure), the skip of finished runs, and its errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from gumbel_softmax import estimators

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sbn" / "run.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("sbn_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sbn_bench"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["sbn_bench"]


def test_the_cells_are_the_papers_and_every_applicable_estimator(bench):
    binary = {n for n in estimators.available() if estimators.estimator_class(n).binary_only}
    assert binary and set(bench.applicable("categorical")).isdisjoint(binary)
    for latent in ("bernoulli", "categorical"):
        names = bench.applicable(latent)
        assert names[:7] == list(bench.PAPER[latent])  # the paper's seven first
        assert len(bench.PAPER[latent]) == 7
    assert set(bench.applicable("bernoulli")) >= set(estimators.available()) - {
        n for n in estimators.available() if estimators.estimator_class(n).min_temperature > 1
    }
    assert bench.PAPER_LRS == [3e-5, 1e-5, 3e-4, 1e-4, 3e-3, 1e-3]


def test_short_sweep_writes_rows_table_and_figure_then_skips_finished_runs(bench, tmp_path, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    argv = [
        "--dataset", "binarized-mnist-subset", "--results-dir", str(tmp_path),
        "--latents", "bernoulli", "categorical", "--estimators", "sf", "arm",
        "--lrs", "3e-3", "1e-3", "--epochs", "1", "--max-steps", "3", "--eval-samples", "3",
        "--eval-samples-during", "2", "--valid-images", "20", "--test-images", "20",
    ]  # fmt: skip
    try:
        assert bench.main(argv) == 0
        rows = json.loads((tmp_path / "results.json").read_text())
        # arm is binary-only: no categorical run
        assert sorted({(r["latent"], r["estimator"]) for r in rows}) == [
            ("bernoulli", "arm"),
            ("bernoulli", "sf"),
            ("categorical", "sf"),
        ]
        assert len(rows) == 6 and all(r["metric"] == "nll_m3" and r["steps"] == 3 for r in rows)
        assert {r["settings"]["normalize"] for r in rows if r["estimator"] == "sf"} == {True}
        assert {r["settings"]["normalize"] for r in rows if r["estimator"] != "sf"} == {False}
        md = (tmp_path / "results.md").read_text()
        selected = md.split("## Every run")[0]
        assert selected.count("| bernoulli |") == 2 and selected.count("| categorical |") == 1
        assert "swept lr 0.001, 0.003" in selected
        closing = md.split("## Closing note")[1]
        assert closing.count("| bernoulli |") == 2  # one line per selected cell
        for r in bench.selected(rows):  # the lower validation NLL of the two learning rates
            pair = [
                s for s in rows if (s["latent"], s["estimator"]) == (r["latent"], r["estimator"])
            ]
            assert r["valid_value"] == min(s["valid_value"] for s in pair)
        assert (tmp_path / "curves.png").stat().st_size > 0
        assert (tmp_path / "figures" / rows[0]["run"] / "completions.png").exists()
        capsys.readouterr()
        assert bench.main(argv) == 0  # again: nothing runs
        assert capsys.readouterr().out.count(" done (") == 6
        assert len(json.loads((tmp_path / "results.json").read_text())) == 6
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--estimators", "nope"], "unknown estimator(s) ['nope']"),
        (["--lrs", "0"], "--lrs must be > 0"),
    ],
)
def test_bad_options_exit_2_with_a_message(bench, tmp_path, capsys, argv, message):
    assert bench.main([*argv, "--results-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_results_dir_that_is_a_file_is_refused(bench, tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert bench.main(["--results-dir", str(tmp_path / "f")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_the_closing_table_reads_the_trend_and_the_course_from_the_rows_curve(bench):
    # 20 epochs of 10 steps, one evaluation an epoch, falling by 1 nat an epoch to 80.
    curve = [[10 * e, 100.0 - e] for e in range(1, 21)]
    row = {"steps": 200, "epochs": 20.0, "curve": curve}
    assert bench._trend(row) == pytest.approx(-5.0)  # quarters of 5 epochs, 1 nat an epoch
    assert bench._at_epoch(row, 10) == 90.0 and bench._at_epoch(row, 10.5) is None
    line = bench._closing({**row, "latent": "bernoulli", "estimator": "gs", "value": 80.5,
                           "paper_value": 58.5})  # fmt: skip
    assert line == "| bernoulli | gs | 80.50 | 58.5 | +22.00 | 20.0 | -5.00 | 90.00 → 80.00 |"
    assert bench._trend({"curve": curve[:3]}) is None  # under four evaluations: no trend
