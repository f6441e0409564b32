"""benchmarks/gan/run.py: a short run of each task end to end (rows, samples, markdown, figures),
the skip of finished runs, and its errors."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gan" / "run.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gan_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gan_bench"] = module
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(threads)
    del sys.modules["gan_bench"]


def test_short_runs_write_rows_samples_tables_and_figures_then_skip(bench, tmp_path, capsys):
    tiny = ["--pretrain-steps", "2", "--adversarial-steps", "2", "--hidden", "8",
            "--eval-every", "4", "--sample-temperatures", "0.5", "1", "--eval-strings", "40",
            "--results-dir", str(tmp_path)]  # fmt: skip
    assert bench.main(["--methods", "mle", "gs", *tiny]) == 0
    assert bench.main(["--task", "oracle", "--methods", "reinforce", *tiny]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [(r["task"], r["method"]) for r in rows] == [
        ("grammar", "mle"), ("grammar", "gs"), ("oracle", "reinforce")
    ]  # fmt: skip
    mle, gs, oracle = rows
    assert mle["steps"] == gs["steps"] == 4 and gs["adversarial_steps"] == 2
    assert set(mle["by_sampling_temperature"]) == {"0.5", "1"}
    assert 0 <= gs["parse_rate"] <= 1 and oracle["nll_oracle"] > 0 and "parse_rate" not in oracle
    assert (
        gs["temperature"].startswith("1/τ: 1 → 100") and oracle["temperature"] == "no temperature"
    )
    for name in ("mle", "gs", "oracle-reinforce"):
        lines = (tmp_path / "samples" / f"{name}.txt").read_text().split("\n")
        assert len(lines) == 41 and lines[-1] == ""  # --eval-strings strings, one per line
        assert all("  " not in s and s == s.strip() for s in lines)
    md = (tmp_path / "results.md").read_text()
    assert "| mle |" in md and "| gs |" in md and "synthetic oracle" in md
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert (tmp_path / "quality_diversity.png").stat().st_size > 0
    capsys.readouterr()
    assert bench.main(["--methods", "mle", *tiny]) == 0
    assert "mle-s0 done" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "results.json").read_text())) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--adversarial-steps", "0"], "--adversarial-steps"),
        (["--pretrain-steps", "-1"], "--pretrain"),
    ],
)
def test_bad_options_exit_2_with_a_message(bench, tmp_path, capsys, argv, message):
    assert bench.main([*argv, "--results-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_a_variant_gets_its_own_run_directory_and_label(bench, tmp_path):
    where = ["--results-dir", str(tmp_path)]
    args = bench.parser().parse_args(["--variant", "lrd1e-4", "--lr-d", "1e-4", *where])
    config = bench.make_config("gs", args)
    assert config.run_dir.endswith("runs/gs-lrd1e-4-s0") and config.lr_d == 1e-4
    assert bench.make_config("gs", bench.parser().parse_args(where)).run_dir.endswith("runs/gs-s0")


def test_seqgan_and_the_d_steps_options(bench, tmp_path, capsys):
    where = ["--results-dir", str(tmp_path)]
    args = bench.parser().parse_args(["--rollouts", "3", "--d-steps", "2", *where])
    seqgan = bench.make_config("seqgan", args)
    assert (seqgan.estimator, seqgan.reward, seqgan.rollouts) == ("sf-ema", "rollout", 3)
    assert bench.make_config("gs", args).d_steps == 2
    assert bench.make_config("reinforce", args).reward == "sequence"
    row = {"objective": "gan", "settings": {**bench._settings(seqgan), "lr_d": 1e-4}}
    assert bench._differences(row) == "rollout reward, N = 3; 2 D steps per G step; lr_d 0.0001"
    old = {"objective": "gan", "settings": {"lr_d": 1e-3}}  # a row from before these options
    assert bench._differences(old) == ""
    for bad in (["--rollouts", "0"], ["--d-steps", "0"]):
        assert bench.main([*bad, *where]) == 2
        assert "--rollouts and --d-steps must be >= 1" in capsys.readouterr().err


def test_the_variance_script_measures_each_reward_at_a_run(tmp_path, capsys):
    from gumbel_softmax.lab import cli

    spec = importlib.util.spec_from_file_location("gan_variance", SCRIPT.with_name("variance.py"))
    assert spec is not None and spec.loader is not None
    variance = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(variance)
    run = tmp_path / "run"
    argv = ["gan", "--n-train", "64", "--n-held-out", "8", "--hidden", "8", "--embed", "4",
            "--disc-hidden", "8", "--batch-size", "16", "--max-steps", "3", "--eval-strings",
            "8", "--sample-temperatures", "1", "--estimator", "sf-ema", "--no-progress",
            "--no-figures", "--run-dir", str(run)]  # fmt: skip
    assert cli.main(argv) == 0
    out = tmp_path / "variance.md"
    argv = ["--run", str(run), "--draws", "3", "--batch-size", "4", "--rollouts", "2"]
    assert variance.main([*argv, "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| sequence", "| rollout, N = 2"]
    assert rows[0].split(" | ")[2] == "1.000"  # the ratio to itself
    same = rows[1].split(" | ")[4]  # 3 draws are too few for the z-test: only its format here
    assert same == "yes" or same.startswith("no: the two samples' means differ")
    assert variance.main(["--run", str(tmp_path / "none")]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_the_mle_curve_is_read_at_a_parse_rate_by_linear_interpolation(bench):
    curve = [(0.5, 0.86), (0.999, 0.93), (0.94, 0.88)]  # unsorted, as a row's temperatures are
    assert bench.mle_unique_at(curve, 0.94) == pytest.approx(0.88)
    assert bench.mle_unique_at(curve, 0.72) == pytest.approx(0.86 + 0.02 * 0.22 / 0.44)
    assert bench.mle_unique_at(curve, 0.49) is None and bench.mle_unique_at(curve, 1.0) is None


def test_gans_are_judged_against_the_mle_runs_of_their_seed_and_the_curves_are_kept(
    bench, tmp_path, capsys
):
    def row(method, objective, steps, seed, points, pretrain=0):
        at_one = dict(zip(("parse_rate", "unique"), points["1"], strict=True))
        return {
            **at_one,
            "task": "grammar", "method": method, "objective": objective, "steps": steps,
            "seed": seed, "run": f"{method}-s{seed}", "heldout_nll": 12.0,
            "settings": {"eval_strings": 1000, "pretrain_steps": pretrain},
            "by_sampling_temperature": {
                t: {"parse_rate": p, "unique": u, "novel": 0.5} for t, (p, u) in points.items()
            },
        }  # fmt: skip

    curve = {"0.5": (0.99, 0.90), "1": (0.90, 0.90)}
    rows = [
        row("mle", "mle", 10, 0, curve),
        row("mle-6", "mle", 6, 0, {"0.5": (0.99, 0.80), "1": (0.90, 0.80)}),
        row("gs", "gan", 10, 0, {"1": (0.95, 0.95)}, pretrain=6),
        row("gs-seed1", "gan", 10, 1, {"1": (0.95, 0.95)}, pretrain=6),
    ]
    lines = bench._against_mle(rows)
    gs = next(x for x in lines if x.startswith("| gs | 1 |"))
    z = 0.05 / math.sqrt((0.95 * 0.05 + 0.9 * 0.1) / 1000)
    assert f"`mle` 0.900: +0.050 (+{z:.1f})" in gs and "`mle-6` 0.800: +0.150" in gs
    seed1 = next(x for x in lines if x.startswith("| gs-seed1 | 1 |"))
    assert "`mle`" not in seed1  # no MLE run of seed 1: nothing to compare with
    # A render without the runs' records keeps curves.png rather than drawing it emptier.
    (tmp_path / "curves.png").write_bytes(b"kept")
    bench._figures(rows, tmp_path)
    assert (tmp_path / "curves.png").read_bytes() == b"kept"
    assert "curves.png kept" in capsys.readouterr().err
    assert (tmp_path / "quality_diversity.png").stat().st_size > 100
