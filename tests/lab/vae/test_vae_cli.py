import json

import pytest
from tests.conftest import assert_cli_fails

from gumbel_softmax import estimators
from gumbel_softmax.lab import cli, experiment
from gumbel_softmax.lab.config import HELP


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["vae", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for key in HELP:
        assert "--" + key.replace("_", "-") in out, key
    assert "resumes" in out and "--config" in out
    # --estimator lists what the registry holds
    # (argparse may wrap a line after a hyphen: "st-" / "annealed")
    assert "registered: " + ", ".join(estimators.available()) in out.replace("- ", "-")


def test_top_level_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "vae" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["vae", "--lr", "-1"], "lr must be positive"),
        (["vae", "--estimator", "nope"], "estimator must be one of"),
        (["vae", "--latent", "gaussian"], "invalid choice"),
        (["vae", "--epochs", "ten"], "invalid int value"),
        (["vae", "--no-such-option"], "unrecognized arguments"),
        (["vae", "--estim", "gs"], "unrecognized arguments: --estim"),  # no abbreviations
        (["vae", "--max-step", "3"], "unrecognized arguments: --max-step"),
        (["vae", "--config", "/nonexistent.toml"], "does not exist"),
        (["vae", "--dataset", "mnist", "--data-dir", "/nonexistent"], "missing"),
    ],
)
def test_bad_options_fail_before_any_work(argv, match, capsys, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("training must not start")

    monkeypatch.setattr(experiment, "_as_tensor", no_training)  # the first use of loaded data
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err


def test_toml_then_command_line(tmp_path, fake_data, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text(
        'estimator = "gs"\nlr = 0.01\nbatch_size = 20\neval_samples = 3\neval_images = 10\n'
        "test_images = 10\nprogress = false\nfigures = false\n"
    )
    run = tmp_path / "run"
    argv = [
        "vae",
        "--config",
        str(toml),
        "--lr",
        "0.002",
        "--max-steps",
        "3",
        "--run-dir",
        str(run),
    ]
    assert cli.main(argv) == 0
    stored = json.loads((run / "config.json").read_text())
    assert stored["estimator"] == "gs" and stored["lr"] == 0.002 and stored["max_steps"] == 3
    out = capsys.readouterr().out
    assert "test -ELBO" in out and str(run) in out
    # The same command again resumes (nothing left to do) and reports the same numbers.
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == out


def test_data_download_is_handed_to_the_data_module(monkeypatch):
    from gumbel_softmax.lab import data

    seen = []
    monkeypatch.setattr(data, "download_main", lambda argv: seen.append(list(argv)) or 0)
    assert cli.main(["data", "download", "--dataset", "mnist", "--help"]) == 0
    assert seen == [["--dataset", "mnist", "--help"]]


def test_data_download_refuses_abbreviations(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "download", "--datas", "mnist"])
    assert exit_info.value.code == 2
    assert "--datas" in capsys.readouterr().err


# ------------------------------------------------------------------ runtime failures as messages
# (those of every experiment: tests/lab/test_runtime_failures.py)
def _quick(run_dir, *more):
    """A CLI run of a few steps on the shipped subset."""
    return [
        "vae",
        "--n-latent",
        "4",
        "--batch-size",
        "50",
        "--max-steps",
        "4",
        "--checkpoint-every",
        "2",
        "--log-every",
        "2",
        "--eval-every",
        "4",
        "--eval-samples",
        "2",
        "--eval-samples-during",
        "2",
        "--eval-images",
        "20",
        "--test-images",
        "20",
        "--no-figures",
        "--no-progress",
        "--run-dir",
        str(run_dir),
        *more,
    ]


def test_config_that_is_a_directory(tmp_path, capsys):
    assert_cli_fails(["vae", "--config", str(tmp_path)], capsys, str(tmp_path), "is a directory")


def test_a_corrupt_data_file(tmp_path, capsys):
    folder = tmp_path / "data" / "binarized-mnist"
    folder.mkdir(parents=True)
    (folder / "binarized_mnist.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    argv = _quick(
        tmp_path / "run", "--dataset", "binarized-mnist", "--data-dir", str(tmp_path / "data")
    )
    assert_cli_fails(argv, capsys, str(folder / "binarized_mnist.npz"), "corrupt")
    assert not (tmp_path / "run").exists()


def test_progress_notes_the_kernel_preparation_and_the_final_evaluation(tmp_path, capsys):
    assert cli.main(_quick(tmp_path / "run", "--progress")) == 0
    err = capsys.readouterr().err
    assert "preparing the sampler kernels" in err
    assert "final evaluation at step 4 (m=2)" in err and "final evaluation done" in err
