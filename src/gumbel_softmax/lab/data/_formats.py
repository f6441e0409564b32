"""File formats: gzipped IDX (MNIST, Fashion-MNIST), the binarized-MNIST ``.amat`` text, npz.

Every reader validates what it reads and raises :class:`ValueError` naming the file, so that a
corrupt or truncated file is never silently turned into wrong pixels.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

PIXELS = 784
"""Pixels per image (28 x 28) in every data set here."""

# IDX type codes (third magic byte) -> big-endian numpy dtype, from the format's definition at
# http://yann.lecun.com/exdb/mnist/ ("THE IDX FILE FORMAT").
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_IMAGES_MAGIC = 2051
"""Magic number of an IDX file of unsigned-byte images, ``0x00000803`` (3 dimensions)."""
IDX_LABELS_MAGIC = 2049
"""Magic number of an IDX file of unsigned-byte labels, ``0x00000801`` (1 dimension)."""

# One .amat row: 784 characters '0'/'1', each followed by a space, the last by '\n'.
_AMAT_ROW_BYTES = 2 * PIXELS


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks of ``chunk_size`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_idx(path: str | os.PathLike[str], *, expected_magic: int | None = None) -> np.ndarray:
    """Read a (gzipped, if the name ends in ``.gz``) IDX file into a numpy array.

    Layout: a big-endian header ``0x00 0x00 <type code> <ndim>`` (the magic number), then
    ``ndim`` big-endian uint32 dimensions, then ``prod(dims)`` values in row-major order.
    MNIST images have magic 2051 (unsigned bytes, 3 dimensions), labels 2049 (1 dimension).

    Args:
        path: the file; gzip is detected by the ``.gz`` suffix.
        expected_magic: if given, the magic number the file must carry.

    Returns:
        An array of the header's shape, in native byte order.

    Raises:
        ValueError: a bad magic number (or not the expected one), a truncated or over-long
            payload, or a corrupt gzip stream (bad CRC, cut short).
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        # gzip checks the stream's CRC-32 and length at its end, so a cut or flipped file
        # lands here rather than in the IDX checks below.
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({err})") from err
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    zero, type_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    magic = int.from_bytes(raw[:4], "big")
    if zero != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number {magic:#010x})")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path}: IDX magic number is {magic}, expected {expected_magic}")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} of {header_end} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected = header_end + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "over-long"
        raise ValueError(
            f"{path}: {kind} IDX file: header says shape {shape} ({expected} bytes), "
            f"found {len(raw)} bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` (uint8) as a gzipped IDX file; the inverse of :func:`read_idx`.

    Used by the tests to build tiny valid files, and by anyone who wants to hand-make one.
    """
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8 or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: array must be uint8 with 1..255 dims, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def parse_amat(raw: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse binarized-MNIST ``.amat`` text into a uint8 array of shape ``(N, 28, 28)``.

    Each line holds 784 values ``0`` or ``1`` separated by single spaces and ends in ``\\n``
    (the layout of Larochelle's release, whose sha256 the downloader checks first), so the
    values are every other byte of a fixed-width row and no text parsing is needed.

    Raises:
        ValueError: any other layout, naming ``source``.
    """
    if len(raw) == 0 or len(raw) % _AMAT_ROW_BYTES:
        raise ValueError(
            f"{source}: not a binarized-MNIST .amat file: {len(raw)} bytes is not a whole "
            f"number of {_AMAT_ROW_BYTES}-byte rows of 784 '0'/'1' values"
        )
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _AMAT_ROW_BYTES)
    values, separators = rows[:, 0::2], rows[:, 1::2]
    if (
        not np.all((values == ord("0")) | (values == ord("1")))
        or not np.all(separators[:, :-1] == ord(" "))
        or not np.all(separators[:, -1] == ord("\n"))
    ):
        raise ValueError(
            f"{source}: not a binarized-MNIST .amat file: expected lines of 784 '0'/'1' "
            "values separated by single spaces"
        )
    return (values - ord("0")).reshape(-1, 28, 28)


def iter_amat(images: np.ndarray, *, rows_per_chunk: int = 4096) -> Iterator[bytes]:
    """Yield the ``.amat`` text of uint8 0/1 ``images`` (N, 28, 28), in chunks of rows.

    The inverse of :func:`parse_amat`. Rebuilding the text reproduces Larochelle's files byte for
    byte, so hashing it checks an npz cache against the published .amat sha256 values.
    """
    flat = images.reshape(len(images), PIXELS)
    for start in range(0, len(flat), rows_per_chunk):
        block = flat[start : start + rows_per_chunk]
        text = np.full((len(block), _AMAT_ROW_BYTES), ord(" "), dtype=np.uint8)
        text[:, 0::2] = block + ord("0")
        text[:, -1] = ord("\n")
        yield text.tobytes()


def amat_sha256(images: np.ndarray) -> str:
    """Hex sha256 of the ``.amat`` text of ``images``; see :func:`iter_amat`."""
    digest = hashlib.sha256()
    for chunk in iter_amat(images):
        digest.update(chunk)
    return digest.hexdigest()


def read_npz(source: str | os.PathLike[str] | bytes) -> dict[str, np.ndarray]:
    """Read every array of an npz file (a path or its bytes) into memory.

    Raises:
        ValueError: a corrupt zip (zipfile checks each member's CRC-32) or npy member.
    """
    name = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with np.load(handle, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as err:
        raise ValueError(f"{name}: corrupt or unreadable npz file ({err})") from err


def write_npz_deterministic(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], *, compresslevel: int = 6
) -> None:
    """Write ``arrays`` as a deflated npz whose bytes depend only on the arrays (and zlib).

    ``np.savez_compressed`` stamps each zip member with the current time, so two runs give
    different files (and sha256s); here every member gets the zip epoch 1980-01-01 instead.
    Level 9 is ~10x slower than 6 on binary images for ~13% less size: worth it only for the
    small shipped asset.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=compresslevel)
