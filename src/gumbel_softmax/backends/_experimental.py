"""The switch for the experimental part of the numba backend: running on torch's own OpenMP
threads (:mod:`._parallel`).

``GUMBEL_SOFTMAX_EXPERIMENTAL=0``, set before the first call (it is probed once), turns it off;
the results do not depend on it, only the speed.
"""

from __future__ import annotations

import os

EXPERIMENTAL_ENV = "GUMBEL_SOFTMAX_EXPERIMENTAL"


def experimental_enabled() -> bool:
    """Whether the experimental parts may be used (``GUMBEL_SOFTMAX_EXPERIMENTAL`` is not 0)."""
    return os.environ.get(EXPERIMENTAL_ENV, "1").strip() != "0"
