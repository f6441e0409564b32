"""The run record: config, provenance (seed, git revision, package versions), metrics as JSONL,
and the one atomic writer every file of the lab goes through.

:func:`atomic_path` (and :func:`write_atomic` on it) is how the lab writes a file: into a temporary
file ``.<name>.<random>.part`` in the destination's directory, flushed and fsynced, renamed over the
destination with :func:`os.replace` (atomic on POSIX and Windows), and the directory fsynced so the
rename itself survives a crash. A reader therefore sees the old file or the new one, never a mix;
a process killed mid-write leaves at most a ``.part`` file, which no reader opens. JSON records,
the rewritten metrics file, checkpoints and downloaded data files all go through it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "cpu_model",
    "derive_seed",
    "git_revision",
    "machine_line",
    "metrics_line",
    "package_versions",
    "put_row",
    "read_metrics",
    "read_rows",
    "save_figure",
    "truncate_metrics",
    "write_atomic",
    "write_json_atomic",
]

TEMP_SUFFIX = ".part"  # of the temporary files of atomic_path; readers skip them


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows, for the
    machine line of a benchmark table."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(device: str = "cpu", *, load_start: float | None = None) -> str:
    """One line saying where a benchmark ran, for its table: the GPU's name and CUDA version on
    ``cuda``; otherwise the CPU's model, its cores, torch's thread count and the 1-minute load
    average (from ``load_start``, read before the run, to now), since on a shared machine the
    load explains the wall times."""
    import torch

    if str(device).startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        return f"{name}, CUDA {torch.version.cuda}, torch {torch.__version__}"
    now = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    load = f"{now:.1f} at the end" if load_start is None else f"{load_start:.1f}-{now:.1f}"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), 1-min load {load}"
    )


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
    for name in (
        "gumbel-softmax",
        "torch",
        "numba",
        "numpy",
        "matplotlib",
        "tqdm",
        "tensorboard",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance(seed: int) -> dict[str, Any]:
    """What a run records about where it ran: time, argv, seed, git revision, versions, threads."""
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
        "seed": seed,
        "git_revision": git_revision(),
        "versions": package_versions(),
        "threads": __import__("torch").get_num_threads(),
    }


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; when the block ends without an exception, fsync
    the file there, rename it to ``dest`` and fsync the directory.

    The temporary file is in ``dest``'s directory (created if missing) so that ``os.replace``
    is a rename within one file system; on any exception (a full disk, an interrupt) it is
    removed and ``dest`` is untouched.

    Raises:
        OSError: from the file system, with ``filename`` set to ``dest`` when the error did
            not name a file (a write or fsync failing for lack of space).
    """
    dest = Path(dest)
    tmp: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=dest.parent, prefix=f".{dest.name}.", suffix=TEMP_SUFFIX
        )
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        _fsync_directory(dest.parent)
    except OSError as err:
        if err.filename is None or str(err.filename).endswith(TEMP_SUFFIX):
            err.filename = str(dest)  # the user's path, not our temporary name
        raise
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; directories cannot be opened on Windows, where
    # os.replace is durable enough for these files.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Replace the file ``path`` by ``data`` (text is UTF-8) through :func:`atomic_path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 100) -> Path:
    """Render the matplotlib figure ``fig`` (format from ``path``'s suffix, PNG without one) and
    write it with :func:`write_atomic`: an existing figure is replaced whole or not at all."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi)
    write_atomic(path, buf.getvalue())
    return path


def write_json_atomic(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` with :func:`write_atomic`."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a benchmark's results file (a JSON list); none if it does not exist yet."""
    path = Path(path)
    rows: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    return rows


def put_row(path: str | Path, row: dict[str, Any], *, key: str = "run") -> list[dict[str, Any]]:
    """Put ``row`` into the results file ``path`` in place of the stored row with the same
    ``row[key]`` (a shorter earlier session of the same run), written with :func:`write_atomic`
    under an exclusive lock on ``.<name>.lock`` beside it (two sweeps may finish together);
    return the rows now stored."""
    import fcntl  # POSIX; the benchmarks' sweeps run there

    path = Path(path)
    with open(path.with_name(f".{path.stem}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = [*(r for r in read_rows(path) if r[key] != row[key]), row]
        write_atomic(path, json.dumps(rows, indent=2) + "\n")
    return rows


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


def eval_curve(path: str | Path, *keys: str) -> list[list[Any]]:
    """``[[step, row[key], ...], ...]`` of the validation evaluations of a metrics file (rows of
    kind ``"eval"`` whose ``split``, where they have one, is ``"valid"``): the learning curve a
    benchmark's results row carries, so that its figure is drawn without the run's record."""
    return [
        [m["step"], *(m[k] for k in keys)]
        for m in read_metrics(path)
        if m.get("kind") == "eval" and m.get("split", "valid") == "valid"
    ]


def metrics_line(row: dict[str, Any]) -> str:
    """One row of a metrics JSONL file, as written (keys sorted, newline-terminated)."""
    return json.dumps(row, sort_keys=True) + "\n"


def truncate_metrics(path: str | Path, step: int) -> None:
    """Keep only the rows with ``row["step"] <= step`` (those the checkpoint at ``step`` covers),
    rewriting the file with :func:`write_atomic` (a partial last line is dropped too)."""
    rows = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    write_atomic(path, "".join(metrics_line(r) for r in rows))
