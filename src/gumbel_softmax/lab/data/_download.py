"""Verified, atomic downloads over a list of mirrors, with the standard library only.

A file is accepted only when its sha256 is one of the known values, and it reaches its final name
only by ``os.replace`` of a complete, verified, fsync'ed temporary file in the same directory, so
a reader never sees a partial file, and a crash leaves at most a ``.part`` file that no loader
reads. A file already there with the wrong sha256 (cut short, corrupted) is downloaded again.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Sequence
from pathlib import Path

from gumbel_softmax import __version__

from ..records import atomic_path  # the lab's one atomic writer
from ._formats import sha256_file

logger = logging.getLogger("gumbel_softmax.lab.data")

_USER_AGENT = f"gumbel-softmax/{__version__} (+python-urllib)"
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """Every mirror failed for a file; the message lists each URL tried and why it failed."""


class _MirrorFailure(Exception):
    """One try at one URL failed; ``permanent`` when trying that URL again cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def _download_once(url: str, tmp: Path, accepted: Collection[str], timeout: float) -> None:
    """Stream ``url`` into ``tmp``, checking its length and sha256.

    Network failures become :class:`_MirrorFailure`; a local write error (disk full) propagates
    as it is, since no other mirror can fix it.
    """
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest = hashlib.sha256()
    received = 0
    declared: str | None = None
    with open(tmp, "wb") as out:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                declared = response.headers.get("Content-Length")
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
        except urllib.error.HTTPError as err:
            # A 4xx other than timeout/too-many-requests will not change on a second try.
            permanent = 400 <= err.code < 500 and err.code not in (408, 429)
            raise _MirrorFailure(f"HTTP {err.code} {err.reason}", permanent=permanent) from err
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            ssl.SSLError,
            TimeoutError,
            ConnectionError,
        ) as err:
            raise _MirrorFailure(f"{type(err).__name__}: {err}", permanent=False) from err
    # http.client's read(n) returns b"" when the connection closes early instead of raising,
    # so a cut transfer is caught here; it is worth retrying, unlike a wrong checksum.
    if declared is not None and received != int(declared):
        raise _MirrorFailure(f"transfer cut short: {received} of {declared} bytes", permanent=False)
    actual = digest.hexdigest()
    if actual not in accepted:
        raise _MirrorFailure(
            f"sha256 {actual} ({received} bytes) is not the published value", permanent=True
        )


def fetch_file(
    urls: Sequence[str],
    dest: str | os.PathLike[str],
    sha256: Collection[str],
    *,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> bool:
    """Make ``dest`` a verified copy of the file at ``urls``, downloading it if needed.

    If ``dest`` exists with an accepted sha256 nothing is done. Otherwise each URL is tried in
    order, up to ``retries`` times for a transient failure (timeout, connection error, a cut
    transfer, HTTP 5xx/408/429; waiting ``backoff * 2**attempt`` seconds between tries), and
    once for a permanent one (another 4xx, or bytes whose sha256 is not accepted), until one
    gives accepted bytes; these replace ``dest`` atomically (see :func:`atomic_path`).

    Args:
        urls: full URLs of the same file, best first.
        dest: where the file goes; its directory is created.
        sha256: the accepted hex sha256 values (more than one when a file is published in
            several byte-different but equivalent versions).
        timeout: seconds allowed for connecting and for each read.
        retries: tries per URL for transient failures, at least 1.
        backoff: base of the exponential wait between tries, in seconds.

    Returns:
        True if the file was downloaded, False if a verified copy was already there.

    Raises:
        DownloadError: every URL failed; ``dest`` is left as it was, and no temporary file remains.
        ValueError: ``retries < 1``, ``timeout <= 0``, ``backoff < 0``, or no URL or checksum.
    """
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if not backoff >= 0:
        raise ValueError(f"backoff must be non-negative, got {backoff}")
    if not urls or not sha256:
        raise ValueError(f"fetch_file needs at least one URL and one sha256 for {dest}")
    dest = Path(dest)
    if dest.exists():
        if sha256_file(dest) in sha256:
            return False
        logger.warning("%s does not match its published sha256; downloading it again", dest)
    failures: list[str] = []
    for url in urls:
        for attempt in range(retries):
            logger.info("downloading %s -> %s", url, dest)
            try:
                with atomic_path(dest) as tmp:
                    _download_once(url, tmp, sha256, timeout)
                return True
            except _MirrorFailure as err:
                failures.append(f"  {url} (try {attempt + 1}): {err}")
                logger.warning("%s failed: %s", url, err)
                if err.permanent:
                    break
                if attempt + 1 < retries:
                    time.sleep(backoff * 2**attempt)
    raise DownloadError(
        f"could not download {dest.name}: every mirror failed\n" + "\n".join(failures)
    )
