"""Atomic, verified checkpoints.

File layout: ``MAGIC`` (8 bytes) + SHA-256 of the payload (32 bytes) + the payload (``torch.save``
of a dict). Writing goes to a temporary file in the same directory, which is flushed and fsynced and
then renamed over the target with :func:`os.replace` (atomic on POSIX), and the directory is fsynced
so the rename itself survives a crash. A run killed mid-write therefore leaves either the previous
checkpoint or the new one, plus at most a stray ``*.tmp*`` file, which loading ignores.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]

MAGIC = b"GSVAECK1"
_DIGEST = 32


class CheckpointError(RuntimeError):
    """A checkpoint file exists but is truncated, corrupt or not ours."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically (temp file + fsync + ``os.replace`` + dir fsync)."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(MAGIC)
        fh.write(hashlib.sha256(payload).digest())
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """Read and verify a checkpoint; ``None`` if ``path`` does not exist.

    Raises:
        CheckpointError: a wrong header, a truncated file or a checksum mismatch.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(blob) < len(MAGIC) + _DIGEST or blob[: len(MAGIC)] != MAGIC:
        raise CheckpointError(f"{path} is not a gumbel-softmax checkpoint (bad or missing header)")
    digest = blob[len(MAGIC) : len(MAGIC) + _DIGEST]
    payload = blob[len(MAGIC) + _DIGEST :]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{path} is corrupt: its SHA-256 does not match its contents")
    state: dict[str, Any] = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    return state
