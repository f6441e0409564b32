"""``scripts/device_checks.sh``, the one command a session with a GPU runs: its syntax, and that a
step is skipped (not started and cut off) when the time budget left is below its limit, so the
files of the steps that ran always come back. (Its steps were run end to end on the CPU with
``DEVICE=cpu QUICK=1``; the GPU run itself needs the device machine.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "device_checks.sh"


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_a_step_whose_limit_exceeds_the_budget_left_is_skipped(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "DEVICE": "cpu", "BUDGET_S": "60"}
    env["PYTHON"] = sys.executable
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    log = (tmp_path / "device.log").read_text()
    assert log == done.stdout
    for name in ("CUDA tests", "kernel benchmark", "stacked training", "semi-supervised speed-up"):
        assert f"{name}: skipped" in log, log
    assert "torch " in log and "done in" in log
