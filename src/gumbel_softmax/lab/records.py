"""The run record: config, provenance (seed, git revision, package versions), metrics as JSONL."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "derive_seed",
    "git_revision",
    "package_versions",
    "read_metrics",
    "truncate_metrics",
    "write_json_atomic",
]


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed that is a pure function of ``seed`` and ``keys`` (e.g. ``("order", epoch)``).

    Independent streams (data order per epoch, evaluation per step) get their own seeds, so resuming
    needs none of their states: a stream is recreated from its key.
    """
    text = "/".join(str(k) for k in (seed, *keys)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def git_revision(path: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the checkout holding ``path`` (default: this package), with a
    ``+dirty`` suffix for uncommitted changes, or ``"unknown"`` outside a git checkout."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a run depends on."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("gumbel-softmax", "torch", "numpy", "matplotlib", "tqdm", "tensorboard"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance(seed: int) -> dict[str, Any]:
    """What a run records about where it ran: time, argv, seed, git revision, versions."""
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
        "seed": seed,
        "git_revision": git_revision(),
        "versions": package_versions(),
        "threads": __import__("torch").get_num_threads(),
    }


def write_json_atomic(obj: Any, path: str | Path) -> None:
    """Write JSON to ``path`` through a temp file, fsync and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics JSONL file; a partial last line (a killed write) is skipped."""
    rows: list[dict[str, Any]] = []
    try:
        lines: Iterable[str] = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return rows
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_metrics(path: str | Path, step: int) -> None:
    """Keep only the rows with ``row["step"] <= step`` (those the checkpoint at ``step`` covers)."""
    rows = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    with open(tmp, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
