"""The function forms of the estimator: ``kmeans`` (one fit, its results returned) and
``kmeans_plusplus`` (the initial centers alone)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._algorithms.data import PreparedData
from .._algorithms.fit import FitSettings, KMeansResult, run_fit
from .._algorithms.init import kmeans_plusplus_indices, seeding_block_rows
from .._algorithms.prepare import prepare_data
from .._lib.compat import Array, as_supported_array, is_host_rows, take_rows, to_numpy
from .._lib.validation import check_integer, check_random_state
from .params import check_fit_settings, check_flag, check_n_local_trials


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
    n_local_trials = check_n_local_trials(n_local_trials, n_clusters)
    rng = check_random_state(random_state)
    prep = prepare_data(X, n_clusters, sample_weight)
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
        block_rows=seeding_block_rows(prep, n_local_trials),
        xp=prep.xp,
    )
    return take_rows(prep.X, indices, prep.xp), indices


def _fit(
    X: Any,
    sample_weight: Any,
    settings: FitSettings,
    *,
    device: Any = None,
    max_device_bytes: Any = None,
    on_iteration: Callable[[int, int], None] | None = None,
) -> tuple[KMeansResult, PreparedData]:
    """An in-memory fit with checked settings: prepare X, run the inits, keep the best run.

    With ``device``, the fit computes there and its arrays come back in X's library (see
    ``prepare.prepare_data``).
    """
    data = prepare_data(
        X,
        settings.n_clusters,
        sample_weight,
        device=device,
        max_device_bytes=max_device_bytes,
        init=settings.init,
    )
    try:
        best = run_fit(
            data, settings, uniform_weights=sample_weight is None, on_iteration=on_iteration
        )
    finally:
        if is_host_rows(data.X):
            data.X.close()
    if device is not None:  # results in X's library, on the host
        best = KMeansResult(to_numpy(best.centers), to_numpy(best.labels), *best[2:])
        data = data._replace(offset=to_numpy(data.offset))
    return best, data


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
    settings = check_fit_settings(
        n_clusters=n_clusters,
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
    )
    result, _ = _fit(X, sample_weight, settings, device=device, max_device_bytes=max_device_bytes)
    return result


def k_means(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    init: str | Array | Callable = "k-means++",
    n_init: int | str = "auto",
    max_iter: int = 300,
    verbose: int = 0,
    tol: float = 1e-4,
    random_state: Any = None,
    copy_x: bool = True,
    algorithm: str = "lloyd",
    return_n_iter: bool = False,
) -> tuple:
    """scikit-learn's ``sklearn.cluster.k_means``, with its signature and return convention.

    Code written against scikit-learn runs unchanged: the same parameters (``copy_x`` is
    checked and, as X is never modified here, has no other effect) and the same results,
    ``(centers, labels, inertia)``, with ``n_iter`` last when ``return_n_iter`` is true. Arrays
    come back in X's library, on X's device. :func:`kmeans` is the same fit returning a named
    tuple.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    n_clusters : int
    sample_weight, init, n_init, max_iter, verbose, tol, random_state, algorithm
        As for :class:`KMeans`.
    copy_x : bool, default True
        Accepted for scikit-learn's API; X is never changed either way.
    return_n_iter : bool, default False
        Also return the number of iterations of the best run.

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
    labels : array of shape (n_samples,)
    inertia : float
    n_iter : int
        Only with ``return_n_iter=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp import k_means
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    >>> centers, labels, inertia = k_means(X, 2, random_state=0)
    >>> inertia
    1.0
    >>> len(k_means(X, 2, random_state=0, return_n_iter=True))
    4
    """
    check_flag(copy_x, "copy_x")
    check_flag(return_n_iter, "return_n_iter")
    result = kmeans(
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
    )
    if return_n_iter:
        return result.centers, result.labels, result.inertia, result.n_iter
    return result.centers, result.labels, result.inertia
