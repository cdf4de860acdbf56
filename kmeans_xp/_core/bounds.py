"""Distance bounds kept in a narrower dtype than they are computed in, rounded outward.

Hamerly's bounds are computed in the accumulation dtype (float64) and stored in X's dtype:
float32 bounds halve the per-row state of a float32 fit. A bound stays a bound only if the cast
rounds the right way, which these two functions guarantee.
"""

from __future__ import annotations

from types import ModuleType

from .._lib.compat import Array


def as_upper_bound(values: Array, dtype, *, xp: ModuleType) -> Array:
    """Non-negative ``values`` in ``dtype``, rounded up, so an upper bound stays one.

    Bounds are kept in X's dtype (float32 bounds halve the per-row state of a float32 fit).
    Scaling by 1 + ε before the cast is enough: rounding to nearest moves a value by at most ε/2
    of itself, so the result is never below the value (nor, for zero and inf, different).
    """
    if values.dtype == dtype:
        return values
    return xp.astype(values * (1.0 + float(xp.finfo(dtype).eps)), dtype)


def as_lower_bound(values: Array, dtype, *, xp: ModuleType) -> Array:
    """``values`` in ``dtype``, rounded down, so a lower bound stays one; negative ones become 0
    (a distance is never negative, and scaling by 1 − ε rounds down only what is ≥ 0)."""
    values = xp.clip(values, min=0.0)
    if values.dtype == dtype:
        return values
    return xp.astype(values * (1.0 - float(xp.finfo(dtype).eps)), dtype)
