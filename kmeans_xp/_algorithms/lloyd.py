"""Lloyd's algorithm, written once against the array API standard.

Each iteration is one pass over X in row blocks: assign each row to its nearest center and add it
to its cluster's running sum. Prior validation of the data is assumed (finite, floating, 2-D,
weights non-negative); the estimator in ``_kmeans.py`` does it.

Numerics: X is centered by its column mean block by block (X itself is never copied), which keeps
the GEMM form of the distance accurate when the data sit far from the origin; sums and inertia
accumulate in float64 where the device has it; squared distances are clipped at zero.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .._backends import (
    AssignFactory,
    assign_and_sum_for,
    assign_for,
    distances_to_centers_for,
    host_threads_held,
    labels_and_inertia_for,
    segment_sum_for,
)
from .._core.primitives import PassBuffers, squared_norms
from .._lib.budget import cupy_pass_row_bytes, row_blocks
from .._lib.compat import (
    Array,
    accumulation_dtype,
    array_device,
    get_namespace,
    is_cupy,
    is_host_rows,
    itemsize,
    out_of_memory_errors,
    release_cached_memory,
    take_rows,
    to_numpy,
)


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
    reduction along axis 0 of a C-ordered array (no CUB path for it) took ~8 ms per
    0.5 M x 128 float64 block on an H200 (benchmarks.gpu_profile, 2026-11-27) — 50 ms of every
    fit's set-up at shape A."""
    if is_cupy(xp):
        ones = xp.ones((A.shape[0],), dtype=A.dtype, device=array_device(A))
        return xp.matmul(ones, A)
    return xp.sum(A, axis=0)


def minus_offset(A: Array, offset: Array | None) -> Array:
    """``A - offset``: rows of X centered as the passes use them; A itself where X was centered
    once for the whole fit (``lloyd``'s ``x_centered``: the passes then get ``offset=None``)."""
    return A if offset is None else A - offset


def _assign_and_sum(
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


def pass_for(
    xp: ModuleType, device: Any, precision: str = "highest", *, streamed: bool = False
) -> Callable:
    """The E+M pass for namespace ``xp``: a library's own (NumPy, CuPy, torch CUDA through CuPy)
    or ``_assign_and_sum`` with the device's assignment (``_backends.assign_for``). X streamed
    from the host (``streamed``) is read by the standard pass, one block after the other."""
    standard = functools.partial(_assign_and_sum, make_assign=assign_for(xp, device, precision))
    own = None if streamed else assign_and_sum_for(xp, device, standard, precision)
    return own or standard


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


def _squared_distances(
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


def _sum_by_label(
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


# Rows per chunk when the empty-cluster repair scans all rows, at least: its temporaries stay a
# few MiB.
_REPAIR_CHUNK_ROWS = 65536
# Bytes one row of the repair holds at once, counted generously: its score, the sort's int64
# indices and the sort's own temporaries, then the relabelling's row numbers, positions and
# masks. ``repair_chunk_rows`` fits chunks to a pass's block budget with it, so on a GPU one
# sort usually covers all rows: on CuPy every sort (Thrust) waits for the device, and at 1 M
# rows chunks of 65 536 made 16 sorts and ~200 small launches.
_REPAIR_ROW_BYTES = 64


def repair_chunk_rows(block_rows: int, n_features: int, n_clusters: int, itemsize: int) -> int:
    """Rows per chunk of ``relocate_empty_clusters`` within the memory a pass's block of
    ``block_rows`` rows may use, and at least ``_REPAIR_CHUNK_ROWS``. The block's budget is
    taken at the leanest count of a row's bytes (CuPy's pass, ``cupy_pass_row_bytes``), so the
    chunk stays within it whichever count sized the blocks: at issue 4's 100 M x 64 -> 1024
    beside 2 GB, ~3 M rows (200 MB), not the 22 M the standard count would allow."""
    budget = block_rows * cupy_pass_row_bytes(n_features, n_clusters, itemsize)
    return max(_REPAIR_CHUNK_ROWS, budget // _REPAIR_ROW_BYTES)


@dataclass
class Relocation:
    """What ``relocate_empty_clusters`` did: the new labels (a new array), and the rows it moved
    (ascending) with their labels before and after."""

    labels: Array
    rows: Array
    before: Array
    after: Array


def relocate_empty_clusters(
    labels: Array,
    sq_dist: Array,
    weights: Array,
    counts: Array,
    *,
    xp: ModuleType,
    chunk_rows: int | None = None,
) -> Relocation:
    """Give each empty cluster one of the points farthest from its current center.

    The m empty clusters (in index order) take the m points of positive weight with the largest
    squared distance to their assigned center (ties broken by the lower row index), so the
    repair is deterministic. Returns the new labels and the moves; the caller updates the sums
    (``sums_after_relocation``, or a new pass). Rows are scanned in chunks of ``chunk_rows``
    (default ``_REPAIR_CHUNK_ROWS``; see ``repair_chunk_rows``), so no temporary need be n long.
    """
    n_samples = labels.shape[0]
    device = array_device(labels)
    chunk_rows = chunk_rows or _REPAIR_CHUNK_ROWS
    empty = xp.nonzero(counts == 0)[0]
    m = empty.shape[0]
    # The best m of each chunk, then the best m of those. A stable sort keeps equal scores in
    # row order within a chunk, and the chunks are concatenated in row order, so ties still go
    # to the lower row.
    no_weight = xp.asarray(-1.0, dtype=sq_dist.dtype, device=device)
    candidate_rows, candidate_scores = [], []
    for start, stop in row_blocks(n_samples, chunk_rows):
        score = xp.where(weights[start:stop] > 0, sq_dist[start:stop], no_weight)
        best = xp.argsort(score, descending=True, stable=True)[: min(m, stop - start)]
        candidate_rows.append(best + start)
        candidate_scores.append(xp.take(score, best, axis=0))
    best = xp.argsort(xp.concat(candidate_scores), descending=True, stable=True)[:m]
    farthest = xp.take(xp.concat(candidate_rows), best, axis=0)
    # Scatter `empty` into `labels` at `farthest` without a scatter (the standard has none):
    # look every row up in the sorted list of moved rows.
    order = xp.argsort(farthest, stable=True)
    moved_rows = xp.take(farthest, order, axis=0)
    new_labels = xp.astype(xp.take(empty, order, axis=0), labels.dtype)
    out = xp.empty_like(labels)
    for start, stop in row_blocks(n_samples, chunk_rows):
        rows = xp.arange(start, stop, dtype=moved_rows.dtype, device=device)
        pos = xp.clip(xp.searchsorted(moved_rows, rows), max=m - 1)
        is_moved = xp.take(moved_rows, pos, axis=0) == rows
        out[start:stop] = xp.where(is_moved, xp.take(new_labels, pos, axis=0), labels[start:stop])
    before = xp.take(labels, moved_rows, axis=0)
    return Relocation(out, moved_rows, before, new_labels)


def relocate_retrying_on_oom(
    labels: Array,
    sq_dist: Array,
    weights: Array,
    counts: Array,
    *,
    xp: ModuleType,
    device: Any,
    chunk_rows: int,
) -> Relocation:
    """``relocate_empty_clusters`` in chunks of ``chunk_rows``, again with half as many while it
    runs out of memory (its chunks are sized from a budget measured before the fit)."""

    def run(block_rows: int) -> Relocation:
        return relocate_empty_clusters(
            labels, sq_dist, weights, counts, xp=xp, chunk_rows=block_rows
        )

    relocation, _ = with_smaller_blocks_on_oom(run, chunk_rows, xp=xp, device=device)
    return relocation


def sums_after_relocation(
    X: Array,
    relocation: Relocation,
    weights: Array,
    offset: Array,
    sums: Array,
    counts: Array,
    segment_sum: Callable,
    *,
    xp: ModuleType,
) -> tuple[Array, Array]:
    """Per-cluster sums and counts after ``relocation``, from those before it: each moved row's
    weighted contribution taken from its old cluster and added to its new one — the m moved rows
    read instead of a whole pass over X.

    For unit weights only (the callers check): counts are then exact integers, so a cluster
    that lost all its rows has a count of exactly 0 and keeps its center, whatever rounding is
    left in its sums. With other weights a subtraction could leave 1e-17 of weight behind.
    """
    n_clusters = sums.shape[0]
    moved = minus_offset(take_rows(X, relocation.rows, xp), offset)
    w = xp.take(weights, relocation.rows, axis=0)
    s_before, c_before = segment_sum(moved, relocation.before, w, n_clusters, xp=xp)
    s_after, c_after = segment_sum(moved, relocation.after, w, n_clusters, xp=xp)
    return (sums - s_before) + s_after, (counts - c_before) + c_after


def sums_after_repair(
    X: Array,
    relocation: Relocation,
    weights: Array,
    offset: Array | None,
    sums: Array,
    counts: Array,
    segment_sum: Callable,
    *,
    unit_weights: bool,
    block_rows: int,
    xp: ModuleType,
) -> tuple[Array, Array]:
    """Sums and counts for the labels after an empty-cluster repair: the moved rows' sums moved
    (``sums_after_relocation``) with unit weights, else a new pass over X (``_sum_by_label``)."""
    if unit_weights:
        return sums_after_relocation(
            X, relocation, weights, offset, sums, counts, segment_sum, xp=xp
        )
    n_clusters = sums.shape[0]
    return _sum_by_label(
        X, relocation.labels, weights, offset, n_clusters, segment_sum,
        block_rows=block_rows, xp=xp,
    )  # fmt: skip


def _centers_from_sums(sums: Array, counts: Array, previous: Array, *, xp: ModuleType) -> Array:
    """Weighted means; a cluster with zero total weight keeps its previous center."""
    has_weight = counts > 0
    denominator = xp.where(has_weight, counts, xp.ones_like(counts))
    means = xp.astype(sums / denominator[:, None], previous.dtype)
    return xp.where(has_weight[:, None], means, previous)


@host_threads_held
def lloyd(
    X: Array,
    initial_centers: Array,
    weights: Array,
    *,
    offset: Array,
    max_iter: int,
    tol: float,
    verbose: bool,
    block_rows: int,
    xp: ModuleType,
    on_iteration: Callable[[int], None] | None = None,
    precision: str = "highest",
    x_centered: bool = False,
) -> tuple[Array, int]:
    """Run Lloyd iterations from ``initial_centers``; return the final centers and iterations run.

    Stops when an iteration leaves every label unchanged (strict convergence), when the squared
    center shift Σ‖c_new − c‖² is ≤ ``tol`` (absolute; the caller scales it by the data's
    variance), or after ``max_iter`` iterations. Each iteration reads three scalars back to the
    host (empty clusters, shift, labels changed) in one transfer, and nothing else (a repair of
    empty clusters reads more).

    ``on_iteration(n_iter)``, when given, is called after each iteration (progress bars).
    ``precision`` is the GPU products' precision (``_backends.assign_for``). A pass that runs
    out of memory is run again with smaller blocks. ``x_centered``: X is already X − ``offset``
    (the caller centered it once), so the passes do not subtract it block by block; centers
    come and go uncentered either way.

    The returned labels are not final: the caller recomputes labels and inertia for the returned
    centers (``labels_and_inertia``), so all three always agree.
    """
    n_clusters = initial_centers.shape[0]
    device = array_device(X)
    acc = accumulation_dtype(xp, device)
    size = itemsize(X, xp)
    segment_sum = segment_sum_for(xp)
    assign_and_sum = pass_for(xp, device, precision, streamed=is_host_rows(X))
    centers = initial_centers - offset
    pass_offset = None if x_centered else offset  # what the passes subtract from X's rows
    buffers = None  # the last pass's labels and partials, overwritten by the next
    unit_weights = None  # known at the first repair (a read of all weights)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        rows_before = block_rows
        (labels, partial, sums, counts), block_rows = with_smaller_blocks_on_oom(
            functools.partial(
                assign_and_sum, X, centers, weights, pass_offset, segment_sum, xp=xp, out=buffers
            ),
            block_rows,
            xp=xp,
            device=device,
        )
        # The labels changed since the last iteration, counted by the pass as it overwrote them;
        # not known after a retry (the failed attempt overwrote some) or a relocation.
        n_changed = None if buffers is None or block_rows != rows_before else buffers.n_changed
        # The next centers and their shift, then one read of the three scalars the loop needs
        # (on a GPU the host waits for the device once per iteration, not three times, and the
        # device idles once while the host queues more); a repair of empty clusters, rare,
        # recomputes both.
        new_centers = _centers_from_sums(sums, counts, centers, xp=xp)
        step = xp.astype(new_centers - centers, acc)
        n_empty, shift, n_changed = read_scalars(
            [xp.sum(xp.astype(counts == 0, xp.int64)), xp.sum(step * step), n_changed],
            xp=xp, device=device,
        )  # fmt: skip
        n_empty = int(n_empty)
        if n_empty or verbose:
            sq_dist = _squared_distances(X, partial, pass_offset, block_rows=block_rows, xp=xp)
        if n_empty:
            relocation = relocate_retrying_on_oom(
                labels, sq_dist, weights, counts, xp=xp, device=device,
                chunk_rows=repair_chunk_rows(block_rows, X.shape[1], n_clusters, size),
            )  # fmt: skip
            labels = relocation.labels
            n_changed = None
            if unit_weights is None:
                unit_weights = bool(xp.all(weights == 1))
            sums, counts = sums_after_repair(
                X, relocation, weights, pass_offset, sums, counts, segment_sum,
                unit_weights=unit_weights, block_rows=block_rows, xp=xp,
            )  # fmt: skip
            new_centers = _centers_from_sums(sums, counts, centers, xp=xp)
            step = xp.astype(new_centers - centers, acc)
            shift = float(xp.sum(step * step))
        centers = new_centers
        if on_iteration is not None:
            on_iteration(n_iter)
        inertia = None
        if verbose:
            inertia = float(xp.sum(xp.astype(weights, acc) * xp.astype(sq_dist, acc)))
        unchanged = n_changed is not None and n_changed == 0
        if stop_after_iteration(
            n_iter, unchanged=unchanged, shift=shift, tol=tol, inertia=inertia, n_empty=n_empty
        ):
            break
        buffers = PassBuffers(labels, partial)
    else:
        if verbose:
            print(f"Stopped after max_iter={max_iter} iterations without converging.")
    return centers + offset, n_iter


def read_scalars(values: list[Any], *, xp: ModuleType, device: Any) -> list[Any]:
    """Scalars of ``values`` on the host, the device's read back in one transfer (each read of
    a GPU value waits for the device); Python numbers and None pass through, another library's
    scalars are read one by one. Device values come back as floats, through the accumulation
    dtype (exact for counts below 2**53 in float64)."""
    out = list(values)
    on_device = []
    for i, v in enumerate(values):
        if isinstance(v, int | float | None):
            continue
        if get_namespace(v) is xp:
            on_device.append(i)
        else:
            out[i] = float(v)
    if on_device:
        acc = accumulation_dtype(xp, device)
        stacked = xp.stack([xp.reshape(xp.astype(values[i], acc), ()) for i in on_device])
        for i, value in zip(on_device, to_numpy(stacked).tolist(), strict=True):
            out[i] = value
    return out


def stop_after_iteration(
    n_iter: int, *, unchanged: bool, shift: float, tol: float, inertia: float | None, n_empty: int
) -> bool:
    """Lloyd's stopping rules, shared by every iteration loop; prints the verbose lines.

    Stop when no label changed (strict convergence) or the squared center shift is ≤ ``tol``.
    ``inertia`` is given only in verbose mode, and then the iteration and the reason to stop are
    printed.
    """
    verbose = inertia is not None
    if verbose:
        moved = f", {n_empty} empty cluster(s) refilled" if n_empty else ""
        print(f"Iteration {n_iter}: inertia {inertia:.6g}, center shift {shift:.3e}{moved}")
    if unchanged:
        if verbose:
            print(f"Converged at iteration {n_iter}: strict convergence (labels unchanged).")
        return True
    if shift <= tol:
        if verbose:
            print(
                f"Converged at iteration {n_iter}: center shift {shift:.3e} "
                f"within tolerance {tol:.3e}."
            )
        return True
    return False


@host_threads_held
def labels_and_inertia(
    X: Array,
    centers: Array,
    weights: Array | None,
    *,
    offset: Array,
    block_rows: int,
    xp: ModuleType,
    precision: str = "highest",
) -> tuple[Array, float | None]:
    """Labels of the nearest center and the inertia Σ w·‖x − c_label‖², computed directly.

    Distances for the argmin use X and ``centers`` centered by ``offset`` (as in the fit), by
    the pass's assignment (certified on a GPU, see ``_backends.assign_for``); the inertia is
    formed from the differences themselves in float64 where available, not from the GEMM form,
    so it is the honest sum of squares. With ``weights=None`` only the labels are computed
    (``predict``) and the inertia is None. Labels are int64, whatever the pass used inside.
    NumPy has its own version of the pass, which also serves torch CPU tensors in large passes
    (``_backends.labels_and_inertia_for``).
    """
    device = array_device(X)
    centered = centers - offset
    standard = functools.partial(
        _labels_and_inertia_pass, make_assign=assign_for(xp, device, precision)
    )
    run_pass = labels_and_inertia_for(xp, device, standard) or standard
    run = functools.partial(run_pass, X, centers, centered, weights, offset, xp=xp)
    result, _ = with_smaller_blocks_on_oom(run, block_rows, xp=xp, device=device)
    return result


def _labels_and_inertia_pass(
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


@host_threads_held
def distances_to_centers(
    X: Array, centers: Array, *, offset: Array, block_rows: int, xp: ModuleType
) -> Array:
    """Euclidean distances (n, k) from rows of X to ``centers``, in X's dtype.

    Formed by the GEMM form on centered data in the accumulation dtype (float64 where
    available, as scikit-learn upcasts float32 here), clipped at 0 before the square root.
    NumPy has its own version of these operations, which also serves torch CPU tensors in large
    passes (``_backends.distances_to_centers_for``).
    """
    own = distances_to_centers_for(xp, array_device(X), _standard_distances_to_centers)
    run = own or _standard_distances_to_centers
    return run(X, centers, offset=offset, block_rows=block_rows, xp=xp)


def _standard_distances_to_centers(
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
