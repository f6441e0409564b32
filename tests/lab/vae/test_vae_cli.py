import errno
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from gumbel_softmax import estimators
from gumbel_softmax.lab import cli, experiment, records, runner
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


def _fails(argv, capsys, *parts):
    """``argv`` ends with ``gumbel-softmax: error: ...`` holding ``parts``, status 2, no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "gumbel-softmax: error: " in err and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)
    return err


def test_config_that_is_a_directory(tmp_path, capsys):
    _fails(["vae", "--config", str(tmp_path)], capsys, str(tmp_path), "is a directory")


def test_a_device_that_is_not_there(tmp_path, capsys):
    # A CPU build has no CUDA; a CUDA build has no device past its count.
    name = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    _fails(_quick(tmp_path / "run", "--device", name), capsys, f"device {name!r}", "not available")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_run_dir_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "run"
    path.write_text("not a directory")
    _fails(_quick(path), capsys, str(path), "is a file")
    _fails(_quick(path / "sub"), capsys, str(path), "is a file")
    assert path.read_text() == "not a directory"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_run_dir(tmp_path, capsys):
    path = tmp_path / "run"
    path.mkdir()
    path.chmod(0o555)
    try:
        _fails(_quick(path), capsys, str(path / "config.json"), "Permission denied")
    finally:
        path.chmod(0o755)


def test_a_read_only_file_system(tmp_path, capsys, monkeypatch):
    """What a read-only mount does to the writer (simulated: the tests may run as root)."""

    def refuse(*args, dir=None, prefix="", suffix="", **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), f"{dir}/{prefix}abc{suffix}")

    monkeypatch.setattr(records.tempfile, "mkstemp", refuse)
    _fails(_quick(tmp_path / "run"), capsys, str(tmp_path / "run" / "config.json"), "Read-only")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name an fd")
def test_a_full_disk_while_writing_a_checkpoint(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    real = os.fsync

    def full_for_checkpoints(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(records.TEMP_SUFFIX) and ".pt." in (
            os.readlink(f"/proc/self/fd/{fd}")
        ):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(records.os, "fsync", full_for_checkpoints)
    _fails(_quick(run), capsys, str(run / "checkpoints" / "checkpoint-2.pt"), "No space left")
    assert not list(run.rglob(f"*{records.TEMP_SUFFIX}"))  # the half-written file is gone
    monkeypatch.undo()  # space freed: the same command runs
    assert cli.main(_quick(run)) == 0


def _flip_a_bit(path):
    blob = bytearray(path.read_bytes())
    blob[100] ^= 1
    path.write_bytes(bytes(blob))


def test_corrupt_checkpoints(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(_quick(run)) == 0  # checkpoints at steps 2 and 4
    out = capsys.readouterr().out
    _flip_a_bit(run / "checkpoints" / "checkpoint-4.pt")
    # Only the newest is corrupt: a warning naming it, and the run goes on from the older one.
    assert cli.main(_quick(run)) == 0
    captured = capsys.readouterr()
    assert "gumbel-softmax: warning: " in captured.err
    assert "checkpoint-4.pt is corrupt" in captured.err and "checkpoint-2.pt" in captured.err
    assert "resuming from step 2" in captured.err
    assert captured.out == out  # the same result
    for name in ("checkpoint-2.pt", "checkpoint-4.pt"):
        _flip_a_bit(run / "checkpoints" / name)
    _fails(_quick(run), capsys, "checkpoint-4.pt is corrupt", "checkpoint-2.pt is corrupt")


def test_a_corrupt_data_file(tmp_path, capsys):
    folder = tmp_path / "data" / "binarized-mnist"
    folder.mkdir(parents=True)
    (folder / "binarized_mnist.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    argv = _quick(
        tmp_path / "run", "--dataset", "binarized-mnist", "--data-dir", str(tmp_path / "data")
    )
    _fails(argv, capsys, str(folder / "binarized_mnist.npz"), "corrupt")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("module", "options"),
    [("tensorboard", []), ("tqdm", ["--progress"]), ("matplotlib", ["--figures"])],
)
def test_a_base_install_without_the_lab_extra(tmp_path, capsys, monkeypatch, module, options):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    _fails(_quick(tmp_path / "run", *options), capsys, module, "gumbel-softmax[lab]")
    assert not (tmp_path / "run").exists()


def test_resuming_and_re_printing_say_so(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(_quick(run, "--max-steps", "2")) == 0
    assert "resuming" not in capsys.readouterr().err
    assert cli.main(_quick(run)) == 0
    assert "gumbel-softmax: resuming from step 2" in capsys.readouterr().err
    assert cli.main(_quick(run)) == 0
    assert "gumbel-softmax: run already finished at step 4" in capsys.readouterr().err


def test_progress_notes_the_kernel_preparation_and_the_final_evaluation(tmp_path, capsys):
    assert cli.main(_quick(tmp_path / "run", "--progress")) == 0
    err = capsys.readouterr().err
    assert "preparing the sampler kernels" in err
    assert "final evaluation at step 4 (m=2)" in err and "final evaluation done" in err


def test_a_resume_on_another_sampler_backend_warns(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert cli.main(_quick(run, "--max-steps", "2")) == 0
    started = json.loads((run / "run.json").read_text())["sessions"][0]["sampler_backend"]
    monkeypatch.setattr(runner, "sampler_backend", lambda device: "another")
    assert cli.main(_quick(run)) == 0
    err = capsys.readouterr().err
    assert f"gumbel-softmax: warning: {run} started on the {started!r} sampler backend" in err
    assert "resumes on 'another'" in err
    # and nothing is said when a run merely starts, or resumes on the same backend
    assert cli.main(_quick(tmp_path / "other")) == 0
    assert "warning" not in capsys.readouterr().err
