"""What goes wrong at run time, in every lab experiment: each ends with ``gumbel-softmax:
error: ...`` naming the path or option, exit status 2, no traceback, and nothing a user made is
lost; a resume says so. The experiment registry drives the cases (each experiment's declared
``tiny`` configuration, a 4-step run), so a new experiment is covered without editing this file.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests.conftest import assert_cli_fails, cli_argv

from gumbel_softmax.lab import cli, records, runner
from gumbel_softmax.lab.experiments import EXPERIMENTS

pytestmark = [
    pytest.mark.parametrize("exp", sorted(EXPERIMENTS)),
    pytest.mark.usefixtures("one_thread"),
]


def _quick(exp: str, run_dir: Path, *more: str) -> list[str]:
    """A CLI run of 4 steps of the experiment's tiny configuration, checkpoints at 2 and 4."""
    fields = {
        **EXPERIMENTS[exp].tiny,
        "max_steps": 4, "checkpoint_every": 2, "log_every": 2, "eval_every": 4,
        "figures": False, "progress": False, "run_dir": run_dir,
    }  # fmt: skip
    return [*cli_argv(exp, fields), *more]


def test_a_device_that_is_not_there(exp, tmp_path, capsys):
    # A CPU build has no CUDA; a CUDA build has no device past its count.
    name = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    run = tmp_path / "run"
    assert_cli_fails(
        _quick(exp, run, "--device", name), capsys, f"device {name!r}", "not available"
    )
    assert not run.exists()  # refused before anything was written


def test_a_run_dir_that_is_a_file(exp, tmp_path, capsys):
    path = tmp_path / "run"
    path.write_text("not a directory")
    assert_cli_fails(_quick(exp, path), capsys, str(path), "is a file")
    assert_cli_fails(_quick(exp, path / "sub"), capsys, str(path), "is a file")
    assert path.read_text() == "not a directory"


@pytest.mark.skipif(os.name != "posix", reason="the run directory's lock is a POSIX flock")
def test_a_run_dir_another_process_is_training(exp, tmp_path, capsys):
    """A second process on a run directory (e.g. a sweep's orphaned worker still training it)
    is refused before it reads or writes anything; once the first ends, the run goes on."""
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(run / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert_cli_fails(
            _quick(exp, run), capsys, str(run), "in use by another process", f"pid {holder.pid}"
        )
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing else written
    finally:
        holder.kill()
        holder.wait()
    assert cli.main(_quick(exp, run)) == 0  # the lock died with its process


_HOLD_LOCK = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.truncate(0); f.write(str(os.getpid())); f.flush()
print("held", flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_run_dir(exp, tmp_path, capsys):
    path = tmp_path / "run"
    path.mkdir()
    path.chmod(0o555)
    try:
        assert_cli_fails(_quick(exp, path), capsys, str(path), "Permission denied")
    finally:
        path.chmod(0o755)


def test_a_read_only_file_system(exp, tmp_path, capsys, monkeypatch):
    """What a read-only mount does to the writer (simulated: the tests may run as root)."""

    def refuse(*args, dir=None, prefix="", suffix="", **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), f"{dir}/{prefix}abc{suffix}")

    monkeypatch.setattr(records.tempfile, "mkstemp", refuse)
    run = tmp_path / "run"
    assert_cli_fails(_quick(exp, run), capsys, str(run / "config.json"), "Read-only")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name an fd")
def test_a_full_disk_while_writing_a_checkpoint(exp, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    real = os.fsync

    def full_for_checkpoints(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target.endswith(records.TEMP_SUFFIX) and ".pt." in target:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(records.os, "fsync", full_for_checkpoints)
    assert_cli_fails(
        _quick(exp, run), capsys, str(run / "checkpoints" / "checkpoint-2.pt"), "No space left"
    )
    assert not list(run.rglob(f"*{records.TEMP_SUFFIX}"))  # the half-written file is gone
    monkeypatch.undo()  # space freed: the same command runs
    assert cli.main(_quick(exp, run)) == 0


def _flip_a_bit(path):
    blob = bytearray(path.read_bytes())
    blob[100] ^= 1
    path.write_bytes(bytes(blob))


def test_corrupt_checkpoints(exp, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(_quick(exp, run)) == 0  # checkpoints at steps 2 and 4
    out = capsys.readouterr().out
    _flip_a_bit(run / "checkpoints" / "checkpoint-4.pt")
    # Only the newest is corrupt: a warning naming it, and the run goes on from the older one.
    assert cli.main(_quick(exp, run)) == 0
    captured = capsys.readouterr()
    assert "gumbel-softmax: warning: " in captured.err
    assert "checkpoint-4.pt is corrupt" in captured.err and "checkpoint-2.pt" in captured.err
    assert "resuming from step 2" in captured.err
    assert captured.out == out  # the same result
    for name in ("checkpoint-2.pt", "checkpoint-4.pt"):
        _flip_a_bit(run / "checkpoints" / name)
    assert_cli_fails(
        _quick(exp, run), capsys, "checkpoint-4.pt is corrupt", "checkpoint-2.pt is corrupt"
    )


@pytest.mark.parametrize(
    ("module", "options"),
    [("tensorboard", []), ("tqdm", ["--progress"]), ("matplotlib", ["--figures"])],
)
def test_a_base_install_without_the_lab_extra(exp, tmp_path, capsys, monkeypatch, module, options):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    run = tmp_path / "run"
    assert_cli_fails(_quick(exp, run, *options), capsys, module, "gumbel-softmax[lab]")
    assert not run.exists()


def test_resuming_and_re_printing_say_so(exp, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(_quick(exp, run, "--max-steps", "2")) == 0
    assert "resuming" not in capsys.readouterr().err
    assert cli.main(_quick(exp, run)) == 0
    assert "gumbel-softmax: resuming from step 2" in capsys.readouterr().err
    assert cli.main(_quick(exp, run)) == 0
    assert "gumbel-softmax: run already finished at step 4" in capsys.readouterr().err


def test_a_resume_on_another_sampler_backend_warns(exp, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert cli.main(_quick(exp, run, "--max-steps", "2")) == 0
    started = json.loads((run / "run.json").read_text())["sessions"][0]["sampler_backend"]
    monkeypatch.setattr(runner, "sampler_backend", lambda device: "another")
    assert cli.main(_quick(exp, run)) == 0
    err = capsys.readouterr().err
    assert f"gumbel-softmax: warning: {run} started on the {started!r} sampler backend" in err
    assert "resumes on 'another'" in err
    # and nothing is said when a run merely starts, or resumes on the same backend
    assert cli.main(_quick(exp, tmp_path / "other")) == 0
    assert "warning" not in capsys.readouterr().err
