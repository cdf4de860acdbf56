"""Empty clusters refilled, as scikit-learn does: the m empty clusters take the m rows farthest
from their centers, deterministically, and the sums and counts follow the moved rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .._core.passes import minus_offset, sum_by_label, with_smaller_blocks_on_oom
from .._lib.budget import cupy_pass_row_bytes, row_blocks
from .._lib.compat import Array, array_device, take_rows

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
    chunk stays within it whichever count sized the blocks."""
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
) -> Relocation | None:
    """Give each empty cluster one of the points farthest from its current center.

    The m empty clusters (in index order) take the m points of positive weight with the largest
    squared distance to their assigned center (ties broken by the lower row index), so the
    repair is deterministic. Only points at a positive distance move: one sitting on its center
    would lower no inertia, only empty the cluster it leaves or duplicate its center. So where X
    has fewer distinct points than clusters, the clusters that find no such point stay empty
    and keep their centers (scikit-learn then stops too, and the fit warns of fewer distinct
    clusters); None when no point moves. Returns the new labels and the moves; the caller
    updates the sums
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
    no_weight = xp.asarray(-1.0, dtype=sq_dist.dtype, device=device)  # never moved
    candidate_rows, candidate_scores = [], []
    for start, stop in row_blocks(n_samples, chunk_rows):
        movable = (weights[start:stop] > 0) & (sq_dist[start:stop] > 0)
        score = xp.where(movable, sq_dist[start:stop], no_weight)
        best = xp.argsort(score, descending=True, stable=True)[: min(m, stop - start)]
        candidate_rows.append(best + start)
        candidate_scores.append(xp.take(score, best, axis=0))
    scores = xp.concat(candidate_scores)
    best = xp.argsort(scores, descending=True, stable=True)[:m]
    m = int(xp.sum(xp.astype(xp.take(scores, best, axis=0) > 0, xp.int64)))
    if m == 0:
        return None
    best, empty = best[:m], empty[:m]  # the farthest movable points, in score order
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
) -> Relocation | None:
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
    (``sums_after_relocation``) with unit weights, else a new pass over X (``sum_by_label``)."""
    if unit_weights:
        return sums_after_relocation(
            X, relocation, weights, offset, sums, counts, segment_sum, xp=xp
        )
    n_clusters = sums.shape[0]
    return sum_by_label(
        X,
        relocation.labels,
        weights,
        offset,
        n_clusters,
        segment_sum,
        block_rows=block_rows,
        xp=xp,
    )
