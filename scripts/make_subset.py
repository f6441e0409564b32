"""Make the binarized-MNIST subset shipped in the package (deterministic).

Reads the full fixed binarized MNIST npz (``<data_dir>/binarized-mnist/binarized_mnist.npz``,
arrays ``x_{train,valid,test}`` uint8 (N, 28, 28) and derived labels ``y_*``), draws a seeded
random subset of each split without replacement, and writes
``src/gumbel_softmax/lab/assets/binarized_mnist_subset.npz`` with, per split:

- ``x_<split>``: uint8 (n, 98), each image's 784 pixels packed 8 per byte (``np.packbits``,
  big-endian bit order, rows in the order drawn: random, so the class-sorted test split is mixed),
- ``y_<split>``: uint8 (n,), the source's derived labels,
- ``idx_<split>``: uint16 (n,), the row of each image in the source split.

The npz bytes depend only on the data (zip members carry a fixed timestamp), so running this again
gives the same sha256, which it prints; ``SUBSET_SHA256`` in
``src/gumbel_softmax/lab/data/_datasets.py`` and ``assets/PROVENANCE.md`` must carry it.

Usage: python scripts/make_subset.py [--data-dir ../shared/data] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from gumbel_softmax.lab.data import load_dataset
from gumbel_softmax.lab.data._formats import write_npz_deterministic

SIZES = {"train": 10_000, "valid": 1_000, "test": 2_000}
SEED = 20170101  # any fixed value; the year of the paper (arXiv:1611.01144, ICLR 2017)
ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "src" / "gumbel_softmax" / "lab" / "assets" / "binarized_mnist_subset.npz"


def build(data_dir: Path) -> dict[str, np.ndarray]:
    # load_dataset checks the source against the published .amat sha256s.
    full = load_dataset("binarized-mnist", data_dir=data_dir)
    rng = np.random.default_rng(SEED)
    arrays: dict[str, np.ndarray] = {}
    for split, n in SIZES.items():
        x = getattr(full, split).numpy().astype(np.uint8)
        y = getattr(full, f"labels_{split}")
        if y is None:
            sys.exit(f"{data_dir}: the source npz has no labels (y_{split}); use the shared copy")
        rows = rng.choice(len(x), size=n, replace=False)
        arrays[f"x_{split}"] = np.packbits(x[rows], axis=1)
        arrays[f"y_{split}"] = y.numpy()[rows].astype(np.uint8)
        arrays[f"idx_{split}"] = rows.astype(np.uint16)
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--check", action="store_true", help="rebuild and compare with the asset, write nothing"
    )
    args = parser.parse_args()
    arrays = build(args.data_dir)
    out = ASSET.with_suffix(".npz.new") if args.check else ASSET
    write_npz_deterministic(out, arrays, compresslevel=9)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    if args.check:
        same = out.read_bytes() == ASSET.read_bytes()
        out.unlink()
        print(f"rebuilt sha256 {digest}: {'identical to' if same else 'DIFFERS from'} {ASSET}")
        sys.exit(0 if same else 1)
    print(f"wrote {out} ({out.stat().st_size:,} bytes), sha256 {digest}")
    for split, n in SIZES.items():
        counts = np.bincount(arrays[f"y_{split}"], minlength=10).tolist()
        mean = np.unpackbits(arrays[f"x_{split}"], axis=1, count=784).mean()
        print(f"  {split}: {n} images, pixel mean {mean:.5f}, label counts {counts}")


if __name__ == "__main__":
    main()
