"""The Makefile's installs (read with ``make -n``, nothing is installed): ``make demo`` installs
torch and the ``lab`` extra only and says so; ``make test`` adds the ``dev`` extra after it; with
both done, neither installs again."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(venv: Path, target: str) -> list[str]:
    out = subprocess.run(
        ["make", "-C", str(ROOT), "-n", f"VENV={venv}", target],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [line for line in out.splitlines() if not line.startswith("make")]


def pip_installs(lines: list[str]) -> list[str]:
    return [
        line.split("pip install -q", 1)[1].strip() for line in lines if "pip install -q" in line
    ]


def test_demo_installs_torch_and_the_lab_extra_only_and_says_so(tmp_path):
    lines = dry_run(tmp_path / "venv", "demo")
    assert pip_installs(lines) == ["--upgrade pip", "torch==2.13.0", '-e ".[lab]"']
    assert any(line.startswith("echo") and "installing" in line for line in lines)
    assert lines[-1].endswith("-m gumbel_softmax.lab.demo")


def test_test_installs_the_dev_extra_after_the_demo_install(tmp_path):
    installs = pip_installs(dry_run(tmp_path / "venv", "test"))
    assert installs == ["--upgrade pip", "torch==2.13.0", '-e ".[lab]"', '-e ".[lab,dev,ray,docs]"']


def test_nothing_is_installed_again_once_both_are_done(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    newer = (ROOT / "pyproject.toml").stat().st_mtime + 10
    for stamp in (".installed-demo", ".installed-test"):
        (venv / stamp).touch()
        os.utime(venv / stamp, (newer, newer))
    for target in ("demo", "test"):
        assert pip_installs(dry_run(venv, target)) == [], target


def test_docs_installs_the_docs_extra_on_the_demo_install_and_builds_strictly(tmp_path):
    lines = dry_run(tmp_path / "venv", "docs")
    assert pip_installs(lines) == [
        "--upgrade pip",
        "torch==2.13.0",
        '-e ".[lab]"',
        '-e ".[lab,docs]"',
    ]
    assert "mkdocs build --strict" in lines[-1]


def test_docs_check_adds_playwright_and_chromium_then_checks_the_built_site(tmp_path):
    lines = dry_run(tmp_path / "venv", "docs-check")
    assert pip_installs(lines)[-1] == '-e ".[lab,docs-check]"'
    assert any("apt-get install -y -q chromium" in line for line in lines)
    assert lines[-1].endswith("docs/check_site.py site --screenshots build/docs-check")


def test_docs_installs_nothing_after_the_test_install(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    newer = (ROOT / "pyproject.toml").stat().st_mtime + 10
    for stamp in (".installed-demo", ".installed-test", ".installed-docs"):
        (venv / stamp).touch()
        os.utime(venv / stamp, (newer, newer))
    assert pip_installs(dry_run(venv, "docs")) == []
