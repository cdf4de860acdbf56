"""The public K-Means entry points: ``kmeans_plusplus``, ``kmeans`` and the ``KMeans`` estimator.

Everything here validates its arguments once and then delegates to the algorithm modules
(``_init``, ``_lloyd``), which assume valid input. Arrays come back in the caller's library, on
the caller's device.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from .._algorithms.dask import (
    fit_dask,
    is_dask_collection,
    predict_dask,
    score_dask,
    transform_dask,
)
from .._algorithms.hamerly import hamerly
from .._algorithms.init import (
    default_local_trials,
    init_state_bytes,
    kmeans_parallel_centers,
    kmeans_plusplus_indices,
    random_indices,
)
from .._algorithms.lloyd import (
    column_mean_and_variance,
    distances_to_centers,
    labels_and_inertia,
    lloyd,
)
from .._algorithms.streaming import STATE_BYTES_PER_ROW, HostRows
from .._backends import centered_for_passes, pass_runs_cupy_kernels, resolve_precision
from .._core.certified import check_precision
from .._lib.budget import (
    block_row_bytes,
    block_rows_for,
    cupy_pass_row_bytes,
    device_block_bytes,
)
from .._lib.compat import (
    Array,
    array_device,
    as_supported_array,
    free_device_memory,
    is_host_rows,
    itemsize,
    library_name,
    move_to,
    on_gpu,
    resolve_device,
    take_rows,
    to_numpy,
)
from .._lib.memmap import bounded_residency
from .._lib.validation import (
    check_data,
    check_initial_centers,
    check_integer,
    check_positive_real,
    check_random_state,
    check_sample_weight,
    check_tolerance,
    check_values,
)
from .._lib.version import __version__
from ..exceptions import ConvergenceWarning, sklearn_compatible
from .base import (
    ClustererMixin,
    FeatureNamesMixin,
    MetadataRequestsMixin,
    ParamsMixin,
    feature_names_of,
)
from .state import FORMAT_NAME, FORMAT_VERSION, jsonable_params, write_model_file

_INIT_STRINGS = ("k-means++", "k-means||", "random")
_ALGORITHMS = ("auto", "lloyd", "hamerly", "elkan")


class KMeansResult(NamedTuple):
    """What ``kmeans`` returns; unpacks as ``centers, labels, inertia, n_iter``."""

    centers: Array
    labels: Array
    inertia: float
    n_iter: int


# --------------------------------------------------------------------------------------------
# Shared preparation: validated data, weights, block size and the centering offset
# --------------------------------------------------------------------------------------------


class _Prepared(NamedTuple):
    X: Array  # on the computing device: X itself, a copy, or a HostRows streaming it
    xp: Any
    device: Any
    weights: Array
    block_rows: int
    offset: Array  # column means of X, in X's dtype; distances are computed on X - offset
    mean_variance: float
    source: Array  # X as validated, in the caller's library (results go back there)


def _prepare(
    X: Any,
    n_clusters: int,
    sample_weight: Any,
    *,
    device: Any = None,
    max_device_bytes: Any = None,
    init: Any = None,
) -> _Prepared:
    X, xp, x_device = check_data(X, "X")
    n_samples, n_features = X.shape
    if n_samples < n_clusters:
        msg = f"n_samples={n_samples} should be >= n_clusters={n_clusters}."
        raise ValueError(msg)
    block_rows = block_rows_for(
        n_samples, n_features, n_clusters, itemsize(X, xp), xp=xp, device=x_device
    )
    x_largest = check_values(X, "X", xp=xp, block_rows=block_rows)
    weights = check_sample_weight(
        sample_weight, X, xp=xp, device=x_device, block_rows=block_rows, x_largest=x_largest
    )
    source = X
    if device is not None:
        X, xp, x_device, weights, block_rows = _onto_device(
            X, weights, n_clusters, device=device, max_device_bytes=max_device_bytes, init=init
        )
    mean, mean_variance = column_mean_and_variance(X, xp=xp, block_rows=block_rows)
    offset = xp.astype(mean, X.dtype)
    return _Prepared(X, xp, x_device, weights, block_rows, offset, mean_variance, source)


def device_state_bytes(n_samples: int, n_clusters: int, x_itemsize: int, init: Any) -> int:
    """What a fit keeps on its device besides X (or two blocks of X) and a pass's temporaries:
    a Lloyd pass's per-row arrays, or, while ``init`` runs, the weights and the init's own
    state (``_init.init_state_bytes``), whichever is larger."""
    lloyd = n_samples * STATE_BYTES_PER_ROW
    seeding = n_samples * x_itemsize + init_state_bytes(init, n_samples, n_clusters, x_itemsize)
    return max(lloyd, seeding)


def _onto_device(
    X: Array, weights: Array, n_clusters: int, *, device: Any, max_device_bytes: Any, init: Any
) -> tuple[Array, Any, Any, Array, int]:
    """Host X (validated) for a fit on ``device``: copied whole when it fits the device budget
    with the pass's working memory, else streamed in row blocks (``_streaming.HostRows``).

    The budget is ``max_device_bytes``, or the device's free memory. It holds the fit's state
    (a Lloyd pass's per-row arrays, or ``init``'s while it runs, whichever is larger), and X or
    two blocks of it with a pass's temporaries. Returns X as the fit sees it, the device's
    namespace and device, the weights there, and the rows per block.
    """
    if library_name(X) != "numpy":
        msg = (
            f"device={device!r} fits host data on a device, but X is a {library_name(X)} array; "
            "pass X as a NumPy array (or memmap), or leave device=None to compute where X is."
        )
        raise TypeError(msg)
    if max_device_bytes is not None:
        max_device_bytes = check_integer(max_device_bytes, "max_device_bytes", minimum=1)
    xp, target = resolve_device(device)
    n_samples, n_features = X.shape
    size = X.dtype.itemsize  # X is on the host (NumPy): its own itemsize, whatever xp is
    budget = max_device_bytes if max_device_bytes is not None else free_device_memory(xp, target)
    state = device_state_bytes(n_samples, n_clusters, size, init)
    block_rows = block_rows_for(n_samples, n_features, n_clusters, size, xp=xp, device=target)
    pass_row_bytes = block_row_bytes(n_features, n_clusters)
    if budget is None or X.nbytes + state + block_rows * pass_row_bytes <= budget:
        X_device = xp.asarray(X, device=target)  # fits: one copy
    else:
        rows = (budget - state) // (pass_row_bytes + 2 * n_features * size)
        if rows < 1:
            msg = (
                f"max_device_bytes={budget} is too small to stream X: the fit keeps {state} "
                f"bytes of state on the device for {n_samples} rows (init={init!r}) plus at "
                "least one block."
            )
            raise ValueError(msg)
        block_rows = int(min(block_rows, rows))
        X_device = HostRows(X, xp, target, block_rows=block_rows)
    return X_device, xp, target, move_to(weights, xp, target), block_rows


def _pass_block_rows(prep: _Prepared, n_clusters: int, iterate: Callable) -> int:
    """Rows per block for the Lloyd passes and the final labels: where CuPy's kernels run them
    (CuPy, or torch CUDA with CuPy; X on the device) as many as free device memory allows by
    what those kernels hold (``cupy_pass_row_bytes``); elsewhere, and for Hamerly's passes,
    ``prep.block_rows``."""
    xp = prep.xp
    if iterate is not lloyd or is_host_rows(prep.X) or not pass_runs_cupy_kernels(xp, prep.device):
        return prep.block_rows
    n_samples, n_features = prep.X.shape
    size = itemsize(prep.X, xp)
    return block_rows_for(
        n_samples, n_features, n_clusters, size, xp=xp, device=prep.device,
        row_bytes=cupy_pass_row_bytes(n_features, n_clusters, size),
    )  # fmt: skip


def _seeding_block_rows(prep: _Prepared, n_local_trials: int) -> int:
    """Row blocks for k-means++, whose temporaries are n_local_trials wide, not n_clusters."""
    n_samples, n_features = prep.X.shape
    return block_rows_for(
        n_samples, n_features, n_local_trials, itemsize(prep.X, prep.xp),
        xp=prep.xp, device=prep.device,
    )  # fmt: skip


def _check_n_local_trials(n_local_trials: Any, n_clusters: int) -> int:
    if n_local_trials is None:
        return default_local_trials(n_clusters)
    return check_integer(n_local_trials, "n_local_trials", minimum=1)


# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------


def kmeans_plusplus(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    x_squared_norms: Any = None,
    random_state: Any = None,
    n_local_trials: int | None = None,
) -> tuple[Array, Array]:
    """Choose initial centers with greedy k-means++ (weighted by ``sample_weight``).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy, CuPy, PyTorch or array-api-strict array; anything else is converted with NumPy.
    n_clusters : int
        Number of centers to choose.
    sample_weight : array of shape (n_samples,), optional
        Non-negative weights; a point is drawn with probability ∝ weight · D(x)².
    x_squared_norms : array of shape (n_samples,), optional
        Accepted so that scikit-learn code runs unchanged; its shape is checked, its values are
        not used (distances are computed on X centered by its mean, whose norms these are not).
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of randomness, drawn on the host: the same seed picks the same rows on every
        backend.
    n_local_trials : int, optional
        Candidates per step; the one that lowers the potential most is kept. Default
        ``2 + int(log(n_clusters))``; 1 gives plain D²-sampling.

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
        Rows of X, in X's library and on X's device.
    indices : int64 array of shape (n_clusters,)
        Their row indices, in X's library and on X's device.

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp import kmeans_plusplus
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0], [10.1, 10.0]])
    >>> centers, indices = kmeans_plusplus(X, 2, random_state=0)
    >>> sorted(int(i) // 2 for i in indices)
    [0, 1]
    """
    n_clusters = check_integer(n_clusters, "n_clusters", minimum=1)
    n_local_trials = _check_n_local_trials(n_local_trials, n_clusters)
    rng = check_random_state(random_state)
    prep = _prepare(X, n_clusters, sample_weight)
    if x_squared_norms is not None:
        norms_shape = tuple(as_supported_array(x_squared_norms, "x_squared_norms").shape)
        if norms_shape != (prep.X.shape[0],):
            msg = (
                f"x_squared_norms must have shape ({prep.X.shape[0]},) to match X, got shape "
                f"{norms_shape}."
            )
            raise ValueError(msg)
    indices = kmeans_plusplus_indices(
        prep.X,
        n_clusters,
        prep.weights,
        rng,
        offset=prep.offset,
        n_local_trials=n_local_trials,
        block_rows=_seeding_block_rows(prep, n_local_trials),
        xp=prep.xp,
    )
    return take_rows(prep.X, indices, prep.xp), indices


def _check_init(init: Any) -> None:
    if isinstance(init, str):
        if init not in _INIT_STRINGS:
            msg = (
                f"init must be 'k-means++', 'k-means||', 'random', an array of shape "
                f"(n_clusters, n_features) or a callable, got init={init!r}."
            )
            raise ValueError(msg)
    elif init is None:
        msg = "init must be 'k-means++', 'k-means||', 'random', an array or a callable, got None."
        raise TypeError(msg)


def _resolve_algorithm(algorithm: Any, xp: Any, device: Any) -> Callable:
    """The iteration loop to run: plain Lloyd, or Lloyd pruned by Hamerly's bounds."""
    if not isinstance(algorithm, str) or algorithm not in _ALGORITHMS:
        msg = f"algorithm must be one of {', '.join(map(repr, _ALGORITHMS))}, got {algorithm!r}."
        raise ValueError(msg)
    if algorithm == "auto":
        # Bounds save GEMM work on a CPU; on a GPU the dense GEMM beats the gathers they need.
        return lloyd if on_gpu(xp, device) else hamerly
    return lloyd if algorithm == "lloyd" else hamerly


def _resolve_n_init(n_init: Any, init: Any, *, random_runs: int = 10) -> int:
    """Runs to make: "auto" is 1 for k-means++, k-means|| and explicit centers, ``random_runs``
    for "random" and callables (10 in KMeans, 3 in MiniBatchKMeans, as scikit-learn)."""
    explicit = not isinstance(init, str) and not callable(init)
    if isinstance(n_init, str):
        if n_init != "auto":
            msg = f"n_init must be 'auto' or an integer >= 1, got n_init={n_init!r}."
            raise ValueError(msg)
        return 1 if explicit or init in ("k-means++", "k-means||") else random_runs
    n_init = check_integer(n_init, "n_init", minimum=1)
    if explicit and n_init != 1:
        warnings.warn(
            f"Explicit initial center position passed: performing only one init instead of "
            f"n_init={n_init}.",
            RuntimeWarning,
            stacklevel=4,
        )
        return 1
    return n_init


class _ParallelInit(NamedTuple):
    """The k-means|| settings of one fit."""

    oversampling_factor: float
    n_rounds: int
    tol: float  # absolute, for the Lloyd iterations on the weighted candidates


def _initial_centers(
    prep: _Prepared,
    n_clusters: int,
    init: Any,
    rng: Any,
    uniform_weights: bool,
    parallel: _ParallelInit,
) -> Array:
    xp = prep.xp
    if isinstance(init, str) and init == "k-means||":
        return kmeans_parallel_centers(
            prep.X, n_clusters, prep.weights, rng, offset=prep.offset,
            oversampling_factor=parallel.oversampling_factor, n_rounds=parallel.n_rounds,
            tol=parallel.tol, xp=xp,
        )  # fmt: skip
    if isinstance(init, str) and init == "k-means++":
        n_local_trials = default_local_trials(n_clusters)
        indices = kmeans_plusplus_indices(
            prep.X,
            n_clusters,
            prep.weights,
            rng,
            offset=prep.offset,
            n_local_trials=n_local_trials,
            block_rows=_seeding_block_rows(prep, n_local_trials),
            xp=xp,
        )
        return take_rows(prep.X, indices, xp)
    if isinstance(init, str):  # "random"
        rows = random_indices(
            prep.X.shape[0], n_clusters, prep.weights, rng, uniform_weights=uniform_weights
        )
        return take_rows(prep.X, xp.asarray(rows, device=prep.device), xp)
    if callable(init):
        return check_initial_centers(
            init(prep.source, n_clusters, rng), prep.X, n_clusters, xp=xp, device=prep.device
        )
    return init  # an explicit array, validated once in _fit


# --------------------------------------------------------------------------------------------
# One complete fit
# --------------------------------------------------------------------------------------------


def _fit(
    X: Any,
    n_clusters: Any,
    *,
    sample_weight: Any,
    init: Any,
    n_init: Any,
    max_iter: Any,
    tol: Any,
    verbose: Any,
    random_state: Any,
    algorithm: Any = "auto",
    oversampling_factor: Any = 2.0,
    n_rounds: Any = 5,
    matmul_precision: Any = "auto",
    device: Any = None,
    max_device_bytes: Any = None,
    on_iteration: Callable[[int, int], None] | None = None,
) -> tuple[KMeansResult, _Prepared]:
    """Validate, run ``n_init`` initialisations + Lloyd, keep the best run.

    ``on_iteration(run, n_iter)``, when given, is called after every Lloyd iteration (the
    command line's progress bar). With ``device``, the fit computes there and its arrays come
    back in X's library (see ``_onto_device``).
    """
    n_clusters = check_integer(n_clusters, "n_clusters", minimum=1)
    max_iter = check_integer(max_iter, "max_iter", minimum=1)
    tol = check_tolerance(tol)
    verbose = check_integer(
        int(verbose) if isinstance(verbose, bool) else verbose, "verbose", minimum=0
    )
    _check_init(init)
    oversampling_factor = check_positive_real(oversampling_factor, "oversampling_factor")
    n_rounds = check_integer(n_rounds, "n_rounds", minimum=1)
    precision = check_precision(matmul_precision)
    n_init = _resolve_n_init(n_init, init)
    rng = check_random_state(random_state)
    prep = _prepare(
        X, n_clusters, sample_weight, device=device, max_device_bytes=max_device_bytes, init=init
    )
    try:
        best = _fit_prepared(
            prep, n_clusters, init=init, n_init=n_init, max_iter=max_iter, tol=tol,
            verbose=verbose, rng=rng, algorithm=algorithm,
            parallel_options=(oversampling_factor, n_rounds), precision=precision,
            on_iteration=on_iteration, uniform_weights=sample_weight is None,
        )  # fmt: skip
    finally:
        if is_host_rows(prep.X):
            prep.X.close()
    if device is not None:  # results in X's library, on the host
        best = KMeansResult(to_numpy(best.centers), to_numpy(best.labels), *best[2:])
        prep = prep._replace(offset=to_numpy(prep.offset))
    return best, prep


def _fit_prepared(
    prep: _Prepared,
    n_clusters: int,
    *,
    init: Any,
    n_init: int,
    max_iter: int,
    tol: float,
    verbose: int,
    rng: Any,
    algorithm: Any,
    parallel_options: tuple[float, int],
    precision: str,
    on_iteration: Callable[[int, int], None] | None,
    uniform_weights: bool,
) -> KMeansResult:
    """The runs of ``_fit`` on prepared data; returns the best."""
    xp = prep.xp
    precision = resolve_precision(precision, prep.X, n_clusters, xp=xp)
    oversampling_factor, n_rounds = parallel_options
    iterate = _resolve_algorithm(algorithm, xp, prep.device)
    if is_host_rows(prep.X):
        if algorithm in ("hamerly", "elkan"):
            msg = (
                f"algorithm={algorithm!r} gathers scattered rows; a fit that streams X from "
                "the host runs algorithm='lloyd' (or 'auto')."
            )
            raise ValueError(msg)
        iterate = lloyd
    if not isinstance(init, str) and not callable(init):
        # Validate an explicit init once, before any work.
        init = check_initial_centers(init, prep.X, n_clusters, xp=xp, device=prep.device)

    # tol is relative to the data: the mean per-feature variance of X (as scikit-learn).
    tol_abs = tol * prep.mean_variance
    parallel = _ParallelInit(oversampling_factor, n_rounds, tol_abs)
    pass_rows = _pass_block_rows(prep, n_clusters, iterate)
    # Lloyd's passes on CuPy read X centered once per fit where the copy fits a block's budget
    # (they would subtract the offset block by block, every iteration).
    X_pass = None
    if iterate is lloyd and not is_host_rows(prep.X):
        X_pass = centered_for_passes(
            prep.X, prep.offset, n_clusters, xp=xp, device=prep.device,
            budget=device_block_bytes(xp, prep.device), precision=precision,
        )  # fmt: skip
    centered = {} if X_pass is None else {"x_centered": True}
    best: KMeansResult | None = None
    for run in range(n_init):
        centers = _initial_centers(prep, n_clusters, init, rng, uniform_weights, parallel)
        if verbose:
            print(f"Initialization complete (run {run + 1} of {n_init}).")
        centers, n_iter = iterate(
            prep.X if X_pass is None else X_pass,
            centers,
            prep.weights,
            offset=prep.offset,
            max_iter=max_iter,
            tol=tol_abs,
            verbose=bool(verbose),
            block_rows=pass_rows,
            xp=xp,
            on_iteration=None if on_iteration is None else partial(on_iteration, run),
            precision=precision,
            **centered,
        )
        labels, inertia = labels_and_inertia(
            prep.X, centers, prep.weights, offset=prep.offset, block_rows=pass_rows, xp=xp,
            precision=precision,
        )  # fmt: skip
        # Runs within a relative 1e-9 are ties, and the earlier run wins: two runs that find the
        # same partition differ only in rounding (GPU atomics change the last bit from run to
        # run), and that must not decide which labels a seed gives.
        if best is None or inertia < best.inertia * (1 - 1e-9):
            best = KMeansResult(centers, labels, inertia, n_iter)

    warn_if_fewer_clusters(best.labels, n_clusters, xp)
    return best


# Rows of labels whose distinct values are found at once: ``unique_values`` copies and sorts
# what it is given, which for 100 M labels on a GPU is 0.8 GB beside X (measured: at n = 1e8 it
# broke issue 4's X + 2 GB budget after the fit itself had kept within it).
_DISTINCT_CHUNK_ROWS = 1 << 20


def count_distinct_labels(labels: Array, xp: Any) -> int:
    """The number of distinct values of ``labels``, found chunk by chunk so that no copy of
    more than ``_DISTINCT_CHUNK_ROWS`` labels is made (on a GPU each chunk waits for the device:
    the size of ``unique_values`` depends on the data; ~100 waits at n = 1e8, once per fit)."""
    n = labels.shape[0]
    seen = None
    for start in range(0, n, _DISTINCT_CHUNK_ROWS):
        found = xp.unique_values(labels[start : min(start + _DISTINCT_CHUNK_ROWS, n)])
        seen = found if seen is None else xp.unique_values(xp.concat([seen, found]))
    return 0 if seen is None else int(seen.shape[0])


def warn_if_fewer_clusters(labels: Array, n_clusters: int, xp: Any) -> None:
    """ConvergenceWarning when the final labels use fewer than n_clusters clusters."""
    n_distinct = count_distinct_labels(labels, xp)
    if n_distinct < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({n_distinct}) found smaller than "
            f"n_clusters ({n_clusters}). Possibly due to duplicate points in X.",
            sklearn_compatible(ConvergenceWarning),
            stacklevel=4,
        )


def kmeans(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    init: str | Array | Callable = "k-means++",
    n_init: int | str = "auto",
    max_iter: int = 300,
    tol: float = 1e-4,
    verbose: int = 0,
    random_state: Any = None,
    algorithm: str = "auto",
    oversampling_factor: float = 2.0,
    n_rounds: int = 5,
    matmul_precision: str = "auto",
    device: Any = None,
    max_device_bytes: int | None = None,
) -> KMeansResult:
    """Cluster X with K-Means (Lloyd's algorithm); the functional form of :class:`KMeans`.

    Parameters are those of :class:`KMeans`, plus ``X`` and ``sample_weight`` of
    :meth:`KMeans.fit`.

    Returns
    -------
    KMeansResult
        A named tuple ``(centers, labels, inertia, n_iter)``: centers (n_clusters, n_features) and
        labels (n_samples,) in X's library and on X's device; inertia a Python float; n_iter the
        Lloyd iterations of the best run.

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp import kmeans
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    >>> centers, labels, inertia, n_iter = kmeans(X, 2, random_state=0)
    >>> bool(labels[0] == labels[1]) and bool(labels[0] != labels[2]), inertia
    (True, 1.0)
    """
    result, _ = _fit(
        X,
        n_clusters,
        sample_weight=sample_weight,
        init=init,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        verbose=verbose,
        random_state=random_state,
        algorithm=algorithm,
        oversampling_factor=oversampling_factor,
        n_rounds=n_rounds,
        matmul_precision=matmul_precision,
        device=device,
        max_device_bytes=max_device_bytes,
    )
    return result


# --------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------


class FittedCentersMixin(FeatureNamesMixin):
    """predict, transform, score and save from ``cluster_centers_`` and the training mean
    ``_offset``, shared by the estimators (their fit sets both, ``n_features_in_`` and the
    feature names)."""

    def __getstate__(self) -> dict[str, Any]:
        # The per-library copies of the centers are a cache: rebuilt on demand, never pickled.
        state = self.__dict__.copy()
        if "_fitted_cache" in state:
            state["_fitted_cache"] = {}
        return state

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` as an ``.npz`` file (no pickle); see :func:`load`.

        The file holds the centers, the training labels, the training mean and JSON metadata
        (format version, parameters, n_features, the feature names when fitted on named
        columns, dtype, inertia, n_iter, kmeans_xp version, a SHA-256 checksum). Arrays are
        saved from any library; ``load(path, like=...)`` puts them back in any library and
        device. A ``MiniBatchKMeans`` file also holds what ``partial_fit`` goes on from: the
        centers' running sums, the step count and the random generator's state, so a loaded
        model takes the next batches exactly as the saved one would have.

        A callable ``init`` cannot be saved (a model file never holds code): a ``TypeError``
        says so. A ``random_state`` that is a Generator or RandomState is stored as None (a
        MiniBatchKMeans's own generator state is kept, as said). A ``device`` that is a
        ``torch.device`` or ``cupy.cuda.Device`` is stored by name, and loads as such where its
        library is installed, else as that name.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> from kmeans_xp import KMeans, load
        >>> km = KMeans(n_clusters=2, random_state=0).fit(np.array([[0.0], [1.0], [9.0], [10.0]]))
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> km.save(path)
        >>> load(path).predict(np.array([[0.2], [9.5]])).tolist() == km.predict(
        ...     np.array([[0.2], [9.5]])).tolist()
        True
        """
        self._check_is_fitted()
        write_model_file(path, *self._model_state())

    def _model_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted model as a model file's metadata and arrays (NumPy), for ``save``."""
        params, init_array = jsonable_params(self)
        centers = to_numpy(self.cluster_centers_)
        arrays = {
            "cluster_centers": centers,
            "offset": to_numpy(self._offset).astype(centers.dtype, copy=False),
        }
        labels = getattr(self, "labels_", None)  # a MiniBatchKMeans may have none
        if labels is not None:
            if is_dask_collection(labels):  # a Dask fit's labels live on the workers
                labels = labels.compute()
            arrays["labels"] = to_numpy(labels).astype(np.int64, copy=False)
        if init_array is not None:
            arrays["init"] = init_array
        inertia, n_iter = getattr(self, "inertia_", None), getattr(self, "n_iter_", None)
        metadata = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "kmeans_xp_version": __version__,
            "params": params,
            "n_clusters": int(centers.shape[0]),
            "n_features_in": int(self.n_features_in_),
            "dtype": str(centers.dtype),
            "inertia": None if inertia is None else float(inertia),
            "n_iter": None if n_iter is None else int(n_iter),
            "fitted_with": library_name(self.cluster_centers_),
        }
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            metadata["feature_names_in"] = [str(name) for name in names]
        return metadata, arrays

    def _restore_model_state(
        self, metadata: dict[str, Any], arrays: dict[str, np.ndarray], *, xp: Any, device: Any
    ) -> None:
        """The fitted attributes from a checked model file's metadata and arrays (``load``),
        the arrays moved to namespace ``xp`` on ``device``."""
        self.cluster_centers_ = move_to(arrays["cluster_centers"], xp, device)
        if "labels" in arrays:
            self.labels_ = move_to(arrays["labels"], xp, device)
        if metadata["inertia"] is not None:
            self.inertia_ = float(metadata["inertia"])
        if metadata["n_iter"] is not None:
            self.n_iter_ = int(metadata["n_iter"])
        self.n_features_in_ = int(metadata["n_features_in"])
        if "feature_names_in" in metadata:
            self.feature_names_in_ = np.asarray(metadata["feature_names_in"], dtype=object)
        self._offset = move_to(arrays["offset"], xp, device)
        self._fitted_cache = {}

    # ---- using the fitted centers ------------------------------------------------------------

    def _fitted_like(self, X: Any, name: str = "X") -> tuple[Array, Array, Array, Any, int, float]:
        """Validated X, the centers and offset as arrays of X's library, device and dtype, the
        namespace, the block rows, and the largest absolute value of X, centers and offset."""
        self._check_is_fitted()
        self._check_feature_names(X)
        X, xp, device = check_data(X, name)
        if X.shape[1] != self.n_features_in_:
            msg = (
                f"{name} has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
            raise ValueError(msg)
        key = (library_name(X), str(device), str(X.dtype))
        if key not in self._fitted_cache:
            centers = xp.astype(move_to(self.cluster_centers_, xp, device), X.dtype)
            offset = xp.astype(move_to(self._offset, xp, device), X.dtype)
            # Distances are to the fitted centers, whose values (and the centering offset's)
            # may exceed X's: bounds on weighted sums take the largest of the three.
            fitted_largest = max(float(xp.max(xp.abs(a))) for a in (centers, offset))
            self._fitted_cache[key] = (centers, offset, fitted_largest)
        centers, offset, fitted_largest = self._fitted_cache[key]
        block_rows = block_rows_for(
            X.shape[0], X.shape[1], centers.shape[0], itemsize(X, xp), xp=xp, device=device
        )
        largest = check_values(X, name, xp=xp, block_rows=block_rows)
        return X, centers, offset, xp, block_rows, max(largest, fitted_largest)

    def predict(self, X: Any) -> Array:
        """Index of the nearest center of each row of X (an int64 array of X's library; for a
        Dask array or DataFrame, a lazy Dask array)."""
        if is_dask_collection(X):
            centers, offset, name = self._fitted_on_host(X)
            return predict_dask(X, centers, offset, estimator=name)
        X, centers, offset, xp, block_rows, _ = self._fitted_like(X)
        labels, _ = labels_and_inertia(
            X, centers, None, offset=offset, block_rows=block_rows, xp=xp,
            precision=self._matmul_precision(X, centers.shape[0], xp),
        )  # fmt: skip
        return labels

    def _fitted_on_host(self, X: Any) -> tuple[np.ndarray, np.ndarray, str]:
        """For a Dask X: the fitted centers and offset as NumPy arrays, after the checks."""
        self._check_is_fitted()
        self._check_feature_names(X, stacklevel=4)
        return to_numpy(self.cluster_centers_), to_numpy(self._offset), type(self).__name__

    def transform(self, X: Any) -> Array:
        """Euclidean distances from each row of X to each center, shape (n_samples, n_clusters)
        (a DataFrame after ``set_output(transform="pandas")`` for NumPy results; for a Dask array
        or DataFrame, a lazy Dask array)."""
        if is_dask_collection(X):
            centers, offset, name = self._fitted_on_host(X)
            return transform_dask(X, centers, offset, estimator=name)
        X_given = X
        X, centers, offset, xp, block_rows, _ = self._fitted_like(X)
        distances = distances_to_centers(X, centers, offset=offset, block_rows=block_rows, xp=xp)
        return self._wrap_transform_output(distances, X_given)

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> Array:
        """Fit, then return ``transform(X)``."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the inertia of X for the fitted centers (higher is better; for a Dask
        array or DataFrame, computed now)."""
        if is_dask_collection(X):
            centers, offset, name = self._fitted_on_host(X)
            return score_dask(X, sample_weight, centers, offset, estimator=name)
        X, centers, offset, xp, block_rows, largest = self._fitted_like(X)
        weights = check_sample_weight(
            sample_weight, X, xp=xp, device=array_device(X), block_rows=block_rows,
            x_largest=largest,
        )  # fmt: skip
        _, inertia = labels_and_inertia(
            X, centers, weights, offset=offset, block_rows=block_rows, xp=xp,
            precision=self._matmul_precision(X, centers.shape[0], xp),
        )  # fmt: skip
        return -inertia

    def _matmul_precision(self, X: Array, n_clusters: int, xp: Any) -> str:
        """The mode of the estimator's ``matmul_precision`` ("highest" for those without one)
        for a pass over X (``_backends.resolve_precision``)."""
        precision = check_precision(getattr(self, "matmul_precision", "highest"))
        return resolve_precision(precision, X, n_clusters, xp=xp)


class KMeans(FittedCentersMixin, MetadataRequestsMixin, ClustererMixin, ParamsMixin):
    """K-Means clustering on NumPy, CuPy or PyTorch arrays, with scikit-learn's interface.

    Parameters
    ----------
    n_clusters : int, default 8
        Number of clusters.
    init : "k-means++", "k-means||", "random", array of shape (n_clusters, n_features) or callable
        ``"k-means++"``: greedy weighted k-means++ with ``2 + int(log(n_clusters))`` local trials;
        one pass over X per center.
        ``"k-means||"``: scalable k-means++ (Bahmani et al. 2012): ``n_rounds`` rounds of
        oversampled D²-sampling, then weighted k-means++ and a few Lloyd iterations on the
        candidates; ``n_rounds + 2`` passes over X however large k is. Better when n·k is large
        (see benchmarks/RESULTS.md for the measured trade-off), and the init to use on Dask.
        ``"random"``: ``n_clusters`` distinct rows, chosen with probability ∝ sample weight.
        An array: the initial centers (a NumPy array, a list or an array of X's library).
        A callable: ``init(X, n_clusters, random_state)`` returning such an array.
    n_init : "auto" or int, default "auto"
        Independent runs; the one with the lowest inertia is kept. "auto" is 1 for k-means++,
        k-means|| and explicit arrays, 10 for "random" and callables.
    max_iter : int, default 300
        Maximum Lloyd iterations per run.
    tol : float, default 1e-4
        Convergence threshold on the squared center shift Σ‖c_new − c‖², relative to the mean
        per-feature variance of X. A run also stops as soon as no label changes.
    verbose : int, default 0
        If positive, print one line per iteration (inertia, center shift) and why a run stopped.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Randomness is drawn on the host, so one seed gives the same start on every backend.
    copy_x : bool, default True
        Accepted so that scikit-learn code runs unchanged; both values behave the same. X is
        never modified (scikit-learn's ``copy_x=False`` centers X in place during the fit; here
        rows are centered as they are read, see Notes).
    algorithm : {"auto", "lloyd", "hamerly", "elkan"}, default "auto"
        How each Lloyd iteration finds the nearest centers; all give the same iterations (labels
        may differ only at genuine near-ties). ``"lloyd"``: every distance, by blocked GEMM.
        ``"hamerly"``: triangle-inequality bounds (one upper, one lower per point, O(n) memory)
        skip the rows that cannot change cluster; distances for the bounds are taken in float64.
        ``"elkan"`` is accepted for scikit-learn code and runs ``"hamerly"``. ``"auto"``:
        ``"hamerly"`` on a CPU, ``"lloyd"`` on a GPU (where the dense GEMM is cheaper than the
        gathers pruning needs).
    oversampling_factor : float, default 2.0
        k-means|| only: each round keeps about ``oversampling_factor * n_clusters`` candidates
        (ℓ in the paper).
    n_rounds : int, default 5
        k-means|| only: rounds of oversampled sampling (the paper finds 5 enough for ℓ = 2k).
    matmul_precision : {"auto", "highest", "high", "tf32x3"}, default "auto"
        Precision of the distance products on a GPU (the middle two are PyTorch's names).
        ``"highest"``: float32 products. ``"high"``: TF32 tensor-core products, several times
        faster on Ampere and later GPUs. ``"tf32x3"``: each float32 operand split into a TF32
        head and tail, three TF32 products in one GEMM of depth 3·n_features — about float32's
        accuracy (few rows rescored) at tensor-core speed. ``"auto"``: ``"tf32x3"`` for float32
        CuPy arrays, and torch CUDA tensors where CuPy is installed (they run its kernels), on an
        Ampere or later GPU with at least 256 clusters (on an H200 it took 29-51 % off an
        iteration at 1 M × 128 → 1024, 131 k × 256 → 16 384 and 8.4 M × 128 → 1024), else
        ``"highest"`` (torch CUDA without CuPy and X streamed from the host included: not
        measured there). Whatever the mode, the labels are *certified*: a row
        whose two nearest centers are too close to call at that precision is scored again in
        float64, so labels equal a float64 argmin (see Notes); ``inertia_`` is computed exactly
        at the end. No effect on a CPU or for float64 data.
    device : None, "cuda", "cuda:N", "cpu", torch.device or cupy.cuda.Device, default None
        Where the fit computes. None: where X lives (a CuPy array fits on its GPU). Otherwise X
        must be a NumPy array or ``numpy.memmap`` on the host: it is copied to the device once
        when it fits there, or streamed to it in row blocks every pass when it does not (copies
        double-buffered behind the computation; a streamed in-RAM X is page-locked in place for
        the fit, a memmap goes through pinned staging buffers). ``"cuda"`` uses CuPy when it
        sees a GPU, else PyTorch; a ``torch.device`` or ``cupy.cuda.Device`` names the library
        too. The fitted arrays come back as NumPy arrays. Not for Dask arrays (nor are the
        tensor-core ``matmul_precision`` modes): a Dask fit computes where its chunks are.
    max_device_bytes : int, optional
        With ``device``: the device memory the fit may use (default: the free memory). X is
        streamed when it does not fit beside the fit's own state (about 32 bytes per row) and
        one pass's working memory; a small value forces streaming.

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
        In X's library, on X's device, in X's floating dtype.
    labels_ : int64 array of shape (n_samples,)
        Index of the nearest center of each training point (for the final centers).
    inertia_ : float
        Σ w·‖x − c_label‖² over the training data, computed directly.
    n_iter_ : int
        Lloyd iterations of the best run.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : numpy.ndarray of str
        The column names of a DataFrame X, when all are strings (as in scikit-learn); new data
        for ``predict``, ``transform`` and ``score`` must then have the same names.

    Notes
    -----
    *Arrays in, arrays out.* X may be a NumPy, CuPy, PyTorch (any device) or array-api-strict
    array; other inputs (lists, pandas) are converted with NumPy. ``transform`` returns a pandas
    or polars DataFrame for NumPy results after ``set_output(transform="pandas")`` (or
    ``"polars"``), with ``get_feature_names_out()`` (``kmeans0``, ``kmeans1``, ...) as columns.
    ``sample_weight`` and an explicit ``init`` may be Python sequences, NumPy arrays or arrays of
    X's library (copied to X's device); an array of another device library raises
    ``TypeError``. ``predict``,
    ``transform`` and ``score`` accept arrays of any supported library: the centers are copied to
    that library and device once and cached.

    *Scale.* A ``numpy.memmap`` X is read block by block, never copied, and its file pages are
    released as the fit reads them (files larger than RAM fit in bounded memory). A Dask array X
    is fitted by one map-reduce over its row chunks per iteration (``init="k-means||"``,
    ``"random"`` or explicit centers; ``labels_`` is a Dask array, ``predict`` and ``transform``
    stay lazy, ``score`` computes).

    *Numerics.* float32 input stays float32, float64 stays float64; boolean, integer and float16
    input becomes the library's default float. Distances are computed on data centered by the
    training mean (X itself is not copied); sums and inertia accumulate in float64 where the
    device has it.
    On a GPU (CuPy, or PyTorch CUDA tensors) every assignment of float32 data is certified: each
    row's score error has a proven bound (``kmeans_xp._core.certified``), and the rows whose
    best and second-best centers lie within twice that bound are scored again in float64 — typically
    under 0.2 % of rows with float32 products, more with TF32 while the centers still move. GPU
    k-means libraries that skip this step label 0.07–0.1 % of points wrongly. A pass that runs
    out of device memory is run again with half the rows per block.

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp import KMeans
    >>> X = np.array([[1.0, 2.0], [1.0, 4.0], [1.0, 0.0], [10.0, 2.0], [10.0, 4.0], [10.0, 0.0]])
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    >>> km.inertia_
    16.0
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Array | Callable = "k-means++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state: Any = None,
        copy_x: bool = True,
        algorithm: str = "auto",
        oversampling_factor: float = 2.0,
        n_rounds: int = 5,
        matmul_precision: str = "auto",
        device: Any = None,
        max_device_bytes: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.oversampling_factor = oversampling_factor
        self.n_rounds = n_rounds
        self.matmul_precision = matmul_precision
        self.device = device
        self.max_device_bytes = max_device_bytes

    # ---- fitting -----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Compute the clustering of X.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        y : ignored
            Present for scikit-learn's API.
        sample_weight : array of shape (n_samples,), optional
            Non-negative weights, not all zero; used in init, update and inertia.

        Returns
        -------
        self : KMeans
        """
        return self._fit_with_progress(X, sample_weight)

    def _fit_with_progress(
        self, X: Any, sample_weight: Any, on_iteration: Callable[[int, int], None] | None = None
    ) -> KMeans:
        """``fit``, with the per-iteration hook the command line's progress bar uses."""
        if not isinstance(self.copy_x, (bool, np.bool_)):
            msg = f"copy_x must be True or False, got copy_x={self.copy_x!r}."
            raise TypeError(msg)
        names = feature_names_of(X)
        if is_dask_collection(X):
            self._fit_dask(X, sample_weight)
        else:
            with bounded_residency(X):
                self._fit_in_memory(X, sample_weight, on_iteration)
        self._set_feature_names(names)
        return self

    def _fit_in_memory(
        self, X: Any, sample_weight: Any, on_iteration: Callable[[int, int], None] | None
    ) -> KMeans:
        result, prep = _fit(
            X,
            self.n_clusters,
            sample_weight=sample_weight,
            init=self.init,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            verbose=self.verbose,
            random_state=self.random_state,
            algorithm=self.algorithm,
            oversampling_factor=self.oversampling_factor,
            n_rounds=self.n_rounds,
            matmul_precision=self.matmul_precision,
            device=self.device,
            max_device_bytes=self.max_device_bytes,
            on_iteration=on_iteration,
        )
        self.cluster_centers_ = result.centers
        self.labels_ = result.labels
        self.inertia_ = result.inertia
        self.n_iter_ = result.n_iter
        self.n_features_in_ = int(prep.X.shape[1])
        # The training mean: predict centers new data the same way fit did, so that
        # predict(X_train) reproduces labels_ exactly.
        self._offset = prep.offset
        self._fitted_cache: dict[tuple, tuple[Array, Array, float]] = {}
        return self

    def _fit_dask(self, X: Any, sample_weight: Any) -> KMeans:
        """``fit`` on a Dask array: one map-reduce over the chunks per Lloyd iteration."""
        n_clusters = check_integer(self.n_clusters, "n_clusters", minimum=1)
        _check_init(self.init)
        explicit = not isinstance(self.init, str) and not callable(self.init)
        # One init on Dask ("auto" means 1 there): each init costs passes over the cluster.
        if self.n_init != "auto" and _resolve_n_init(self.n_init, self.init) != 1 and not explicit:
            msg = f"n_init={self.n_init!r}: a Dask fit runs one init; use n_init='auto' or 1."
            raise ValueError(msg)
        oversampling = check_positive_real(self.oversampling_factor, "oversampling_factor")
        if check_precision(self.matmul_precision) not in ("auto", "highest") or (
            self.device is not None
        ):
            msg = (
                f"matmul_precision={self.matmul_precision!r} and device={self.device!r} apply to "
                "in-memory X; a Dask fit computes where its chunks are (CuPy chunks under "
                "dask-cuda: float32 products, labels certified)."
            )
            raise ValueError(msg)
        centers, labels, inertia, n_iter, offset = fit_dask(
            X, sample_weight, n_clusters, init=self.init,
            max_iter=check_integer(self.max_iter, "max_iter", minimum=1),
            tol=check_tolerance(self.tol), verbose=bool(self.verbose),
            rng=check_random_state(self.random_state),
            oversampling_factor=oversampling,
            n_rounds=check_integer(self.n_rounds, "n_rounds", minimum=1),
        )  # fmt: skip
        self.cluster_centers_, self.labels_, self.inertia_ = centers, labels, inertia
        self.n_iter_ = n_iter
        self.n_features_in_ = int(X.shape[1])
        self._offset = offset
        self._fitted_cache = {}
        return self

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Array:
        """Fit, then return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_
