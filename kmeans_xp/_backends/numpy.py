"""NumPy versions of the primitives."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import numpy as np

from .._core.bounds import as_lower_bound, as_upper_bound
from .._lib.budget import host_workspace_bytes
from .._lib.memmap import note_rows_read

try:  # SciPy is optional: with it the update is a sparse product, several times faster.
    import scipy.sparse as _sparse
except ImportError:  # pragma: no cover - exercised by forcing the fallback in the tests
    _sparse = None
try:  # threadpoolctl is optional: with it a pass shares its blocks between the cores.
    import threadpoolctl as _threadpoolctl
except ImportError:  # pragma: no cover - exercised by forcing one thread in the tests
    _threadpoolctl = None


def segment_sum(
    X_block: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    n_clusters: int,
    *,
    xp: ModuleType,
) -> tuple[np.ndarray, np.ndarray]:
    """``primitives.segment_sum`` for NumPy, accumulating in float64.

    With SciPy installed: a sparse (n_clusters × m) one-hot matrix of the weights times the
    block in float64, several times faster. Without: ``np.bincount`` over flattened (label,
    feature) indices; ``np.add.at`` is slower still (benchmarks/RESULTS.md compares them).
    """
    if _sparse is not None:
        return _segment_sum_sparse(X_block, labels, weights, n_clusters)
    return _segment_sum_bincount(X_block, labels, weights, n_clusters)


def _segment_sum_sparse(X_block, labels, weights, n_clusters):
    m = X_block.shape[0]
    w = weights.astype(np.float64)
    # Column j of the one-hot matrix holds w[j] at row labels[j]: CSC with one entry per column.
    one_hot = _sparse.csc_matrix((w, labels, np.arange(m + 1)), shape=(n_clusters, m))
    sums = one_hot @ X_block.astype(np.float64, copy=False)
    counts = np.bincount(labels, weights=w, minlength=n_clusters)
    return np.asarray(sums), counts


def _segment_sum_bincount(X_block, labels, weights, n_clusters):
    d = X_block.shape[1]
    flat_index = (labels[:, None] * d + np.arange(d)).ravel()
    # The products in float64 too: float32 ones would be rounded before bincount adds them.
    weighted = X_block.astype(np.float64, copy=False) * weights.astype(np.float64)[:, None]
    sums = np.bincount(flat_index, weights=weighted.ravel(), minlength=n_clusters * d)
    counts = np.bincount(labels, weights=weights, minlength=n_clusters)
    return sums.reshape(n_clusters, d), counts.astype(np.float64, copy=False)


def label_dtype(n_clusters: int) -> np.dtype:
    """int32 labels where they fit: half the memory of int64 for the per-row state of a fit."""
    return np.dtype(np.int32 if n_clusters <= np.iinfo(np.int32).max else np.int64)


# Rows of float64 data gathered before one sparse update product (a multiple of the block rows):
# one product per chunk instead of per block keeps scipy's k×d result allocations rare. At most
# this many bytes in all threads together, and at most 1/16 of X's size, so that the chunks stay a
# small part of a fit's memory (larger chunks were no faster).
UPDATE_CHUNK_BYTES = 4 * 2**20
UPDATE_CHUNK_FRACTION_OF_X = 16


def assign_and_sum(
    X: np.ndarray,
    centers: np.ndarray,
    weights: np.ndarray,
    offset: np.ndarray,
    segment_sum,
    *,
    block_rows: int,
    xp: ModuleType,
    out=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``passes.standard_assign_and_sum`` for NumPy: the same pass, into buffers allocated once
    (``out``'s when given, counting the labels it changes), with the row blocks shared out to one
    thread per core.

    The standard-only pass allocates several 0.1–2 MB temporaries per block. glibc serves those
    from the heap top and gives the memory back between blocks, so every block faults its pages in
    again, which can cost several times the pass's arithmetic (benchmarks/RESULTS.md). Here each
    block
    writes into buffers that live for the whole pass, and rows are converted to float64 for the
    update in chunks, so the pass allocates O(1) times.

    NumPy's elementwise work and argmin run on one core while BLAS uses all of them; with
    threadpoolctl installed, the blocks are split between threads (NumPy releases the GIL) and
    BLAS is held to one thread inside each, as scikit-learn does with OpenMP (for large passes
    only; see ``MIN_SCORES_FOR_THREADS``). Labels and partial distances are bit-identical to
    the standard pass (same GEMM operands, same operations) where BLAS rounds a product's rows
    the same whatever its thread count, as OpenBLAS's SkylakeX kernels do; its Haswell kernels
    (``OPENBLAS_CORETYPE=Haswell``) do not once a product is large enough for several threads
    (partials then differ in their last bits), so labels can then differ at genuine near-ties.
    Sums agree to rounding.
    """
    n_samples = X.shape[0]
    if offset is None:  # X was centered once for the whole fit
        offset = np.zeros(X.shape[1], dtype=X.dtype)
    if out is None:
        labels = np.empty(n_samples, dtype=label_dtype(centers.shape[0]))
        partial = np.empty(n_samples, dtype=X.dtype)
    else:
        labels, partial = out.labels, out.partial
    shared = _SharedPass(X, centers, weights, offset, segment_sum, labels, partial, xp)
    shared.count_changes = out is not None  # labels hold the last pass's: count what changes
    n_clusters = centers.shape[0]
    row_bytes = (X.shape[1] + n_clusters) * _itemsize(X) + 24  # _assign_rows' buffers, a row
    parts = _thread_parts(X, block_rows, n_clusters, row_bytes)
    chunk_bytes = min(UPDATE_CHUNK_BYTES, _data_bytes(X) // UPDATE_CHUNK_FRACTION_OF_X)
    chunk_bytes //= len(parts)
    results = _run_on_parts(
        parts, lambda lo, hi: _assign_rows(shared, lo, hi, block_rows, chunk_bytes)
    )
    sums, counts, _ = results[0]
    for s, c, _ in results[1:]:
        sums += s
        counts += c
    if out is not None:
        out.n_changed = sum(changed for _, _, changed in results)
    return labels, partial, sums, counts


class _SharedPass:
    """What every thread of one pass reads (and the two arrays each writes its own rows of)."""

    def __init__(self, X, centers, weights, offset, segment_sum, labels, partial, xp):
        self.X, self.weights, self.offset, self.segment_sum = X, weights, offset, segment_sum
        self.labels, self.partial, self.xp = labels, partial, xp
        self.neg2_centers_t = (-2.0 * centers).T  # the very operand assign_block multiplies by
        self.c_sq = np.sum(centers * centers, axis=1)
        self.count_changes = False

    def nearest(self, start: int, stop: int, block, scores, nearest) -> int:
        """Lloyd's argmin for rows start:stop, as ``assign_block`` computes it: the centered
        rows into ``block``, their scores ‖c‖² − 2x·c into ``scores``, the argmin into
        ``nearest`` (the first m rows of each buffer); returns m. The fit's pass and the
        labels pass share it, so ``predict(X_train)`` gives the fit's labels."""
        m = stop - start
        np.subtract(self.X[start:stop], self.offset, out=block[:m])
        np.matmul(block[:m], self.neg2_centers_t, out=scores[:m])
        scores[:m] += self.c_sq
        np.argmin(scores[:m], axis=1, out=nearest[:m])
        return m


def _assign_rows(
    shared: _SharedPass, lo: int, hi: int, block_rows: int, chunk_bytes: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Assign rows lo:hi block by block into the shared labels and partials; their sums, and
    how many labels changed (0 unless ``shared.count_changes``)."""
    X, labels, partial = shared.X, shared.labels, shared.partial
    n_features = X.shape[1]
    n_clusters = shared.c_sq.shape[0]
    block = np.empty((block_rows, n_features), dtype=X.dtype)
    scores = np.empty((block_rows, n_clusters), dtype=X.dtype)
    row_starts = np.arange(block_rows, dtype=np.int64) * n_clusters
    flat = np.empty(block_rows, dtype=np.int64)
    nearest = np.empty(block_rows, dtype=np.intp)  # argmin's own dtype: writing int32 is slower
    chunk_rows = max(1, chunk_bytes // (8 * n_features) // block_rows) * block_rows
    chunk_rows = min(chunk_rows, -(-(hi - lo) // block_rows) * block_rows)
    chunk = np.empty((chunk_rows, n_features), dtype=np.float64)
    sums = np.zeros((n_clusters, n_features))
    counts = np.zeros(n_clusters)
    chunk_start, filled = lo, 0
    n_changed = 0
    for start in range(lo, hi, block_rows):
        stop = min(start + block_rows, hi)
        m = shared.nearest(start, stop, block, scores, nearest)
        if shared.count_changes:
            n_changed += int(np.count_nonzero(labels[start:stop] != nearest[:m]))
        labels[start:stop] = nearest[:m]
        np.add(row_starts[:m], nearest[:m], out=flat[:m])
        np.take(scores[:m].reshape(-1), flat[:m], out=partial[start:stop])
        chunk[filled : filled + m] = block[:m]
        note_rows_read(m)
        filled += m
        if filled + block_rows > chunk_rows or stop == hi:
            s, c = shared.segment_sum(
                chunk[:filled],
                labels[chunk_start:stop],
                shared.weights[chunk_start:stop],
                n_clusters,
                xp=shared.xp,
            )
            sums += s
            counts += c
            chunk_start, filled = stop, 0
    return sums, counts, n_changed


def labels_and_inertia(
    X: np.ndarray,
    centers: np.ndarray,
    centered: np.ndarray,
    weights: np.ndarray | None,
    offset: np.ndarray,
    *,
    block_rows: int,
    xp: ModuleType,
) -> tuple[np.ndarray, float | None]:
    """``passes.standard_labels_and_inertia`` for NumPy (``predict``, ``score`` and a fit's final
    labels): the same operations block by block, into buffers allocated once per thread, with
    the blocks shared between threads from ``MIN_SCORES_FOR_THREADS`` as in ``assign_and_sum``.

    ``centered`` is ``centers - offset``, whose products give the labels; the inertia is
    Σ w·‖x − c‖² from the float64 differences with ``centers``, one sum per block, added in
    block order whichever thread made them. Labels and inertia are the standard pass's (with
    ``assign_and_sum``'s caveat on BLAS kernels that round a row differently on several
    threads). It makes ``predict`` about twice as fast as the standard pass
    (benchmarks/RESULTS.md).
    """
    n_samples = X.shape[0]
    labels = np.empty(n_samples, dtype=np.int64)
    shared = _SharedPass(X, centered, weights, offset, None, labels, None, xp)
    centers64 = None if weights is None else centers.astype(np.float64)
    n_clusters, n_features = centers.shape
    row_bytes = (n_features + n_clusters) * _itemsize(X) + 8  # _label_rows' buffers, a row
    if weights is not None:
        row_bytes += 16 * n_features
    parts = _thread_parts(X, block_rows, n_clusters, row_bytes)
    sums_per_part = _run_on_parts(
        parts, lambda lo, hi: _label_rows(shared, centers64, lo, hi, block_rows)
    )
    if weights is None:
        return labels, None
    inertia = None
    for block_sum in itertools.chain.from_iterable(sums_per_part):  # in block order
        inertia = block_sum if inertia is None else inertia + block_sum
    return labels, float(inertia)


def _label_rows(
    shared: _SharedPass, centers64: np.ndarray | None, lo: int, hi: int, block_rows: int
) -> list[np.float64]:
    """Label rows lo:hi block by block into ``shared.labels``; each block's Σ w·‖x − c‖² when
    ``centers64`` (the centers in float64) is given."""
    X, labels = shared.X, shared.labels
    n_features = X.shape[1]
    block = np.empty((block_rows, n_features), dtype=X.dtype)
    scores = np.empty((block_rows, shared.c_sq.shape[0]), dtype=X.dtype)
    nearest = np.empty(block_rows, dtype=np.intp)
    if centers64 is not None:
        diff = np.empty((block_rows, n_features), dtype=np.float64)
        nearest_centers = np.empty((block_rows, n_features), dtype=np.float64)
    block_sums = []
    for start in range(lo, hi, block_rows):
        stop = min(start + block_rows, hi)
        m = shared.nearest(start, stop, block, scores, nearest)
        labels[start:stop] = nearest[:m]
        if centers64 is not None:
            np.copyto(diff[:m], X[start:stop])
            np.take(centers64, nearest[:m], axis=0, out=nearest_centers[:m])
            np.subtract(diff[:m], nearest_centers[:m], out=diff[:m])
            np.multiply(diff[:m], diff[:m], out=diff[:m])
            row_sums = np.sum(diff[:m], axis=1)
            block_sums.append(np.sum(shared.weights[start:stop].astype(np.float64) * row_sums))
        note_rows_read(m)
    return block_sums


def distances_to_centers(
    X: np.ndarray, centers: np.ndarray, *, offset: np.ndarray, block_rows: int, xp: ModuleType
) -> np.ndarray:
    """``lloyd.distances_to_centers`` for NumPy (``transform``): the same float64 operations
    block by block, written straight into the (n, k) result in X's dtype, from buffers
    allocated once per thread, blocks shared between the cores from ``MIN_SCORES_FOR_THREADS``.
    Equal to the standard version (with ``assign_and_sum``'s caveat on BLAS kernels that round a
    row differently on several threads), which also allocates every block's temporaries and
    joins the blocks at the end, a second copy of the result (benchmarks/RESULTS.md has the
    times).
    """
    n_samples, n_clusters = X.shape[0], centers.shape[0]
    out = np.empty((n_samples, n_clusters), dtype=X.dtype)
    centered = (centers - offset).astype(np.float64)
    c_sq = np.sum(centered * centered, axis=1)
    row_bytes = X.shape[1] * (_itemsize(X) + 16) + 8 * (n_clusters + 1)  # _distance_rows'
    parts = _thread_parts(X, block_rows, n_clusters, row_bytes)
    job = (X, offset, centered.T, c_sq, out, block_rows)
    _run_on_parts(parts, lambda lo, hi: _distance_rows(*job, lo, hi))
    return out


def _distance_rows(X, offset, centered_t, c_sq, out, block_rows, lo, hi) -> None:
    """Rows lo:hi of ``distances_to_centers``: sqrt(max(‖x‖² − 2·x·c + ‖c‖², 0)) in float64,
    in the standard version's order of operations."""
    n_features, n_clusters = X.shape[1], c_sq.shape[0]
    block = np.empty((block_rows, n_features), dtype=X.dtype)
    block64 = np.empty((block_rows, n_features), dtype=np.float64)
    squares = np.empty((block_rows, n_features), dtype=np.float64)
    x_sq = np.empty(block_rows, dtype=np.float64)
    sq = np.empty((block_rows, n_clusters), dtype=np.float64)
    for start in range(lo, hi, block_rows):
        stop = min(start + block_rows, hi)
        m = stop - start
        np.subtract(X[start:stop], offset, out=block[:m])
        np.copyto(block64[:m], block[:m])
        np.multiply(block64[:m], block64[:m], out=squares[:m])
        np.sum(squares[:m], axis=1, out=x_sq[:m])
        np.matmul(block64[:m], centered_t, out=sq[:m])
        np.multiply(sq[:m], 2.0, out=sq[:m])
        np.subtract(x_sq[:m, None], sq[:m], out=sq[:m])
        np.add(sq[:m], c_sq, out=sq[:m])
        np.maximum(sq[:m], 0.0, out=sq[:m])
        np.sqrt(sq[:m], out=sq[:m])
        out[start:stop] = sq[:m]
        note_rows_read(m)


def candidate_potentials(
    X: np.ndarray,
    offset: np.ndarray,
    x_sq: np.ndarray,
    candidates: np.ndarray,
    closest: np.ndarray,
    weights: np.ndarray,
    trial_sq: np.ndarray | None,
    *,
    block_rows: int,
    centered_blocks: object,
    xp: ModuleType,
) -> np.ndarray:
    """``seeding.standard_candidate_potentials`` for NumPy: the same potentials and trial
    distances (same operands and operations, block partials added in block order), into buffers
    allocated once per call and with the blocks shared out to one thread per core. Bit for bit
    where BLAS rounds a product's rows the same whatever its thread count (see
    ``assign_and_sum``: with OpenBLAS's Haswell kernels some trial distances differ in their
    last bits; the potentials and picks stay the same).

    k-means++ runs this once per center, reading X each time, so its speed is k-means++'s
    (``python -m benchmarks.kmeanspp_memory --skip-memory`` times it). ``centered_blocks`` is
    not used: each block is centered into a buffer of its thread's.
    """
    n_samples = X.shape[0]
    if n_samples < _MIN_ROWS_FOR_POTENTIALS_THREADS:
        parts = [(0, n_samples)]
    else:
        n_candidates = candidates.shape[0]
        # _potentials_of_rows' buffers, a row
        row_bytes = (X.shape[1] + n_candidates) * _itemsize(X) + n_candidates * closest.itemsize
        parts = _split_blocks(n_samples, block_rows, row_bytes=row_bytes, x_bytes=_data_bytes(X))
    c_sq = np.sum(candidates * candidates, axis=1)
    shared = (X, offset, x_sq, candidates.T, c_sq, closest, weights, trial_sq)
    per_part = _run_on_parts(parts, lambda lo, hi: _potentials_of_rows(shared, lo, hi, block_rows))
    partials = [part for block_partials in per_part for part in block_partials]
    potential = partials[0]
    for part in partials[1:]:
        potential = potential + part
    return potential


def _potentials_of_rows(shared, lo: int, hi: int, block_rows: int) -> list[np.ndarray]:
    """Each block's potentials of rows lo:hi (a list, in block order), its trial distances
    written to the shared array."""
    X, offset, x_sq, candidates_t, c_sq, closest, weights, trial_sq = shared
    m_max = min(block_rows, hi - lo)
    n_candidates = c_sq.shape[0]
    block = np.empty((m_max, X.shape[1]), dtype=X.dtype)
    sq = np.empty((m_max, n_candidates), dtype=X.dtype)
    lowered = np.empty((m_max, n_candidates), dtype=closest.dtype)
    partials = []
    for start in range(lo, hi, block_rows):
        stop = min(start + block_rows, hi)
        m = stop - start
        np.subtract(X[start:stop], offset, out=block[:m])
        s = sq[:m]
        np.matmul(block[:m], candidates_t, out=s)
        # x² − 2·x·c + c², as _init.sq_distances: a − 2p equals a + (−2p) exactly.
        s *= -2.0
        s += x_sq[start:stop, None]
        s += c_sq
        np.maximum(s, 0.0, out=s)
        if trial_sq is not None:
            trial_sq[start:stop] = s
        d = lowered[:m]
        np.minimum(closest[start:stop, None], s, out=d)
        d *= weights[start:stop, None]
        partials.append(np.sum(d, axis=0))
        note_rows_read(m)
    return partials


# ---- threads -----------------------------------------------------------------------------------

# Fewer blocks than this per thread, and a pass runs on one thread: too little work to share.
_MIN_BLOCKS_PER_THREAD = 2
# Nor below this many scores (n × k) per pass: switching BLAS to one thread and back costs more
# than the threads save (the crossover in benchmarks/RESULTS.md lies between 6M and 200M).
MIN_SCORES_FOR_THREADS = 2**24
# k-means++'s pass per center (``candidate_potentials``) shares its blocks between threads from
# this many rows: its per-row work (a few candidates' distances, minima and weighted sums) counts
# more than d. Threads break even near this size (``python -m benchmarks.kmeanspp_memory
# --skip-memory --threads-from N`` finds the crossover).
_MIN_ROWS_FOR_POTENTIALS_THREADS = 2**14
_pool: ThreadPoolExecutor | None = None
_controller = None


def _thread_count() -> int:
    """Threads for one pass: one per usable core, or 1 without threadpoolctl (without it BLAS
    cannot be held to one thread per worker, and two threads then only contend)."""
    if _threadpoolctl is None:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _itemsize(X) -> int:
    """Bytes per value of X (an array, or host rows a streamed fit reads)."""
    return np.dtype(X.dtype).itemsize


def _data_bytes(X) -> int:
    """X's size in bytes (``nbytes``, which host rows a streamed fit reads may not have)."""
    return X.shape[0] * X.shape[1] * _itemsize(X)


def _thread_parts(X, block_rows: int, n_clusters: int, row_bytes: int) -> list[tuple[int, int]]:
    """Contiguous row ranges of X, whole blocks each, one per thread (a single range when
    small); ``row_bytes``: what a thread's buffers hold per row of its block."""
    n_samples = X.shape[0]
    if n_samples * n_clusters < MIN_SCORES_FOR_THREADS:
        return [(0, n_samples)]
    return _split_blocks(n_samples, block_rows, row_bytes=row_bytes, x_bytes=_data_bytes(X))


def _split_blocks(
    n_samples: int, block_rows: int, *, row_bytes: int, x_bytes: int
) -> list[tuple[int, int]]:
    """Contiguous row ranges, whole blocks each, one per thread where each gets at least
    ``_MIN_BLOCKS_PER_THREAD`` blocks (else one range).

    Each thread holds buffers for a block (``row_bytes`` a row), so there are no more threads
    than those buffers fit ``host_workspace_bytes`` of X (``x_bytes``) together: more cores do
    not mean more memory per row of X. Found on a 16-core machine, where k-means++ held 59 bytes
    a row of a 200 000 × 8 X (28 on 2 cores) and a memmap fit 0.77 × X beside it. The blocks
    stay the same, so the results do not depend on the thread count."""
    n_blocks = -(-n_samples // block_rows)
    fitting = host_workspace_bytes(x_bytes) // max(1, min(block_rows, n_samples) * row_bytes)
    threads = min(_thread_count(), n_blocks // _MIN_BLOCKS_PER_THREAD, fitting)
    if threads <= 1:
        return [(0, n_samples)]
    bounds = [(n_blocks * i // threads) * block_rows for i in range(threads)] + [n_samples]
    return [(bounds[i], min(bounds[i + 1], n_samples)) for i in range(threads)]


def _run_on_parts(parts: list[tuple[int, int]], run: Callable[[int, int], Any]) -> list[Any]:
    """``run(lo, hi)`` for each row range of ``parts``, results in ``parts``' order: in this
    thread for a single range, else one range per pool thread with BLAS held to one thread."""
    if len(parts) == 1:
        return [run(*parts[0])]
    with _blas_on_one_thread():
        futures = [_executor().submit(run, lo, hi) for lo, hi in parts]
        return [future.result() for future in futures]


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _threaded_pass_lock:  # one pool, also when two threads start their first pass together
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_thread_count(), thread_name_prefix="kmeans_xp")
    return _pool


# One threaded pass at a time in the process (a pass already uses every core), see below.
_threaded_pass_lock = threading.RLock()


@contextlib.contextmanager
def _blas_on_one_thread() -> Iterator[None]:
    """BLAS held to one thread while a pass shares its blocks between threads.

    OpenBLAS's thread count is the process's, and threadpoolctl (3.8) lets one Python thread at
    a time set it, ignoring the others. Two passes overlapping in different threads (concurrent
    ``predict`` calls, say) each setting and restoring it could restore the other's limit of 1
    and leave BLAS on one thread for good: seen in 2 of 4 runs of three threads predicting at
    once. So threaded passes run one at a time, each setting and restoring the limit in its own
    thread; overlapping ones wait (each would use every core anyway).
    """
    global _controller
    with _threaded_pass_lock:
        if _controller is None:
            _controller = _threadpoolctl.ThreadpoolController()
        with _controller.limit(limits=1, user_api="blas"):
            yield


def nearest_two(
    X: np.ndarray,
    rows: np.ndarray | None,
    centers: np.ndarray,
    centers_acc: np.ndarray,
    offset: np.ndarray,
    *,
    block_rows: int,
    xp: ModuleType,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``hamerly._nearest_two`` for NumPy: the same results, into buffers allocated once.

    The standard version makes a block-sized copy of the scores (to mask the nearest column)
    and several other temporaries per block; like the standard pass (see ``assign_and_sum``),
    that cost about three plain passes per row checked. Here the nearest column is overwritten in
    place and every block reuses the same buffers. Bit-identical results (same operands, same
    operations, same summation order).
    """
    k, d = centers.shape
    n_rows = X.shape[0] if rows is None else rows.shape[0]
    acc = centers_acc.dtype
    neg2_centers_t = (-2.0 * centers).T
    c_sq = np.sum(centers * centers, axis=1)
    c_sq_max = float(np.max(c_sq))
    # Worst-case rounding of the GEMM form, as in the standard version.
    relative_error = 2.0 * (d + 2) * float(np.finfo(centers.dtype).eps)
    labels = np.empty(n_rows, dtype=label_dtype(k))
    first = np.empty(n_rows, dtype=X.dtype)  # bounds, rounded outward to X's dtype
    second = np.empty(n_rows, dtype=X.dtype)
    m_max = min(block_rows, n_rows)
    block = np.empty((m_max, d), dtype=X.dtype)
    squares = np.empty((m_max, d), dtype=X.dtype)
    scores = np.empty((m_max, k), dtype=X.dtype)
    diff = np.empty((m_max, d), dtype=acc)
    row_starts = np.arange(m_max, dtype=np.int64) * k
    flat = np.empty(m_max, dtype=np.int64)
    nearest_index = np.empty(m_max, dtype=np.intp)
    second_index = np.empty(m_max, dtype=np.intp)
    runner_up = np.empty(m_max, dtype=X.dtype)
    x_sq = np.empty(m_max, dtype=X.dtype)
    distance = np.empty(m_max, dtype=acc)
    for start in range(0, n_rows, block_rows):
        stop = min(start + block_rows, n_rows)
        m = stop - start
        b = block[:m]
        if rows is None:
            np.subtract(X[start:stop], offset, out=b)
        else:
            np.take(X, rows[start:stop], axis=0, out=b)
            b -= offset
        s = scores[:m]
        np.matmul(b, neg2_centers_t, out=s)
        s += c_sq
        nearest = nearest_index[:m]
        np.argmin(s, axis=1, out=nearest)
        labels[start:stop] = nearest
        np.add(row_starts[:m], nearest, out=flat[:m])
        s.reshape(-1)[flat[:m]] = np.inf
        # The runner-up's value through its argmin: NumPy's argmin along rows is SIMD, its min
        # is not (several times faster per score).
        np.argmin(s, axis=1, out=second_index[:m])
        np.add(row_starts[:m], second_index[:m], out=flat[:m])
        np.take(s.reshape(-1), flat[:m], out=runner_up[:m])
        np.multiply(b, b, out=squares[:m])
        np.sum(squares[:m], axis=1, out=x_sq[:m])
        x_sq_acc = x_sq[:m].astype(acc)
        second_sq = x_sq_acc + runner_up[:m].astype(acc) - relative_error * (x_sq_acc + c_sq_max)
        np.sqrt(np.clip(second_sq, 0.0, None), out=distance[:m])
        second[start:stop] = as_lower_bound(distance[:m], X.dtype, xp=xp)
        e = diff[:m]
        np.take(centers_acc, nearest, axis=0, out=e)
        np.subtract(b, e, out=e)
        np.multiply(e, e, out=e)
        np.sum(e, axis=1, out=distance[:m])
        np.sqrt(distance[:m], out=distance[:m])
        first[start:stop] = as_upper_bound(distance[:m], X.dtype, xp=xp)
        note_rows_read(m)
    return labels, first, second
