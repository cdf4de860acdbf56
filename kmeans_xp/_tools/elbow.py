"""Choosing K: fit a range of K, and find the knee of the inertia curve.

The data stay where they are (a CuPy array is fitted on its GPU for every K); only the scalars
(inertia, time, silhouette) come back to the host.
"""

from __future__ import annotations

import itertools
import math
import numbers
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._algorithms.dask import as_dask_array, check_known_rows, is_dask_collection
from .._estimators.kmeans import KMeans
from .._lib.compat import to_numpy
from .._lib.validation import check_data
from .metrics import silhouette_score, subsample_rows

__all__ = ["ElbowResult", "elbow", "knee_point"]


@dataclass(frozen=True)
class ElbowResult:
    """What :func:`elbow` returns.

    Attributes
    ----------
    ks : list of int
        The numbers of clusters fitted, increasing.
    inertias : list of float
        Inertia of the fit for each K: the sum of squared distances of the points to their
        centers (the quantity the elbow method plots).
    fit_times : list of float
        Wall-clock seconds of each fit.
    n_iters : list of int
        Lloyd iterations of each fit.
    suggested_k : int or None
        The knee of the curve (:func:`knee_point`); None when fewer than three Ks were fitted
        or the curve has no knee.
    silhouettes : list of float or None
        Mean silhouette coefficient for each K when asked for (NaN for K=1 and K=n_samples,
        where it is undefined); None otherwise.
    """

    ks: list[int]
    inertias: list[float]
    fit_times: list[float]
    n_iters: list[int]
    suggested_k: int | None
    silhouettes: list[float] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The result as plain Python values for JSON (an undefined silhouette becomes None)."""
        silhouettes = None
        if self.silhouettes is not None:
            silhouettes = [None if math.isnan(s) else s for s in self.silhouettes]
        return {
            "ks": list(self.ks),
            "inertias": list(self.inertias),
            "fit_times": list(self.fit_times),
            "n_iters": list(self.n_iters),
            "suggested_k": self.suggested_k,
            "silhouettes": silhouettes,
        }


def knee_point(ks: Iterable[int], inertias: Iterable[float]) -> int | None:
    """The K at the knee of a decreasing inertia curve, or None when it has none.

    Method: scale both axes to [0, 1] (K by its range, inertia by its range) and return the K
    whose point lies farthest below the chord from the first point to the last; on the scaled
    curve this is the point after which adding clusters buys least (the "Kneedle" idea of
    Satopää et al., 2011, without smoothing). None when there are fewer than three points, the
    curve is flat, or no point lies below the chord.

    Examples
    --------
    >>> knee_point([1, 2, 3, 4, 5, 6], [100.0, 40.0, 10.0, 8.0, 7.0, 6.5])
    3
    """
    ks, values = list(ks), [float(v) for v in inertias]
    if len(ks) != len(values):
        msg = f"ks and inertias differ in length: {len(ks)} and {len(values)}."
        raise ValueError(msg)
    if len(ks) < 3:
        return None
    top, bottom = max(values), min(values)
    if not top > bottom or ks[-1] == ks[0]:
        return None
    x = [(k - ks[0]) / (ks[-1] - ks[0]) for k in ks]
    y = [(v - bottom) / (top - bottom) for v in values]
    # Height of the chord above each point (x is the chord's parameter: it runs from 0 to 1).
    gaps = [y[0] + (y[-1] - y[0]) * xi - yi for xi, yi in zip(x, y, strict=True)]
    best = max(range(len(ks)), key=lambda i: gaps[i])
    return int(ks[best]) if gaps[best] > 1e-12 else None


def _check_k_range(k_range: Any, n_samples: int) -> list[int]:
    try:
        ks = list(k_range)
    except TypeError:
        msg = f"k_range must be an iterable of integers such as range(1, 11), got {k_range!r}."
        raise TypeError(msg) from None
    if not ks:
        msg = f"k_range must hold at least one K, got {k_range!r}."
        raise ValueError(msg)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            msg = f"k_range must hold integers, got {k!r} in {k_range!r}."
            raise TypeError(msg)
    ks = [int(k) for k in ks]
    if any(b <= a for a, b in itertools.pairwise(ks)):
        msg = f"k_range must be strictly increasing, got {ks}."
        raise ValueError(msg)
    if ks[0] < 1 or ks[-1] > n_samples:
        msg = f"k_range must lie within 1..n_samples={n_samples}, got {ks[0]}..{ks[-1]}."
        raise ValueError(msg)
    return ks


def elbow(
    X: Any,
    k_range: Iterable[int] = range(1, 11),
    *,
    silhouette: bool = False,
    silhouette_sample_size: int | None = None,
    sample_weight: Any = None,
    verbose: bool = False,
    **kmeans_options: Any,
) -> ElbowResult:
    """Fit K-Means for each K in ``k_range`` and suggest one at the knee of the inertia curve.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy, CuPy, PyTorch or array-api-strict; every fit runs on X's device. A Dask array or
        DataFrame is fitted on its cluster for each K (pass ``init="k-means||"``, ``"random"``
        or centers, as for ``KMeans.fit``); its silhouettes need ``silhouette_sample_size``
        (those rows are read into memory once).
    k_range : iterable of int, default range(1, 11)
        Strictly increasing numbers of clusters, each between 1 and n_samples.
    silhouette : bool, default False
        Also compute the mean silhouette coefficient of each fit (O(n²·d) per K; see
        ``silhouette_sample_size``).
    silhouette_sample_size : int, optional
        Score the silhouette on this many randomly chosen rows (the same rows for every K).
    sample_weight : array of shape (n_samples,), optional
        Passed to every fit.
    verbose : bool, default False
        Print one line per K as it finishes (K, inertia, seconds).
    **kmeans_options
        Parameters of :class:`KMeans` (``init``, ``n_init``, ``max_iter``, ``tol``,
        ``random_state``, ...), the same for every K.

    Returns
    -------
    ElbowResult
        ``ks``, ``inertias``, ``fit_times``, ``n_iters``, ``suggested_k`` and, if asked,
        ``silhouettes``.

    Examples
    --------
    >>> from kmeans_xp import elbow
    >>> from kmeans_xp._tools.demo import tutorial_blobs
    >>> elbow(tutorial_blobs(), range(1, 10), random_state=0).suggested_k
    3
    """
    return elbow_curve(
        X,
        k_range,
        silhouette=silhouette,
        silhouette_sample_size=silhouette_sample_size,
        sample_weight=sample_weight,
        verbose=verbose,
        kmeans_options=kmeans_options,
    )


def elbow_curve(
    X: Any,
    k_range: Iterable[int],
    *,
    silhouette: bool,
    silhouette_sample_size: int | None,
    sample_weight: Any,
    verbose: bool,
    kmeans_options: dict[str, Any],
    on_k: Callable[[int, int], None] | None = None,
) -> ElbowResult:
    """:func:`elbow`, with a hook ``on_k(index, k)`` called before each fit (progress bars)."""
    on_dask = is_dask_collection(X)
    if on_dask:  # each fit validates X; a DataFrame's row counts are computed once, here
        X = as_dask_array(X)
        check_known_rows(X)
        if silhouette and silhouette_sample_size is None:
            msg = (
                "silhouette=True on a Dask array needs silhouette_sample_size: the silhouette "
                "of all n rows costs O(n²); it is scored on that many rows, read into memory."
            )
            raise ValueError(msg)
    else:
        X, _, _ = check_data(X, "X")
    n_samples = X.shape[0]
    ks = _check_k_range(k_range, n_samples)
    for name in ("n_clusters", "verbose"):
        if name in kmeans_options:
            msg = f"elbow() chooses {name} itself; do not pass {name}={kmeans_options[name]!r}."
            raise TypeError(msg)
    unknown = set(kmeans_options) - set(KMeans().get_params())
    if unknown:
        msg = f"Unknown KMeans option(s) for elbow(): {sorted(unknown)}."
        raise TypeError(msg)
    # One fixed seed for the silhouette subsample: every K is scored on the same rows.
    silhouette_seed = 0
    sample_rows = sample = None
    if on_dask and silhouette:  # the rows silhouette_score would draw, read once
        sample_rows = subsample_rows(n_samples, silhouette_sample_size, silhouette_seed)
        sample = to_numpy(X[sample_rows].compute())
    inertias, times, n_iters, scores = [], [], [], []
    for index, k in enumerate(ks):
        if on_k is not None:
            on_k(index, k)
        model = KMeans(n_clusters=k, **kmeans_options)
        start = time.perf_counter()
        model.fit(X, sample_weight=sample_weight)
        times.append(time.perf_counter() - start)
        inertias.append(float(model.inertia_))
        n_iters.append(int(model.n_iter_))
        line = f"K={k}: inertia {model.inertia_:.6g}, {times[-1]:.3f} s"
        if silhouette:
            if 2 <= k <= n_samples - 1 and sample is not None:
                score = silhouette_score(sample, to_numpy(model.labels_[sample_rows].compute()))
            elif 2 <= k <= n_samples - 1:
                size = silhouette_sample_size
                score = silhouette_score(
                    X, model.labels_, sample_size=size, random_state=silhouette_seed
                )
            else:
                score = math.nan
            scores.append(score)
            line += f", silhouette {score:.4f}"
        if verbose:
            print(f"{line}  ({index + 1} of {len(ks)})")
    return ElbowResult(
        ks=ks,
        inertias=inertias,
        fit_times=times,
        n_iters=n_iters,
        suggested_k=knee_point(ks, inertias),
        silhouettes=scores if silhouette else None,
    )
