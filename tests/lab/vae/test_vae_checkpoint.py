import errno
import hashlib
import io
import os

import pytest
import torch

from gumbel_softmax.lab import records
from gumbel_softmax.lab.checkpoint import MAGIC, CheckpointError, load_checkpoint, save_checkpoint


def test_roundtrip(tmp_path):
    path = tmp_path / "ck.pt"
    g = torch.Generator().manual_seed(3)
    state = {"w": torch.arange(5.0), "step": 7, "rng": g.get_state()}
    save_checkpoint(state, path)
    back = load_checkpoint(path)
    assert back is not None
    assert torch.equal(back["w"], state["w"]) and back["step"] == 7
    assert torch.equal(back["rng"], state["rng"])
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_missing_is_none(tmp_path):
    assert load_checkpoint(tmp_path / "absent.pt") is None


@pytest.mark.parametrize("damage", ["flip", "truncate", "header", "empty"])
def test_corruption_is_detected(tmp_path, damage):
    path = tmp_path / "ck.pt"
    save_checkpoint({"w": torch.randn(100)}, path)
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[-10] ^= 0xFF
    elif damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "header":
        blob[:4] = b"XXXX"
    else:
        blob = bytearray()
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=str(path.name)):
        load_checkpoint(path)


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"step": 1}, path)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process is stopped between writing the temp file and the rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == [path]  # the temporary file went with the exception
    assert load_checkpoint(path) == {"step": 1}


def test_a_full_disk_names_the_checkpoint_and_leaves_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"step": 1}, path)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(records.os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as info:
        save_checkpoint({"step": 2, "w": torch.zeros(10)}, path)
    monkeypatch.undo()
    assert info.value.filename == str(path)
    assert list(tmp_path.iterdir()) == [path]
    assert load_checkpoint(path) == {"step": 1}


def test_loading_runs_no_code_from_the_file(tmp_path):
    """A payload with an arbitrary object is refused (torch.load(weights_only=True))."""
    buf = io.BytesIO()
    torch.save({"step": 1, "thing": records.Path("x")}, buf)  # a class torch does not allow
    payload = buf.getvalue()
    path = tmp_path / "ck.pt"
    path.write_bytes(MAGIC + hashlib.sha256(payload).digest() + payload)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)
