"""Standard-only passes over X in row blocks: the assign-and-sum pass of a Lloyd iteration,
labels and inertia, distances to the centers, per-label sums, and the statistics the fit centers
X by. Backends have faster versions of some (``_backends``); these are their reference and the
path for every other library.

Rows are centered block by block (``minus_offset``): X itself is never copied. A pass that runs
out of device memory is run again with smaller blocks (``with_smaller_blocks_on_oom``).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._lib.budget import row_blocks
from .._lib.compat import (
    Array,
    accumulation_dtype,
    array_device,
    is_cupy,
    out_of_memory_errors,
    release_cached_memory,
)
from .primitives import AssignFactory, PassBuffers, squared_norms


def column_mean_and_variance(X: Array, *, xp: ModuleType, block_rows: int) -> tuple[Array, float]:
    """Column means of X (accumulation dtype) and the mean of the per-column variances.

    Two passes over row blocks (mean, then squared deviations), so the variance does not suffer
    the cancellation of E[x²] − E[x]².
    """
    n_samples = X.shape[0]
    acc = accumulation_dtype(xp, array_device(X))
    total = None
    for start, stop in row_blocks(n_samples, block_rows):
        part = column_sums(xp.astype(X[start:stop, :], acc), xp=xp)
        total = part if total is None else total + part
    mean = total / n_samples
    sq_dev = None
    for start, stop in row_blocks(n_samples, block_rows):
        dev = xp.astype(X[start:stop, :], acc) - mean
        part = column_sums(dev * dev, xp=xp)
        sq_dev = part if sq_dev is None else sq_dev + part
    return mean, float(xp.mean(sq_dev / n_samples))


def column_sums(A: Array, *, xp: ModuleType) -> Array:
    """Sums over the rows of a 2-D block. On CuPy a matrix-vector product (cuBLAS): CuPy's own
    reduction along axis 0 of a C-ordered array has no CUB path and is many times slower."""
    if is_cupy(xp):
        ones = xp.ones((A.shape[0],), dtype=A.dtype, device=array_device(A))
        return xp.matmul(ones, A)
    return xp.sum(A, axis=0)


def minus_offset(A: Array, offset: Array | None) -> Array:
    """``A - offset``: rows of X centered as the passes use them; A itself where X was centered
    once for the whole fit (``lloyd``'s ``x_centered``: the passes then get ``offset=None``)."""
    return A if offset is None else A - offset


def standard_assign_and_sum(
    X: Array,
    centers: Array,
    weights: Array,
    offset: Array,
    segment_sum: Callable,
    *,
    block_rows: int,
    xp: ModuleType,
    make_assign: AssignFactory,
    out: PassBuffers | None = None,
) -> tuple[Array, Array, Array, Array]:
    """One E+M pass: labels, partial squared distances (see ``assign_block``), sums, counts.

    ``centers`` are centered (``offset`` subtracted); so are the sums. Labels and partials are
    written into arrays allocated once (``out``'s, when given: see ``PassBuffers``), so the
    pass never holds them twice.
    """
    n_samples, n_clusters = X.shape[0], centers.shape[0]
    device = array_device(X)
    assign = make_assign(centers)
    labels = out.labels if out is not None else None
    partial = out.partial if out is not None else None
    sums = counts = n_changed = None
    for start, stop in row_blocks(n_samples, block_rows):
        X_block = minus_offset(X[start:stop, :], offset)
        block_labels, block_partial = assign(X_block)
        if labels is None:
            labels = xp.empty((n_samples,), dtype=block_labels.dtype, device=device)
            partial = xp.empty((n_samples,), dtype=block_partial.dtype, device=device)
        elif out is not None:
            changed = xp.sum(xp.astype(block_labels != labels[start:stop], xp.int64))
            n_changed = changed if n_changed is None else n_changed + changed
        labels[start:stop] = block_labels
        partial[start:stop] = block_partial
        s, c = segment_sum(X_block, block_labels, weights[start:stop], n_clusters, xp=xp)
        sums, counts = (s, c) if sums is None else (sums + s, counts + c)
    if out is not None:
        out.n_changed = n_changed if n_changed is not None else 0
    return labels, partial, sums, counts


def with_smaller_blocks_on_oom(
    run: Callable[[int], Any], block_rows: int, *, xp: ModuleType, device: Any
) -> tuple[Any, int]:
    """``run(block_rows=...)``, run again with half the rows per block while it runs out of memory.

    Returns the result and the block rows that worked (callers keep them for later passes).
    Memory budgets come from free device memory, but another process, or the library's own
    cache, can take memory between the estimate and the allocation.
    """
    errors = out_of_memory_errors(xp)
    while True:
        try:
            return run(block_rows=block_rows), block_rows
        except errors:
            if block_rows == 1:
                raise
        block_rows = max(1, block_rows // 2)
        release_cached_memory(xp, device)


def squared_distances_from_partials(
    X: Array, partial: Array, offset: Array, *, block_rows: int, xp: ModuleType
) -> Array:
    """‖x − c_label‖² from ``assign_block``'s partial distances, clipped at 0.

    Needed only for empty-cluster repair and verbose output, so ‖x‖² is not computed every
    iteration.
    """
    parts = []
    for start, stop in row_blocks(X.shape[0], block_rows):
        x_sq = squared_norms(minus_offset(X[start:stop, :], offset), xp=xp)
        parts.append(xp.clip(x_sq + partial[start:stop], min=0.0))
    return xp.concat(parts)


def sum_by_label(
    X: Array,
    labels: Array,
    weights: Array,
    offset: Array,
    n_clusters: int,
    segment_sum: Callable,
    *,
    block_rows: int,
    xp: ModuleType,
) -> tuple[Array, Array]:
    """Per-cluster sums and counts for given labels (used after empty clusters were refilled)."""
    sums = counts = None
    for start, stop in row_blocks(X.shape[0], block_rows):
        X_block = minus_offset(X[start:stop, :], offset)
        s, c = segment_sum(X_block, labels[start:stop], weights[start:stop], n_clusters, xp=xp)
        sums, counts = (s, c) if sums is None else (sums + s, counts + c)
    return sums, counts


def standard_labels_and_inertia(
    X, centers, centered, weights, offset, *, make_assign, block_rows, xp
) -> tuple[Array, float | None]:
    device = array_device(X)
    acc = accumulation_dtype(xp, device)
    assign = make_assign(centered)
    centers_acc = xp.astype(centers, acc)
    labels = xp.empty((X.shape[0],), dtype=xp.int64, device=device)
    inertia = None
    for start, stop in row_blocks(X.shape[0], block_rows):
        X_block = X[start:stop, :]
        block_labels, _ = assign(X_block - offset)
        block_labels = xp.astype(block_labels, xp.int64)
        labels[start:stop] = block_labels
        if weights is None:
            continue
        diff = xp.astype(X_block, acc) - xp.take(centers_acc, block_labels, axis=0)
        part = xp.sum(xp.astype(weights[start:stop], acc) * xp.sum(diff * diff, axis=1))
        inertia = part if inertia is None else inertia + part
    return labels, None if inertia is None else float(inertia)


def standard_distances_to_centers(
    X: Array, centers: Array, *, offset: Array, block_rows: int, xp: ModuleType
) -> Array:
    acc = accumulation_dtype(xp, array_device(X))
    centered = xp.astype(centers - offset, acc)
    c_sq = squared_norms(centered, xp=xp)
    out = []
    for start, stop in row_blocks(X.shape[0], block_rows):
        X_block = xp.astype(X[start:stop, :] - offset, acc)
        sq = squared_norms(X_block, xp=xp)[:, None] - 2.0 * (X_block @ centered.T) + c_sq[None, :]
        out.append(xp.astype(xp.sqrt(xp.clip(sq, min=0.0)), X.dtype))
    return xp.concat(out)
