"""X as a fit uses it: validated, on the computing device, with its weights, block size and
centering offset (``prepare.prepare_data`` makes it)."""

from __future__ import annotations

from typing import Any, NamedTuple

from .._lib.compat import Array


class PreparedData(NamedTuple):
    """X and what every pass of a fit needs beside it."""

    X: Array  # on the computing device: X itself, a copy, or a HostRows streaming it
    xp: Any
    device: Any
    weights: Array
    block_rows: int
    offset: Array  # column means of X, in X's dtype; distances are computed on X - offset
    mean_variance: float
    source: Array  # X as validated, in the caller's library (results go back there)
