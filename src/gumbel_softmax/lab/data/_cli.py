"""``gumbel-softmax data download``: a thin command over :func:`download`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ._datasets import DATA_DIR_ENV, DOWNLOADABLE, default_data_dir, download
from ._download import DownloadError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gumbel-softmax data download",
        allow_abbrev=False,
        description=(
            "Download data sets into the data directory, each file checked against its "
            "published sha256 and written atomically; files already there and intact are kept."
        ),
    )
    parser.add_argument(
        "--dataset",
        action="append",
        choices=DOWNLOADABLE,
        required=True,
        help="data set to fetch (repeat for several; binarized-mnist-subset ships in the package)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"data directory (default: ${DATA_DIR_ENV} if set, else {default_data_dir()})",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per connection/read")
    parser.add_argument(
        "--retries", type=int, default=3, help="tries per mirror for transient errors"
    )
    return parser


def download_main(argv: Sequence[str] | None = None) -> int:
    """Run ``gumbel-softmax data download`` with ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 when every data set is in place, 1 when a download failed
        (the reason is printed on stderr). Bad options exit with argparse's status 2.
    """
    args = _parser().parse_args(argv)
    if args.retries < 1 or not args.timeout > 0:
        _parser().error("--retries must be at least 1 and --timeout positive")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in dict.fromkeys(args.dataset):
        try:
            folder = download(name, args.data_dir, timeout=args.timeout, retries=args.retries)
        except (DownloadError, OSError, ValueError) as err:
            print(f"gumbel-softmax data download: {name}: {err}", file=sys.stderr)
            return 1
        print(f"{name}: ready in {folder}")
    return 0
