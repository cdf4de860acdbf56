"""Each row's nearest center with an upper bound on its distance and a lower bound on the
second nearest: the standard-only search behind Hamerly's bounds (``_algorithms.hamerly``)."""

from __future__ import annotations

from types import ModuleType

from .._lib.budget import row_blocks
from .._lib.compat import Array, array_device
from .bounds import as_lower_bound, as_upper_bound
from .primitives import squared_norms


def standard_nearest_two(
    X: Array,
    rows: Array | None,
    centers: Array,
    centers_acc: Array,
    offset: Array,
    *,
    block_rows: int,
    xp: ModuleType,
) -> tuple[Array, Array, Array]:
    """For the given rows (all when None): nearest center, an upper bound on its distance, a
    lower bound on the second's (both bounds in X's dtype).

    The argmin is Lloyd's own (``assign_block``'s GEMM form in X's dtype, on centered data), so a
    row that is checked gets the label plain Lloyd would give it. The first distance is then taken
    exactly, in the accumulation dtype, from the difference; the second is the GEMM form's value
    lowered by that form's worst-case rounding error, so it stays a true lower bound. Both are
    rounded outward to X's dtype (see ``as_upper_bound``).
    """
    acc = centers_acc.dtype
    k, d = centers.shape
    device = array_device(X)
    columns = xp.arange(k, device=device)
    c_sq = squared_norms(centers, xp=xp)
    c_sq_max = float(xp.max(c_sq))
    inf = xp.asarray(float("inf"), dtype=centers.dtype, device=device)
    # |fl(‖x‖² − 2x·c + ‖c‖²) − exact| ≤ 2·d·ε·(‖x‖² + ‖c‖²) (dot products of length d).
    relative_error = 2.0 * (d + 2) * _epsilon(centers.dtype, xp)
    n_rows = X.shape[0] if rows is None else rows.shape[0]
    # Filled block by block (slice assignment), so no list of parts is ever concatenated.
    labels = xp.empty((n_rows,), dtype=xp.int64, device=device)
    first = xp.empty((n_rows,), dtype=X.dtype, device=device)
    second = xp.empty((n_rows,), dtype=X.dtype, device=device)
    for start, stop in row_blocks(n_rows, block_rows):
        picked = X[start:stop, :] if rows is None else xp.take(X, rows[start:stop], axis=0)
        block = picked - offset
        scores = block @ (-2.0 * centers).T + c_sq[None, :]  # as in assign_block
        nearest = xp.argmin(scores, axis=1)
        runner_up = xp.min(xp.where(columns[None, :] == nearest[:, None], inf, scores), axis=1)
        x_sq = xp.astype(squared_norms(block, xp=xp), acc)
        second_sq = x_sq + xp.astype(runner_up, acc) - relative_error * (x_sq + c_sq_max)
        diff = xp.astype(block, acc) - xp.take(centers_acc, nearest, axis=0)
        labels[start:stop] = xp.astype(nearest, xp.int64)
        first[start:stop] = as_upper_bound(xp.sqrt(xp.sum(diff * diff, axis=1)), X.dtype, xp=xp)
        second[start:stop] = as_lower_bound(xp.sqrt(xp.clip(second_sq, min=0.0)), X.dtype, xp=xp)
    return labels, first, second


def _epsilon(dtype, xp: ModuleType) -> float:
    return float(xp.finfo(dtype).eps)
