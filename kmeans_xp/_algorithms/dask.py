"""K-Means on Dask arrays: each Lloyd iteration is one map-reduce over the chunks of rows.

Every task runs the in-memory primitives on its chunk (NumPy, or CuPy under dask-cuda), with
the small k × d centers shipped to it as NumPy and moved to the chunk's library there, and
returns per-cluster weighted sums and counts (NumPy); the driver adds them up and moves the
centers, which stay NumPy arrays on the driver whatever the chunks' library. X stays
persisted on the workers; only k × d arrays and a few scalars travel per iteration. Labels stay
on the workers too, as a persisted Dask array (chunks of X's library), so strict convergence
(no label changed) is checked there.

Initialisation: ``"k-means||"`` (its rounds are map-reduces as well; the default advice on
Dask), ``"random"`` rows (drawn uniformly: unlike in memory, sample weights do not bias this
draw), or explicit centers. ``"k-means++"`` needs one pass over X per center
and is refused with a message pointing to ``"k-means||"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backends import segment_sum_for
from .._core.primitives import squared_norms
from .._lib.budget import block_rows_for
from .._lib.compat import (
    array_device,
    get_namespace,
    is_numpy,
    is_supported_array,
    itemsize,
    to_numpy,
)
from .._lib.validation import (
    check_frame_columns,
    check_initial_centers,
    check_magnitude,
    check_values,
    check_weight_scale,
)
from .fit import FitSettings
from .init import ParallelInit, initial_centers, reduce_candidates
from .iterations import IterationStep, centers_from_sums, run_iterations
from .lloyd import distances_to_centers, labels_and_inertia, pass_for


def is_dask_collection(X: Any) -> bool:
    """A Dask array, or a Dask DataFrame (fitted and predicted through ``as_dask_array``)."""
    try:
        import dask
        import dask.array as da
    except ImportError:
        return False
    return isinstance(X, da.Array) or (dask.is_dask_collection(X) and hasattr(X, "to_dask_array"))


def as_dask_array(X: Any) -> Any:
    """X as a Dask array: a Dask DataFrame's rows, with the partitions' lengths computed (one
    pass over the data; the fit needs its chunks' sizes). A Dask array as is.

    A DataFrame's column types are checked first (known without computing anything): columns
    of strings, categories, dates or complex numbers are refused, naming them, where they would
    otherwise fail inside a task. Columns of different types (booleans beside floats, say) and
    pandas' nullable types are read as float64, missing values as NaN, which the fit then
    reports, as for an in-memory DataFrame.
    """
    if not hasattr(X, "to_dask_array"):
        return X
    check_frame_columns(X)
    dtypes = set(X.dtypes)
    if len(dtypes) > 1 or not isinstance(dtypes.pop(), np.dtype):  # mixed, or pandas' own types
        X = X.astype(np.float64)  # (where to_dask_array would give objects for some)
    return X.to_dask_array(lengths=True)


def chunk_meta(X: Any, ndim: int, dtype: Any) -> Any:
    """An empty array of the library of X's chunks (NumPy, or CuPy under dask-cuda): the
    ``meta`` of a Dask array derived from X, so that Dask knows its chunks' type."""
    return get_namespace(X._meta).empty((0,) * ndim, dtype=dtype)


# ---- what each task runs on its chunk -----------------------------------------------------------


def _as_library_of(chunk, meta):
    """``chunk`` as an array of ``meta``'s library (weights given as NumPy, X in CuPy chunks)."""
    xp = get_namespace(meta)
    return to_numpy(chunk) if is_numpy(xp) else xp.asarray(chunk)


def _total(w_chunk) -> float:
    xp = get_namespace(w_chunk)
    return float(xp.sum(xp.astype(w_chunk, xp.float64)))


def _block_rows(X_chunk, width: int) -> int:
    xp = get_namespace(X_chunk)
    n, d = X_chunk.shape
    return block_rows_for(n, d, width, itemsize(X_chunk, xp), xp=xp, device=None)


def _chunk_pass(X_chunk, w_chunk, centers, offset, previous):
    """Labels of the chunk (kept on the worker), and (sums, counts, rows changed) for the driver."""
    xp = get_namespace(X_chunk)
    pass_ = pass_for(xp, array_device(X_chunk))
    o = xp.asarray(offset, dtype=X_chunk.dtype)
    c = xp.asarray(centers, dtype=X_chunk.dtype)  # centered, as the pass takes them
    labels, _, sums, counts = pass_(
        X_chunk,
        c,
        w_chunk,
        o,
        segment_sum_for(xp),
        block_rows=_block_rows(X_chunk, c.shape[0]),
        xp=xp,
    )
    changed = -1 if previous is None else int(xp.sum(xp.astype(labels != previous, xp.int64)))
    return labels, (to_numpy(sums), to_numpy(counts), changed)


def _chunk_labels_and_inertia(X_chunk, w_chunk, centers, offset):
    xp = get_namespace(X_chunk)
    c = xp.asarray(centers, dtype=X_chunk.dtype)
    o = xp.asarray(offset, dtype=X_chunk.dtype)
    return labels_and_inertia(
        X_chunk, c, w_chunk, offset=o, block_rows=_block_rows(X_chunk, c.shape[0]), xp=xp
    )


def _chunk_predict(X_chunk, centers, offset):
    # Checked here, in the task: a lazy predict has not read X before.
    xp = get_namespace(X_chunk)
    check_values(X_chunk, "X (a chunk)", xp=xp, block_rows=_block_rows(X_chunk, centers.shape[0]))
    return _chunk_labels_and_inertia(X_chunk, None, centers, offset)[0]


def _chunk_distances(X_chunk, centers, offset):
    xp = get_namespace(X_chunk)
    block_rows = _block_rows(X_chunk, centers.shape[0])
    check_values(X_chunk, "X (a chunk)", xp=xp, block_rows=block_rows)
    c = xp.asarray(centers, dtype=X_chunk.dtype)
    o = xp.asarray(offset, dtype=X_chunk.dtype)
    return distances_to_centers(X_chunk, c, offset=o, block_rows=block_rows, xp=xp)


def _chunk_closest(X_chunk, centers, offset, closest):
    """Smallest squared distance (float64) of each row to the given centers, and to earlier
    ones (``closest``)."""
    xp = get_namespace(X_chunk)
    o = xp.asarray(offset, dtype=X_chunk.dtype)
    c = xp.asarray(centers, dtype=X_chunk.dtype) - o
    c_sq = squared_norms(c, xp=xp)
    out = []
    step = _block_rows(X_chunk, c.shape[0])
    for start in range(0, X_chunk.shape[0], step):
        block = X_chunk[start : start + step] - o
        sq = squared_norms(block, xp=xp)[:, None] - 2.0 * (block @ c.T) + c_sq[None, :]
        out.append(xp.astype(xp.min(xp.clip(sq, min=0.0), axis=1), xp.float64))
    new = xp.concat(out)
    return new if closest is None else xp.minimum(closest, new)


def _chunk_farthest(X_chunk, w_chunk, labels, centers, offset, m, start):
    """The chunk's m rows of positive weight farthest from their (centered) center: (scores,
    global rows); rows of weight 0 score -1, and a stable sort keeps ties in row order. Scores
    are exact float64 differences (the in-memory repair ranks by the GEMM form), so the two can
    pick different rows only at near-ties."""
    xp = get_namespace(X_chunk)
    centered = xp.astype(X_chunk - xp.asarray(offset, dtype=X_chunk.dtype), xp.float64)
    diff = centered - xp.take(xp.asarray(centers, dtype=xp.float64), labels, axis=0)
    score = to_numpy(xp.sum(diff * diff, axis=1))
    score = np.where((to_numpy(w_chunk) > 0) & (score > 0), score, -1.0)  # as in memory
    best = np.argsort(-score, kind="stable")[:m]
    return score[best], best + start


def _chunk_relabel(X_chunk, w_chunk, labels, moved_local, moved_to, offset, k):
    """Labels with the given rows moved, and the chunk's sums and counts recomputed from them."""
    xp = get_namespace(X_chunk)
    if len(moved_local):  # a few rows: moved on the host
        host = to_numpy(labels).copy()
        host[moved_local] = moved_to
        labels = xp.asarray(host)
    o = xp.asarray(offset, dtype=X_chunk.dtype)
    sums, counts = segment_sum_for(xp)(X_chunk - o, labels, w_chunk, k, xp=xp)
    return labels, (to_numpy(sums), to_numpy(counts))


def _chunk_sample(X_chunk, w_chunk, closest, threshold, seed):
    """Rows kept by one k-means|| round: u < ℓ·w·D²/φ, with this chunk's own uniforms."""
    xp = get_namespace(X_chunk)
    u = np.random.default_rng(seed).uniform(size=X_chunk.shape[0])
    keep = xp.asarray(u) * threshold[1] < threshold[0] * (xp.astype(w_chunk, xp.float64) * closest)
    return to_numpy(X_chunk[xp.nonzero(keep)[0]])


def _chunk_candidate_weights(X_chunk, w_chunk, candidates, offset):
    get_namespace(X_chunk)
    labels = _chunk_predict(X_chunk, candidates, offset)
    w = to_numpy(w_chunk).astype(np.float64)
    return np.bincount(to_numpy(labels), weights=w, minlength=candidates.shape[0])


# ---- the driver ---------------------------------------------------------------------------------


def float_rows(X: Any) -> Any:
    """A 2-D Dask array of numbers as float32 or float64 (booleans and integers as float64, as
    in memory), in chunks of whole rows (lazy: nothing is computed)."""
    if X.ndim != 2:
        msg = f"X must be a 2-D array of shape (n_samples, n_features), got shape {X.shape}."
        raise ValueError(msg)
    if X.dtype.kind == "c":  # as in memory (scikit-learn's wording)
        msg = f"Complex data not supported: X has complex dtype {X.dtype}; K-Means needs reals."
        raise ValueError(msg)
    if X.dtype.kind not in "biuf":
        msg = f"X must hold numbers, got dtype {X.dtype}."
        raise TypeError(msg)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})  # a task needs whole rows
    return X


def prepare_dask(X: Any, sample_weight: Any, n_clusters: int):
    """Row-chunked float X persisted, weights chunked alike, column means and mean variance."""
    import dask

    X = float_rows(X)
    if X.shape[0] < n_clusters:
        msg = f"n_samples={X.shape[0]} should be >= n_clusters={n_clusters}."
        raise ValueError(msg)
    given, w = _weights_for(X, sample_weight)
    X, w = dask.persist(X, w)
    *stats, mean, var = dask.compute(
        *_value_stats(X, given),
        X.mean(axis=0, dtype=np.float64),
        X.var(axis=0, dtype=np.float64),
    )
    _check_value_stats(X, *stats)
    return X, w, to_numpy(mean), float(np.mean(to_numpy(var)))


def _weights_for(X: Any, sample_weight: Any) -> tuple[Any, Any]:
    """The weights as given (chunked like X's rows) and in X's dtype and chunk library (lazy)."""
    import dask.array as da

    check_known_rows(X)
    if sample_weight is None:
        ones = da.ones_like(X[:, 0], dtype=X.dtype)  # chunks of X's library, like X's rows
        return ones, ones
    given = da.asarray(sample_weight)
    if given.shape != (X.shape[0],):
        msg = f"sample_weight must have shape ({X.shape[0]},), got {given.shape}."
        raise ValueError(msg)
    if given.dtype.kind not in "biuf":
        msg = f"sample_weight must hold real numbers, got dtype {given.dtype}."
        raise TypeError(msg)
    given = given.rechunk((X.chunks[0],))
    w = given.astype(X.dtype)
    if type(w._meta) is not type(X._meta):  # each task must meet one library
        meta = chunk_meta(X, 1, X.dtype)
        w = w.map_blocks(_as_library_of, meta, dtype=X.dtype, meta=meta)
    return given, w


def check_known_rows(X: Any) -> None:
    """ValueError where a Dask array's row count is unknown (chunks of unknown sizes, as a
    DataFrame's ``.values`` gives): a fit needs n before it reads X."""
    if np.isnan(X.shape[0]):
        msg = "X has unknown chunk sizes; call X.compute_chunk_sizes() first."
        raise ValueError(msg)


def _value_stats(X: Any, given: Any) -> tuple[Any, ...]:
    """Lazy counts and extremes that ``_check_value_stats`` judges. The weights are checked as
    given, before the cast to X's dtype could make them infinite or zero."""
    import dask.array as da

    return (
        (~da.isfinite(X)).sum(),
        abs(X).max(),
        (~da.isfinite(given)).sum(),
        abs(given).max(),
        (given < 0).sum(),
        given.sum(dtype=np.float64),
    )


def _check_value_stats(
    X, n_bad, largest, n_bad_w, w_largest, n_negative, total, *, fitted_largest: float = 0.0
) -> None:
    """The in-memory checks of X and the weights (``_lib.validation``), on computed statistics
    (``fitted_largest``: the largest |value| of fitted centers that weighted distances are to,
    as ``score`` takes it in memory)."""
    for name, count in (("X", n_bad), ("sample_weight", n_bad_w)):
        if count:
            msg = (
                f"{name} contains {int(count)} NaN or infinite value(s); K-Means needs finite "
                "values."
            )
            raise ValueError(msg)
    check_magnitude(float(largest), "X", np.finfo(X.dtype), X.dtype, shape=X.shape)
    check_weight_scale(
        int(n_negative),
        float(w_largest),
        float(total),
        x_largest=max(float(largest), fitted_largest),
        n_features=X.shape[1],
        x_finfo=np.finfo(X.dtype),
        x_dtype=X.dtype,
        acc_max=float(np.finfo(np.float64).max),
    )


def fit_dask(X: Any, sample_weight: Any, settings: FitSettings):
    """One init (``settings.n_init`` is not read: each init costs passes over the cluster) and
    its Lloyd iterations, each a map-reduce over the chunks. Returns centers (NumPy, X's
    dtype), labels (Dask), inertia, n_iter and the offset (NumPy)."""
    import dask

    n_clusters, max_iter, verbose = settings.n_clusters, settings.max_iter, settings.verbose
    X, w, mean, mean_variance = prepare_dask(as_dask_array(X), sample_weight, n_clusters)
    offset = mean.astype(X.dtype)
    tol_abs = settings.tol * mean_variance
    x_parts = X.to_delayed()[:, 0].tolist()
    w_parts = w.to_delayed().tolist()
    parallel = ParallelInit(settings.oversampling_factor, settings.n_rounds, tol_abs)
    seeding = DaskSeeding(X, w, x_parts, w_parts, offset)
    init = settings.init
    if not isinstance(init, str) and not callable(init):
        init = seeding.checked(init, n_clusters)
    centers = initial_centers(
        seeding, n_clusters, init, settings.rng, sample_weight is None, parallel
    )
    # Centers are kept centered by `offset`, in X's dtype, exactly as the in-memory loop does.
    centered, n_iter = run_iterations(
        _DaskLloydStep(X, x_parts, w_parts, offset),
        (centers - offset).astype(X.dtype),
        max_iter=max_iter,
        tol=tol_abs,
        verbose=verbose,
    )
    centers = centered + offset
    labels = X.map_blocks(
        _chunk_predict,
        centers,
        offset,
        drop_axis=1,
        dtype=np.int64,
        meta=chunk_meta(X, 1, np.int64),
    )
    inertia = sum(
        dask.compute(
            *[
                dask.delayed(lambda x, wt: _chunk_labels_and_inertia(x, wt, centers, offset)[1])(
                    x, wt
                )
                for x, wt in zip(x_parts, w_parts, strict=True)
            ]
        )
    )
    return centers, labels.persist(), float(inertia), n_iter, offset


class _DaskLloydStep:
    """One Lloyd iteration as a map-reduce: each chunk's pass runs on its worker (labels stay
    there, for the next pass to count changes against); sums and counts come back, and the
    update is the in-memory one."""

    def __init__(self, X: Any, x_parts: list, w_parts: list, offset: np.ndarray):
        import dask

        self.x_parts, self.w_parts, self.offset = x_parts, w_parts, offset
        self.run = dask.delayed(_chunk_pass, nout=2)
        self.starts = np.cumsum((0, *X.chunks[0][:-1]))
        self.previous = [None] * len(x_parts)

    def __call__(self, n_iter: int, centered: np.ndarray) -> IterationStep:
        parts = zip(self.x_parts, self.w_parts, self.previous, strict=True)
        passes = [self.run(x, wt, centered, self.offset, p) for x, wt, p in parts]
        labels, stats = _persist_and_fetch(passes)
        sums = sum(s for s, _, _ in stats)
        counts = sum(c for _, c, _ in stats)
        changed = sum(ch for _, _, ch in stats)
        n_empty = int(np.sum(counts == 0))
        if n_empty:
            refilled = _refill_empty_clusters(
                self.x_parts,
                self.w_parts,
                labels,
                self.starts,
                centered,
                self.offset,
                counts,
                n_empty,
            )
            if refilled is not None:
                labels, sums, counts, changed = refilled
        self.previous = labels
        new = centers_from_sums(sums, counts, centered, xp=get_namespace(centered))
        shift = float(np.sum((new - centered).astype(np.float64) ** 2))
        return IterationStep(new, shift, changed, n_empty, None)


def _refill_empty_clusters(x_parts, w_parts, labels, starts, centers, offset, counts, n_empty):
    """As in memory (``repair.relocate_empty_clusters``): the empty clusters (in index order)
    take the rows of positive weight farthest from their centers (ties to the lower row), rows
    at distance 0 never; sums and counts are recomputed. None where no row can move."""
    import dask

    empty = np.flatnonzero(counts == 0)
    tops = dask.compute(
        *[
            dask.delayed(_chunk_farthest)(x, wt, lab, centers, offset, n_empty, int(a))
            for x, wt, lab, a in zip(x_parts, w_parts, labels, starts, strict=True)
        ]
    )
    scores = np.concatenate([t[0] for t in tops])
    rows = np.concatenate([t[1] for t in tops])
    order = np.lexsort((rows, -scores))[:n_empty]
    order = order[scores[order] > 0]
    if order.shape[0] == 0:
        return None
    n_empty = order.shape[0]
    empty = empty[:n_empty]
    farthest = rows[order]
    relabel = dask.delayed(_chunk_relabel, nout=2)
    parts = []
    bounds = [*list(starts), None]
    for i, (x, wt, lab) in enumerate(zip(x_parts, w_parts, labels, strict=True)):
        lo, hi = bounds[i], bounds[i + 1]
        inside = (farthest >= lo) & (True if hi is None else farthest < hi)
        parts.append(relabel(x, wt, lab, farthest[inside] - lo, empty[inside], offset, len(counts)))
    new_labels, stats = _persist_and_fetch(parts)
    return new_labels, sum(s for s, _ in stats), sum(c for _, c in stats), n_empty


def _persist_and_fetch(parts):
    """Run each (labels, stats) task once: labels stay on the workers, stats come back."""
    import dask

    n = len(parts)
    held = dask.persist(*[lab for lab, _ in parts], *[stat for _, stat in parts])
    return list(held[:n]), dask.compute(*held[n:])


def _rows_for_model(X: Any, centers: np.ndarray, estimator: str) -> Any:
    """A Dask array or DataFrame as float rows with the fitted model's number of columns."""
    X = float_rows(as_dask_array(X))
    if X.shape[1] != centers.shape[1]:
        msg = (
            f"X has {X.shape[1]} features, but {estimator} is expecting {centers.shape[1]} "
            "features as input."
        )
        raise ValueError(msg)
    return X


def predict_dask(X, centers, offset, *, estimator: str):
    """Lazy labels of a Dask array (or DataFrame) of centers.shape[1] columns (``estimator``:
    the model's class name, for the message otherwise). A chunk holding NaN, infinity or values
    too large for K-Means raises ValueError when it is computed."""
    X = _rows_for_model(X, centers, estimator)
    return X.map_blocks(
        _chunk_predict,
        centers,
        offset,
        drop_axis=1,
        dtype=np.int64,
        meta=chunk_meta(X, 1, np.int64),
    )


def transform_dask(X, centers, offset, *, estimator: str):
    """Lazy Euclidean distances (n_samples, n_clusters) of a Dask array (or DataFrame) to the
    centers, in X's dtype; chunks are checked as in ``predict_dask``."""
    X = _rows_for_model(X, centers, estimator)
    return X.map_blocks(
        _chunk_distances,
        centers,
        offset,
        chunks=(X.chunks[0], (centers.shape[0],)),
        dtype=X.dtype,
        meta=chunk_meta(X, 2, X.dtype),
    )


def score_dask(X, sample_weight, centers, offset, *, estimator: str) -> float:
    """Opposite of the inertia of a Dask array (or DataFrame) for the centers, computed now:
    one pass to check X and the weights as a fit does, one to add the chunks' inertia."""
    import dask

    X = _rows_for_model(X, centers, estimator)
    given, w = _weights_for(X, sample_weight)
    stats = dask.compute(*_value_stats(X, given))
    fitted_largest = max(float(np.max(np.abs(a))) for a in (centers, offset))
    _check_value_stats(X, *stats, fitted_largest=fitted_largest)
    inertia = dask.delayed(lambda x, wt: _chunk_labels_and_inertia(x, wt, centers, offset)[1])
    parts = zip(X.to_delayed()[:, 0].tolist(), w.to_delayed().tolist(), strict=True)
    return -float(sum(dask.compute(*[inertia(x, wt) for x, wt in parts])))


class DaskSeeding:
    """``init.Seeding`` for a Dask array: random rows and explicit centers as in memory,
    k-means|| as map-reduce rounds over the chunks, k-means++ refused (a pass per center)."""

    def __init__(self, X: Any, w: Any, x_parts: list, w_parts: list, offset: np.ndarray):
        self.X, self.w, self.x_parts, self.w_parts, self.offset = X, w, x_parts, w_parts, offset
        self.n_samples = X.shape[0]
        self.source = X

    def kmeans_plusplus(self, n_clusters: int, rng: Any) -> np.ndarray:
        msg = (
            "init='k-means++' reads X once per center, which on a Dask array means k passes over "
            "the cluster; use init='k-means||' (n_rounds + 2 passes) for Dask input."
        )
        raise ValueError(msg)

    def weights_on_host(self) -> np.ndarray:
        return to_numpy(self.w.compute())

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """Rows of X in the order of ``indices`` (read in ascending order, once each)."""
        order = np.argsort(indices, kind="stable")
        picked = to_numpy(self.X[indices[order]].compute())
        rows = np.empty_like(picked)
        rows[order] = picked
        return rows

    def checked(self, centers: Any, n_clusters: int) -> np.ndarray:
        """Explicit centers checked as in memory, against a row-less stand-in of X on the host
        (the centers live on the host beside a Dask fit)."""
        if is_supported_array(centers):
            centers = to_numpy(centers)
        stand_in = np.lib.stride_tricks.as_strided(
            np.zeros(1, dtype=self.X.dtype), shape=self.X.shape, strides=(0, 0)
        )
        xp = get_namespace(stand_in)
        return check_initial_centers(centers, stand_in, n_clusters, xp=xp, device="cpu")

    def kmeans_parallel(self, k: int, rng: Any, parallel: ParallelInit) -> np.ndarray:
        """k-means||: one row ∝ weight, then rounds of oversampled D²-sampling, each a map over
        the chunks; the candidates, weighted by the rows nearest them, reduced to k on the
        host."""
        import dask

        X, x_parts, w_parts, offset = self.X, self.x_parts, self.w_parts, self.offset
        oversampling_factor, n_rounds, tol = parallel
        weights_total = dask.compute(*[dask.delayed(_total)(p) for p in w_parts])
        weights_total = np.asarray(weights_total, dtype=np.float64)
        part = rng.choice(len(w_parts), p=weights_total / weights_total.sum())
        w_part = to_numpy(dask.compute(w_parts[part])[0]).astype(np.float64)
        row = rng.choice(len(w_part), p=w_part / w_part.sum())
        start = sum(X.chunks[0][:part])
        candidates = [to_numpy(X[start + row : start + row + 1].compute())]
        closest = dask.persist(
            *[dask.delayed(_chunk_closest)(x, candidates[0], offset, None) for x in x_parts]
        )
        for _ in range(n_rounds):
            potential = float(
                sum(
                    dask.compute(
                        *[
                            dask.delayed(_weighted_sum)(wt, c)
                            for wt, c in zip(w_parts, closest, strict=True)
                        ]
                    )
                )
            )
            if potential <= 0:
                break
            threshold = (oversampling_factor * k, potential)
            seeds = rng.integers(0, 2**63 - 1, size=len(x_parts))
            picked = dask.compute(
                *[
                    dask.delayed(_chunk_sample)(x, wt, c, threshold, int(s))
                    for x, wt, c, s in zip(x_parts, w_parts, closest, seeds, strict=True)
                ]
            )
            new = np.concatenate(picked)
            if new.shape[0] == 0:
                continue
            candidates.append(new)
            closest = dask.persist(
                *[
                    dask.delayed(_chunk_closest)(x, new, offset, c)
                    for x, c in zip(x_parts, closest, strict=True)
                ]
            )
        candidate_rows = np.concatenate(candidates).astype(X.dtype)
        if candidate_rows.shape[0] < k:
            extra = np.sort(rng.choice(X.shape[0], size=k - candidate_rows.shape[0], replace=False))
            candidate_rows = np.concatenate([candidate_rows, to_numpy(X[extra].compute())])
        candidate_weights = sum(
            dask.compute(
                *[
                    dask.delayed(_chunk_candidate_weights)(x, wt, candidate_rows, offset)
                    for x, wt in zip(x_parts, w_parts, strict=True)
                ]
            )
        )
        xp = get_namespace(candidate_rows)
        return reduce_candidates(
            candidate_rows, candidate_weights.astype(X.dtype), k, rng, offset=offset, tol=tol, xp=xp
        )


def _weighted_sum(w_chunk, closest):
    return float(np.sum(to_numpy(w_chunk).astype(np.float64) * to_numpy(closest)))
