"""Data sets for the experiments: MNIST, Fashion-MNIST and the fixed binarized MNIST.

``load_dataset(name, data_dir=..., download=...)`` returns :class:`Splits` (train / valid / test
as float32 ``(n, 784)`` tensors in [0, 1]). ``binarized-mnist-subset``, the default, ships inside
the package and works offline; the others are read from a data directory
(:func:`default_data_dir`: ``$GUMBEL_SOFTMAX_DATA`` or ``~/.cache/gumbel-softmax``) laid out as::

    <data_dir>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    <data_dir>/fashion-mnist/  (the same four names)
    <data_dir>/binarized-mnist/binarized_mnist.npz   or   binarized_mnist_{train,valid,test}.amat

and downloaded there, sha256-verified and atomically, by :func:`download`
(CLI: ``gumbel-softmax data download --dataset NAME``).
"""

from ._cli import download_main
from ._datasets import (
    CHECKSUMS,
    DATA_DIR_ENV,
    DATASETS,
    DEFAULT_DATASET,
    DOWNLOADABLE,
    GREY_VALID_SIZE,
    MIRRORS,
    Splits,
    default_data_dir,
    download,
    dynamic_binarize,
    load_dataset,
)
from ._download import DownloadError, fetch_file
from ._formats import read_idx, write_idx

__all__ = [
    "CHECKSUMS",
    "DATASETS",
    "DATA_DIR_ENV",
    "DEFAULT_DATASET",
    "DOWNLOADABLE",
    "GREY_VALID_SIZE",
    "MIRRORS",
    "DownloadError",
    "Splits",
    "default_data_dir",
    "download",
    "download_main",
    "dynamic_binarize",
    "fetch_file",
    "load_dataset",
    "read_idx",
    "write_idx",
]
