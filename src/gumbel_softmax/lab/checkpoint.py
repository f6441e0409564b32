"""Verified checkpoints, written with the lab's one atomic writer.

File layout: ``MAGIC`` (8 bytes) + SHA-256 of the payload (32 bytes) + the payload (``torch.save``
of a dict). :func:`save_checkpoint` writes through :func:`~gumbel_softmax.lab.records.write_atomic`
(temporary file + fsync + ``os.replace`` + directory fsync) and reads the file back to check its
digest, so a checkpoint that exists under its name was complete and verified when written.
:func:`load_checkpoint` checks the digest again and unpickles with ``torch.load(weights_only=True)``:
a checkpoint holds tensors and plain containers (dicts, lists, numbers, strings) only, so loading
one runs no code from the file.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import torch

from . import records

__all__ = ["MAGIC", "CheckpointError", "load_checkpoint", "save_checkpoint"]

MAGIC = b"GSVAECK1"
_DIGEST = 32


class CheckpointError(RuntimeError):
    """A checkpoint file exists but is truncated, corrupt or not ours; the message names it."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically, then verify the file on disk.

    Args:
        state: tensors and plain containers only (what ``weights_only=True`` loads).

    Raises:
        CheckpointError: the file read back does not match what was written.
        OSError: from the writer (a full disk names ``path``).
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).digest()
    records.write_atomic(path, MAGIC + digest + payload)
    _verify(path, path.read_bytes())


def _verify(path: Path, blob: bytes) -> bytes:
    """The payload of ``blob`` (the bytes of ``path``) after checking its header and digest."""
    if len(blob) < len(MAGIC) + _DIGEST or blob[: len(MAGIC)] != MAGIC:
        raise CheckpointError(f"{path} is not a gumbel-softmax checkpoint (bad or missing header)")
    digest = blob[len(MAGIC) : len(MAGIC) + _DIGEST]
    payload = blob[len(MAGIC) + _DIGEST :]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{path} is corrupt: its SHA-256 does not match its contents")
    return payload


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """Read and verify a checkpoint; ``None`` if ``path`` does not exist.

    Raises:
        CheckpointError: a wrong header, a truncated file, a checksum mismatch, or a payload
            that is not a dict of tensors and plain containers.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    payload = _verify(path, blob)
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path} cannot be loaded with weights_only=True: {err}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a checkpoint dict")
    return state
