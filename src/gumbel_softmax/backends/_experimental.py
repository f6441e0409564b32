"""The switch for the experimental parts of the numba backend: running on torch's own OpenMP
threads (:mod:`._parallel`) and huge pages under large outputs (:mod:`._memory`).

``GUMBEL_SOFTMAX_EXPERIMENTAL=0``, set before the first call (each part probes once), turns both
off; the results do not depend on them, only the speed.
"""

from __future__ import annotations

import os

EXPERIMENTAL_ENV = "GUMBEL_SOFTMAX_EXPERIMENTAL"


def experimental_enabled() -> bool:
    """Whether the experimental parts may be used (``GUMBEL_SOFTMAX_EXPERIMENTAL`` is not 0)."""
    return os.environ.get(EXPERIMENTAL_ENV, "1").strip() != "0"
