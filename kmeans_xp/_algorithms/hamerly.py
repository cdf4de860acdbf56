"""Lloyd's algorithm with Hamerly's bounds: the same iterations, fewer distance computations.

Each point keeps an upper bound u on the distance to its own center and a lower bound l on the
distance to every other center. When centers move by δ, u grows by its center's δ and l shrinks
by the largest δ of the others; a point whose u is below max(l, s) (s: half the distance from
its center to the nearest other center) cannot change cluster, and is skipped. Only the rest are
checked: first u is made exact, then, if still needed, the distances to all centers are computed
for those rows alone (G. Hamerly, "Making k-means even faster", SDM 2010).

Bounds cost work of their own (a gather of the rows to check, a second-nearest distance), which
only pays once most rows stay put. So the loop starts with plain Lloyd passes and builds the
bounds once an iteration changes at most ``_SWITCH_FRACTION`` of the labels. Where the centers
stay close for the points' spread (data without clear clusters), most rows keep failing their
test even then; when more than ``_FALLBACK_FRACTION`` of them fail, the bounds are dropped for
plain passes and tried again after 2, 4, 8... plain passes, so that on data without clusters a
fit costs little more than plain Lloyd, while clustered data keep their bounds and their gain
(``python -m benchmarks.algorithms`` measures both; benchmarks/RESULTS.md has the numbers).

The iterations are Lloyd's: a checked row gets Lloyd's own argmin (same GEMM form, same dtype),
same center updates, same empty-cluster repair, same stopping rules; labels can differ only at
genuine near-ties, where a skipped row keeps a label that rounding would have flipped. It pays
off on CPUs, where a skipped row saves its GEMM share; on a GPU the dense GEMM is cheaper than
the gathers, and ``_algorithms.fit`` keeps plain Lloyd there.

Per row the state is a label and two bounds: the bounds are computed in float64 and stored in X's
dtype, rounded outward (``_core.bounds``), and NumPy's passes keep int32 labels, so a float32 fit
holds 12 bytes per row instead of 24.

Everything is standard array API (boolean-mask ``__setitem__`` scatters the checked rows back).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from .._backends import host_threads_held, nearest_two_for, segment_sum_for
from .._core.bounds import as_lower_bound, as_upper_bound
from .._core.nearest_two import standard_nearest_two
from .._core.passes import (
    sum_by_label,
)
from .._core.primitives import squared_norms
from .._lib.budget import row_blocks
from .._lib.compat import Array, accumulation_dtype, array_device, itemsize
from .iterations import IterationStep, centers_from_sums, run_iterations
from .lloyd import (
    pass_for,
)
from .repair import (
    relocate_retrying_on_oom,
    repair_chunk_rows,
    sums_after_repair,
)

# Distances behind the bounds come from the GEMM form in float64. Their rounding error is far
# below 1e-7 of the data's scale except between nearly coincident points (a genuine tie), so
# bounds loosened by this much of the scale never skip a row that would change cluster.
_BOUND_SLACK = 1e-7
# Bounds start once at most this fraction of the rows changed cluster in an iteration: before,
# nearly every row fails its bound test and plain Lloyd passes are cheaper.
_SWITCH_FRACTION = 0.1
# Bounds are dropped, and plain passes resume, when more than this fraction of the rows fail
# their test in an iteration: checking them one by one (a gather for the exact own distance, a
# gather for the distances to all centers) costs several plain passes where nearly every row
# fails. The value sits in the flat middle of the sweep in benchmarks/RESULTS.md.
_FALLBACK_FRACTION = 0.3
# Rows per chunk of the bound tests: their temporaries (~40 bytes per row) stay a few MiB and at
# most ~1/16 of the rows, with few enough chunks that the per-chunk calls cost nothing next to
# the work.
_CHUNK_ROWS = 65536
_MIN_CHUNK_ROWS = 4096
# Centers per block of the center-to-center distances (a block × k matrix, not k × k).
_GAP_BLOCK_ROWS = 128


def _nearest_two(
    X: Array,
    rows: Array | None,
    centers: Array,
    centers_acc: Array,
    offset: Array,
    *,
    block_rows: int,
    xp: ModuleType,
) -> tuple[Array, Array, Array]:
    """``standard_nearest_two``, or the library's own version of it where there is one."""
    search = nearest_two_for(xp) or standard_nearest_two
    return search(X, rows, centers, centers_acc, offset, block_rows=block_rows, xp=xp)


def _distance_to_own(
    X: Array,
    rows: Array | None,
    labels: Array,
    centers: Array,
    offset: Array,
    *,
    block_rows: int,
    xp: ModuleType,
    squared: bool = False,
) -> Array:
    """Exact distance (squared if asked) from each given row (all when None) to its own center
    (accumulation dtype)."""
    acc = centers.dtype
    n_rows = X.shape[0] if rows is None else rows.shape[0]
    out = xp.empty((n_rows,), dtype=acc, device=array_device(X))
    for start, stop in row_blocks(n_rows, block_rows):
        picked = X[start:stop, :] if rows is None else xp.take(X, rows[start:stop], axis=0)
        diff = xp.astype(picked, acc) - xp.astype(offset, acc)
        diff = diff - xp.take(centers, labels[start:stop], axis=0)
        sq = xp.sum(diff * diff, axis=1)
        out[start:stop] = sq if squared else xp.sqrt(sq)
    return out


def _half_gaps(centers: Array, slack: float, *, xp: ModuleType) -> Array:
    """Half the distance from each center to its nearest other center, loosened by ``slack``.

    Centers are taken in blocks of rows, so no k × k matrix is made.
    """
    k = centers.shape[0]
    device = array_device(centers)
    if k == 1:
        return xp.asarray([float("inf")], dtype=centers.dtype, device=device)
    c_sq = squared_norms(centers, xp=xp)
    index = xp.arange(k, device=device)
    inf = xp.asarray(float("inf"), dtype=centers.dtype, device=device)
    nearest_sq = xp.empty((k,), dtype=centers.dtype, device=device)
    for start, stop in row_blocks(k, _GAP_BLOCK_ROWS):
        sq = c_sq[start:stop, None] - 2.0 * (centers[start:stop, :] @ centers.T) + c_sq[None, :]
        sq = xp.where(index[start:stop, None] == index[None, :], inf, sq)
        nearest_sq[start:stop] = xp.min(sq, axis=1)
    return xp.clip(0.5 * xp.sqrt(xp.clip(nearest_sq, min=0.0)) - slack, min=0.0)


def _exact_sq_distances(
    X: Array, labels: Array, centers: Array, offset: Array, *, block_rows: int, xp
) -> Array:
    return _distance_to_own(
        X, None, labels, centers, offset, block_rows=block_rows, xp=xp, squared=True
    )


@host_threads_held
def hamerly(
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
) -> tuple[Array, int]:
    """Lloyd iterations from ``initial_centers``, pruned by Hamerly's bounds.

    Same contract as ``lloyd.lloyd``: returns the final centers (X's dtype, uncentered) and the
    number of iterations run; stops on unchanged labels, on a squared center shift ≤ ``tol``, or
    after ``max_iter`` iterations. ``precision`` applies to the plain passes before the bounds
    start (the bounded passes take their distances in float64).
    """
    step = _HamerlyStep(
        X,
        weights,
        offset=offset,
        block_rows=block_rows,
        xp=xp,
        precision=precision,
        verbose=verbose,
    )
    centers, n_iter = run_iterations(
        step,
        initial_centers - offset,
        max_iter=max_iter,
        tol=tol,
        verbose=verbose,
        on_iteration=on_iteration,
    )
    return centers + offset, n_iter


class _HamerlyStep:
    """One iteration on centered centers (X's dtype, as in Lloyd): a plain Lloyd pass until few
    labels change, then passes pruned by each row's label and bounds, kept here between
    iterations; empty clusters refilled; the bounds loosened by how far the centers moved."""

    def __init__(
        self,
        X: Array,
        weights: Array,
        *,
        offset: Array,
        block_rows: int,
        xp: ModuleType,
        precision: str,
        verbose: bool,
    ):
        self.X, self.weights, self.offset, self.xp = X, weights, offset, xp
        self.block_rows, self.verbose = block_rows, verbose
        self.acc = accumulation_dtype(xp, array_device(X))
        self.segment_sum = segment_sum_for(xp)
        self.plain_pass = pass_for(xp, array_device(X), precision)
        self.scale = _largest_row_norm(X, offset, block_rows=block_rows, xp=xp)
        self.unit_weights = bool(xp.all(weights == 1))
        n_samples = X.shape[0]
        self.chunk_rows = min(_CHUNK_ROWS, max(_MIN_CHUNK_ROWS, n_samples // 16))
        self.bounded = False  # set once few labels change; until then plain Lloyd passes
        self.fallbacks, self.retry_at = 0, 0  # bounds dropped so far; when they may return
        self.labels = self.upper = self.lower = self.sums = self.counts = None

    def __call__(self, n_iter: int, centers: Array) -> IterationStep:
        xp, acc = self.xp, self.acc
        c_acc = xp.astype(centers, acc)
        slack = _BOUND_SLACK * (self.scale + float(xp.max(xp.abs(c_acc))) * centers.shape[1] ** 0.5)
        half_gaps = self._drop_bounds_that_prune_little(n_iter, c_acc, slack)
        n_changed = self._assign(centers, c_acc, slack, half_gaps)
        n_empty = int(xp.sum(xp.astype(self.counts == 0, xp.int64)))
        sq_dist = repaired = None
        if n_empty:
            sq_dist, repaired = self._repair(c_acc)
            # The pass's changes plus the repair's (a row both moved counts twice: an upper
            # bound, which only delays the switch to bounds); unknown stays unknown.
            n_changed = None if n_changed is None else n_changed + _count(repaired, xp)
        new_centers = centers_from_sums(self.sums, self.counts, centers, xp=xp)
        step = xp.astype(new_centers - centers, acc)
        moves = xp.sqrt(xp.sum(step * step, axis=1))
        shift = float(xp.sum(moves * moves))
        inertia = None
        if self.verbose:
            # After a repair sq_dist holds the distances before it, which is what Lloyd prints.
            if sq_dist is None:
                sq_dist = _exact_sq_distances(
                    self.X, self.labels, c_acc, self.offset, block_rows=self.block_rows, xp=xp
                )
            inertia = float(xp.sum(xp.astype(self.weights, acc) * sq_dist))
        if not self.bounded:
            self.bounded = (
                n_iter >= self.retry_at
                and n_changed is not None
                and n_changed <= _SWITCH_FRACTION * self.X.shape[0]
            )
        elif self.upper is not None:
            # Rows the repair moved by hand have no bounds: they are checked next time.
            _loosen(
                self.upper,
                self.lower,
                self.labels,
                moves,
                repaired,
                chunk_rows=self.chunk_rows,
                xp=xp,
            )
        return IterationStep(new_centers, shift, n_changed, n_empty, inertia)

    def _drop_bounds_that_prune_little(self, n_iter: int, c_acc: Array, slack: float):
        """The half gaps between centers where bounds are kept (None otherwise), after dropping
        bounds that most rows would fail: the centers are close for the points' spread, and
        checking most rows one by one costs more than a plain pass. They are tried again
        after twice as many plain passes as last time, so that bounds that keep failing cost
        a few passes in all, not one in two."""
        if not (self.bounded and self.upper is not None):
            return None
        half_gaps = _half_gaps(c_acc, slack, xp=self.xp)
        to_check = _rows_to_check(
            self.labels,
            self.upper,
            self.lower,
            half_gaps,
            slack,
            chunk_rows=self.chunk_rows,
            xp=self.xp,
        )
        if to_check <= _FALLBACK_FRACTION * self.X.shape[0]:
            return half_gaps
        self.bounded, self.upper, self.lower = False, None, None
        self.fallbacks += 1
        self.retry_at = n_iter + 2**self.fallbacks
        return None

    def _assign(self, centers: Array, c_acc: Array, slack: float, half_gaps) -> int | None:
        """This iteration's labels, sums and counts (and bounds); the labels changed, or None
        where not known (the first pass)."""
        X, xp, offset, block_rows = self.X, self.xp, self.offset, self.block_rows
        n_clusters = centers.shape[0]
        previous = self.labels
        if not self.bounded:  # early iterations: most rows move, bounds would only add work
            self.labels, _, self.sums, self.counts = self.plain_pass(
                X, centers, self.weights, offset, self.segment_sum, block_rows=block_rows, xp=xp
            )
            return None if previous is None else _count(self.labels != previous, xp)
        if self.upper is None:  # the switch to bounds: every row
            self.labels, self.upper, self.lower = _nearest_two(
                X, None, centers, c_acc, offset, block_rows=block_rows, xp=xp
            )
            self.sums, self.counts = sum_by_label(
                X,
                self.labels,
                self.weights,
                offset,
                n_clusters,
                self.segment_sum,
                block_rows=block_rows,
                xp=xp,
            )
            # From here on labels change in place; no copy is kept.
            return None if previous is None else _count(self.labels != previous, xp)
        self.sums, self.counts, n_changed = _reassign(
            X,
            self.weights,
            offset,
            centers,
            c_acc,
            self.labels,
            self.upper,
            self.lower,
            self.sums,
            self.counts,
            slack,
            half_gaps,
            segment_sum=self.segment_sum,
            block_rows=block_rows,
            chunk_rows=self.chunk_rows,
            xp=xp,
        )
        if n_changed and not self.unit_weights:
            # Weighted counts updated by subtraction could leave a 1e-17 where a cluster lost
            # all its weight; recompute them (unit weights count exactly).
            self.sums, self.counts = sum_by_label(
                X,
                self.labels,
                self.weights,
                offset,
                n_clusters,
                self.segment_sum,
                block_rows=block_rows,
                xp=xp,
            )
        return n_changed

    def _repair(self, c_acc: Array) -> tuple[Array, Array]:
        """Empty clusters refilled with the farthest rows (as Lloyd does); returns the squared
        distances before the repair and which rows it moved."""
        X, xp = self.X, self.xp
        sq_dist = _exact_sq_distances(
            X, self.labels, c_acc, self.offset, block_rows=self.block_rows, xp=xp
        )
        before = self.labels
        chunk_rows = repair_chunk_rows(
            self.block_rows, X.shape[1], self.counts.shape[0], itemsize(X, xp)
        )
        relocation = relocate_retrying_on_oom(
            before,
            sq_dist,
            self.weights,
            self.counts,
            xp=xp,
            device=array_device(X),
            chunk_rows=chunk_rows,
        )
        if relocation is None:  # no row can move: the labels, sums and counts stay
            return sq_dist, xp.zeros_like(before, dtype=xp.bool)
        self.labels = relocation.labels
        self.sums, self.counts = sums_after_repair(
            X,
            relocation,
            self.weights,
            self.offset,
            self.sums,
            self.counts,
            self.segment_sum,
            unit_weights=self.unit_weights,
            block_rows=self.block_rows,
            xp=xp,
        )
        return sq_dist, self.labels != before


def _largest_row_norm(X: Array, offset: Array, *, block_rows: int, xp: ModuleType) -> float:
    """The scale of the data, for the bounds' slack: the largest centered row norm."""
    acc = accumulation_dtype(xp, array_device(X))
    scale = 0.0
    for start, stop in row_blocks(X.shape[0], block_rows):
        block = xp.astype(X[start:stop, :], acc) - xp.astype(offset, acc)
        scale = max(scale, float(xp.max(squared_norms(block, xp=xp))) ** 0.5)
    return scale


def _loosen(
    upper: Array,
    lower: Array,
    labels: Array,
    moves: Array,
    unbounded: Array | None,
    *,
    chunk_rows: int,
    xp,
) -> None:
    """Bounds after the centers moved, in place: u grows by its center's move, l shrinks by the
    largest move of the others; rows where ``unbounded`` is true get u = inf, l = 0. Chunk by
    chunk, so no n-long temporary is made."""
    device = array_device(moves)
    biggest = xp.argmax(moves)
    is_biggest = xp.arange(moves.shape[0], device=device) == biggest
    runner_up = xp.max(xp.where(is_biggest, xp.zeros_like(moves), moves))  # 0 when k = 1
    largest = xp.max(moves)
    inf = xp.asarray(float("inf"), dtype=upper.dtype, device=device)
    zero = xp.asarray(0.0, dtype=lower.dtype, device=device)
    for start, stop in row_blocks(labels.shape[0], chunk_rows):
        own_labels = labels[start:stop]
        new_upper = as_upper_bound(
            upper[start:stop] + xp.take(moves, own_labels, axis=0), upper.dtype, xp=xp
        )
        new_lower = as_lower_bound(
            lower[start:stop] - xp.where(own_labels == biggest, runner_up, largest),
            lower.dtype,
            xp=xp,
        )
        if unbounded is not None:
            new_upper = xp.where(unbounded[start:stop], inf, new_upper)
            new_lower = xp.where(unbounded[start:stop], zero, new_lower)
        upper[start:stop] = new_upper
        lower[start:stop] = new_lower


def _count(mask: Array, xp: ModuleType) -> int:
    return int(xp.sum(xp.astype(mask, xp.int64)))


def _rows_to_check(
    labels: Array,
    upper: Array,
    lower: Array,
    half_gaps: Array,
    slack: float,
    *,
    chunk_rows: int,
    xp: ModuleType,
) -> int:
    """How many rows fail their bound test (``_reassign`` checks exactly these)."""
    total = 0
    for start, stop in row_blocks(labels.shape[0], chunk_rows):
        _, check = _bound_test(labels, upper, lower, half_gaps, slack, start, stop, xp=xp)
        total += _count(check, xp)
    return total


def _bound_test(
    labels: Array,
    upper: Array,
    lower: Array,
    half_gaps: Array,
    slack: float,
    start: int,
    stop: int,
    *,
    xp: ModuleType,
) -> tuple[Array, Array]:
    """For rows start:stop: the bound a row's upper bound must stay under, max(s, l), and which
    rows fail it (may change cluster)."""
    bound = xp.maximum(xp.take(half_gaps, labels[start:stop], axis=0), lower[start:stop])
    return bound, upper[start:stop] + slack > bound


def _reassign(
    X,
    weights,
    offset,
    centers_x,
    centers,
    labels,
    upper,
    lower,
    sums,
    counts,
    slack,
    half_gaps,
    *,
    segment_sum,
    block_rows,
    chunk_rows,
    xp,
):
    """One pruned assignment: check only rows whose bounds allow a change; update the sums.

    ``half_gaps``: ``_half_gaps(centers, slack)``. ``labels``, ``upper`` and ``lower`` are
    updated in place, ``chunk_rows`` rows at a time, so the bound tests never make an n-long
    temporary. Returns sums, counts and the number of rows that changed cluster.
    """
    n_changed = 0
    for start, stop in row_blocks(labels.shape[0], chunk_rows):
        chunk_labels = labels[start:stop]
        bound, check = _bound_test(labels, upper, lower, half_gaps, slack, start, stop, xp=xp)
        if not bool(xp.any(check)):
            continue
        local = xp.nonzero(check)[0]
        own = _distance_to_own(
            X,
            local + start,
            xp.take(chunk_labels, local, axis=0),
            centers,
            offset,
            block_rows=block_rows,
            xp=xp,
        )
        # Scatter into a fresh copy of the chunk, then write it back by slice: the standard
        # promises nothing about writes through views.
        chunk_upper = xp.where(check, xp.zeros_like(upper[start:stop]), upper[start:stop])
        chunk_upper[check] = as_upper_bound(own, upper.dtype, xp=xp)
        upper[start:stop] = chunk_upper
        still = own + slack > xp.take(bound, local, axis=0)
        if not bool(xp.any(still)):
            continue
        local = xp.take(local, xp.nonzero(still)[0], axis=0)
        rows = local + start
        recheck = xp.zeros_like(check)
        recheck[check] = still
        nearest, first, second = _nearest_two(
            X, rows, centers_x, centers, offset, block_rows=block_rows, xp=xp
        )
        old = xp.take(chunk_labels, local, axis=0)
        new_labels = xp.where(recheck, xp.zeros_like(chunk_labels), chunk_labels)
        new_labels[recheck] = nearest
        labels[start:stop] = new_labels
        chunk_upper[recheck] = first
        upper[start:stop] = chunk_upper
        chunk_lower = xp.where(recheck, xp.zeros_like(lower[start:stop]), lower[start:stop])
        chunk_lower[recheck] = second
        lower[start:stop] = chunk_lower
        changed = nearest != old
        n_moved = _count(changed, xp)
        if not n_moved:
            continue
        n_changed += n_moved
        moved = xp.nonzero(changed)[0]
        moved_rows = xp.take(rows, moved, axis=0)
        block = xp.take(X, moved_rows, axis=0) - offset
        w = xp.take(weights, moved_rows, axis=0)
        added, added_w = segment_sum(
            block, xp.take(nearest, moved, axis=0), w, centers.shape[0], xp=xp
        )
        removed, removed_w = segment_sum(
            block, xp.take(old, moved, axis=0), w, centers.shape[0], xp=xp
        )
        sums = sums + added - removed
        counts = counts + added_w - removed_w
    return sums, counts, n_changed
