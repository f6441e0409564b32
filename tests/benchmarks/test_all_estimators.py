"""benchmarks/vae/all_estimators.py: which runs it makes, its settings, and a short sweep end to end
on the shipped subset (two estimators, a few steps) with its JSON, markdown and figure."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from gumbel_softmax import estimators
from gumbel_softmax.lab.records import read_metrics

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "vae" / "all_estimators.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("all_estimators", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["all_estimators"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["all_estimators"]


def test_every_estimator_on_every_latent_it_supports(bench):
    pairs = bench.combinations(["categorical", "bernoulli"], estimators.available())
    binary = {n for n in estimators.available() if estimators.estimator_class(n).binary_only}
    assert binary  # arm, disarm: otherwise this test checks nothing
    # estimators that enumerate joint states run where K**N fits their declared max_states
    fits = {
        lat: {
            n
            for n in estimators.available()
            if (limit := estimators.estimator_class(n).max_states) is None
            or bench.LATENTS[lat][1] ** bench.LATENTS[lat][0] <= limit
        }
        for lat in bench.LATENTS
    }
    assert "exact" not in fits["bernoulli"] | fits["categorical"]  # 2**200, 10**20 states
    assert {n for lat, n in pairs if lat == "bernoulli"} == fits["bernoulli"]
    assert {n for lat, n in pairs if lat == "categorical"} == fits["categorical"] - binary


def test_a_row_stored_before_a_config_field_existed_is_the_same_run_at_its_default(bench, tmp_path):
    args = bench.parser().parse_args(["--results-dir", str(tmp_path)])
    config, adjusted = bench.make_config("categorical", "gs", args)
    settings = bench.settings_of(config, adjusted)
    assert "normalize" in settings and settings["normalize"] is False  # added after early rows
    older = {k: v for k, v in settings.items() if k != "normalize"}
    assert bench.same_settings(older, settings)
    assert not bench.same_settings(older, {**settings, "normalize": True})
    assert not bench.same_settings({**older, "lr": 3e-4}, settings)
    assert not bench.same_settings({**settings, "removed_field": 1}, settings)


def test_settings_are_the_lab_defaults_except_a_declared_minimum_temperature(bench, tmp_path):
    args = bench.parser().parse_args(["--results-dir", str(tmp_path)])
    defaults = bench.VAEConfig().to_dict()
    for _, name in bench.combinations(["bernoulli"], estimators.available()):
        config, adjusted = bench.make_config("bernoulli", name, args)
        low = estimators.estimator_class(name).min_temperature
        assert (config.n_latent, config.n_classes, config.epochs) == (200, 2, 10)
        assert (config.lr, config.batch_size, config.anneal_rate) == (1e-3, 100, 3e-5)
        assert config.eval_samples == 1000 and config.dataset == "binarized-mnist"
        if low > defaults["tau_min"]:  # reinmax: tau may not go below 1
            assert config.tau_min == low and config.tau0 >= low
            assert adjusted and "min_temperature" in adjusted[0]
        else:
            assert (config.tau0, config.tau_min) == (defaults["tau0"], defaults["tau_min"])
            assert adjusted == []
    assert bench.make_config("categorical", "reinmax", args)[0].tau_min == 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--estimators", "nope"], "unknown"),
        (["--latent", "categorical", "--estimators", "arm"], "no run"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--max-steps", "-1"], "--max-steps must be >= 0"),
        (["--epoch", "3"], "unrecognized arguments"),  # no abbreviations
        (["--latent", "gaussian"], "invalid choice"),
    ],
)
def test_bad_options_exit_2_with_a_message(bench, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        bench.main([*argv, "--results-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "all_estimators.py: error:" in err and message in err


def test_results_dir_that_is_a_file_is_refused(bench, tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--results-dir", str(path), "--render"])
    assert exc.value.code == 2 and "is not a directory" in capsys.readouterr().err


def test_short_sweep_writes_rows_table_and_figure_then_skips_finished_runs(bench, tmp_path, capsys):
    argv = [
        "--dataset",
        "binarized-mnist-subset",
        "--latent",
        "bernoulli",
        "--estimators",
        "gs",
        "arm",
        "--max-steps",
        "4",
        "--eval-every",
        "2",
        "--eval-samples",
        "2",
        "--valid-images",
        "20",
        "--test-images",
        "20",
        "--results-dir",
        str(tmp_path),
    ]
    assert bench.main(argv) == 0
    rows = json.loads((tmp_path / "all_estimators.json").read_text())
    assert [(r["latent"], r["estimator"]) for r in rows] == [
        ("bernoulli", "arm"),
        ("bernoulli", "gs"),
    ]
    for r in rows:
        assert r["steps"] == 4 and r["epochs"] == pytest.approx(4 / 100)
        for key in ("valid_neg_elbo", "test_neg_elbo", "test_iw_bound_m2", "wall_s"):
            assert isinstance(r[key], float) and r[key] > 0, key
        assert r["settings"]["max_steps"] == 4 and r["settings"]["lr"] == 1e-3
        assert r["git_revision"] and r["machine"]["torch"] and r["machine"]["cores"] >= 1
        assert (tmp_path / r["run_dir"] / "metrics.jsonl").exists()
    table = (tmp_path / "all_estimators.md").read_text()
    assert "not** the paper's tuned protocol" in table
    assert "| gs |" in table and "| arm |" in table
    png = (tmp_path / "all_estimators-bernoulli.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "all_estimators-categorical.png").exists()  # no categorical run
    for r in rows:  # the curve travels with the row: the figure needs no run record
        evals = [m for m in read_metrics(tmp_path / r["run_dir"] / "metrics.jsonl")
                 if m["kind"] == "eval" and m.get("split") == "valid"]  # fmt: skip
        assert r["curve"] == [[m["step"], m["neg_elbo"]] for m in evals] and len(evals) == 2
    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "all_estimators-bernoulli.png").unlink()
    assert bench.main(["--render", "--results-dir", str(tmp_path)]) == 0
    assert (tmp_path / "all_estimators-bernoulli.png").read_bytes()[:8] == png[:8]
    # A row without its curve (an older row) and without its record: the figure is kept.
    old = [{k: v for k, v in r.items() if k != "curve" or r["estimator"] != "arm"} for r in rows]
    (tmp_path / "all_estimators.json").write_text(json.dumps(old))
    (tmp_path / "all_estimators-bernoulli.png").write_bytes(b"kept")
    capsys.readouterr()
    assert bench.main(["--render", "--results-dir", str(tmp_path)]) == 0
    assert (tmp_path / "all_estimators-bernoulli.png").read_bytes() == b"kept"
    assert "all_estimators-bernoulli.png kept: no curve for arm" in capsys.readouterr().err
    note = "`all_estimators-bernoulli.png` is kept from an earlier render: 1 of its rows"
    assert note in (tmp_path / "all_estimators.md").read_text()  # the table says so too
    (tmp_path / "all_estimators.json").write_text(json.dumps(rows))

    # Started again: nothing left to do, the results are unchanged.
    capsys.readouterr()
    assert bench.main(argv) == 0
    assert capsys.readouterr().out.count("skipped") == 2
    assert json.loads((tmp_path / "all_estimators.json").read_text()) == rows

    # --render rebuilds the table from the JSON alone.
    (tmp_path / "all_estimators.md").unlink()
    assert bench.main(["--render", "--results-dir", str(tmp_path)]) == 0
    assert (tmp_path / "all_estimators.md").read_text() == table
