"""Cluster-quality scores, written once against the array API standard.

``silhouette_samples``, ``silhouette_score``, ``calinski_harabasz_score`` and
``davies_bouldin_score`` take X of any supported library and compute on X's device. They follow
scikit-learn's definitions (``sklearn.metrics``) and agree with it to rounding on NumPy input.

Memory: the silhouette needs every pairwise distance, so it walks X in row blocks and holds one
block's distances to all n points (block × n) plus its per-cluster sums (block × k); nothing
n×n exists. The other two scores make one pass over X per needed quantity, O(k·d) memory.
All distances and sums are formed in float64 where the device has it, on data centered by its
column mean (which keeps the GEMM form of the distance accurate far from the origin).
"""

from __future__ import annotations

import numbers
from types import ModuleType
from typing import Any

import numpy as np

from .._backends import segment_sum_for
from .._core.passes import column_mean_and_variance
from .._core.primitives import (
    squared_norms,
)
from .._lib.budget import (
    DEVICE_BLOCK_BYTES_MAX,
    DEVICE_BLOCK_FRACTION,
    block_rows_for,
    row_blocks,
)
from .._lib.compat import Array, accumulation_dtype, free_device_memory
from .._lib.validation import check_data, check_labels, check_random_state, check_values

__all__ = [
    "calinski_harabasz_score",
    "davies_bouldin_score",
    "silhouette_samples",
    "silhouette_score",
]

# Host budget for one silhouette block's distances (block × n float64) and sums (block × k).
_HOST_SILHOUETTE_BYTES = 64 * 2**20


class _Scored:
    """Validated X (centered, accumulation dtype on demand) and integer-coded labels."""

    def __init__(self, X: Any, labels: Any) -> None:
        X, xp, device = check_data(X, "X")
        n_samples = X.shape[0]
        self.block_rows = block_rows_for(n_samples, X.shape[1], 1, 8, xp=xp, device=device)
        check_values(X, "X", xp=xp, block_rows=self.block_rows)
        codes, n_labels = check_labels(labels, n_samples)
        if not 2 <= n_labels <= n_samples - 1:
            msg = (
                f"Number of labels is {n_labels}. Valid values are 2 to n_samples - 1 "
                f"(inclusive), here 2 to {n_samples - 1}."
            )
            raise ValueError(msg)
        self.X, self.xp, self.device = X, xp, device
        self.acc = accumulation_dtype(xp, device)
        self.codes = xp.asarray(codes, device=device)
        self.n_labels = n_labels
        mean, _ = column_mean_and_variance(X, xp=xp, block_rows=self.block_rows)
        self.mean = mean  # accumulation dtype

    def block(self, start: int, stop: int) -> Array:
        """Rows [start, stop) of X, centered, in the accumulation dtype."""
        return self.xp.astype(self.X[start:stop, :], self.acc) - self.mean

    def centroids(self) -> tuple[Array, Array]:
        """Per-cluster means (centered coordinates) and sizes, accumulation dtype."""
        xp = self.xp
        segment_sum = segment_sum_for(xp)
        ones = xp.ones((self.X.shape[0],), dtype=self.acc, device=self.device)
        sums = counts = None
        for start, stop in row_blocks(self.X.shape[0], self.block_rows):
            s, c = segment_sum(
                self.block(start, stop),
                self.codes[start:stop],
                ones[start:stop],
                self.n_labels,
                xp=xp,
            )
            sums, counts = (s, c) if sums is None else (sums + s, counts + c)
        return sums / counts[:, None], counts


def _pairwise_distances(A: Array, B: Array, *, xp: ModuleType) -> Array:
    """Euclidean distances between rows of A and B (GEMM form, clipped at 0)."""
    sq = squared_norms(A, xp=xp)[:, None] - 2.0 * (A @ B.T) + squared_norms(B, xp=xp)[None, :]
    return xp.sqrt(xp.clip(sq, min=0.0))


# --------------------------------------------------------------------------------------------
# Silhouette
# --------------------------------------------------------------------------------------------


def _silhouette_block_rows(n_samples: int, n_labels: int, xp: ModuleType, device: Any) -> int:
    free = free_device_memory(xp, device)
    budget = _HOST_SILHOUETTE_BYTES
    if free is not None:  # a GPU: the same share of free memory as the Lloyd blocks get
        budget = min(max(free // DEVICE_BLOCK_FRACTION, budget), DEVICE_BLOCK_BYTES_MAX)
    # Per row: its n distances (and a temporary of the same size), its k cluster sums (twice).
    row_bytes = 8 * (2 * n_samples + 2 * n_labels + 8)
    return int(max(1, min(n_samples, budget // row_bytes)))


def _check_metric(metric: Any) -> None:
    """Only scikit-learn's default: K-Means' clusters are Euclidean, and so are these scores."""
    if not (isinstance(metric, str) and metric == "euclidean"):
        msg = (
            f"metric must be 'euclidean' (K-Means clusters by Euclidean distance; "
            f"sklearn.metrics computes silhouettes for other metrics), got metric={metric!r}."
        )
        raise ValueError(msg)


def silhouette_samples(X: Any, labels: Any, *, metric: str = "euclidean") -> Array:
    """Silhouette coefficient of each sample.

    For sample i in cluster A, with a(i) the mean distance to the other members of A and b(i) the
    smallest mean distance to the members of another cluster, s(i) = (b − a) / max(a, b); s(i) is
    0 for the only member of a cluster. Distances are Euclidean.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NumPy, CuPy, PyTorch or array-api-strict array (others are converted with NumPy).
    labels : array-like of shape (n_samples,)
        Cluster of each sample: any values (ints, strings), NumPy or X's library; between 2 and
        n_samples − 1 distinct values.
    metric : {"euclidean"}
        Accepted for scikit-learn's signature; Euclidean is the only distance.

    Returns
    -------
    array of shape (n_samples,)
        In X's library, on X's device, in float64 where the device has it.

    Notes
    -----
    Runs in row blocks of X: memory is O(block · n), time O(n² · d). For large n use
    ``silhouette_score(..., sample_size=...)``.
    """
    _check_metric(metric)
    data = _Scored(X, labels)
    return _silhouette_samples(data)


def _silhouette_samples(data: _Scored) -> Array:
    xp, device, acc = data.xp, data.device, data.acc
    n_samples, k = data.X.shape[0], data.n_labels
    segment_sum = segment_sum_for(xp)
    ones = xp.ones((n_samples,), dtype=acc, device=device)
    _, counts = segment_sum(ones[:, None], data.codes, ones, k, xp=xp)
    counts = xp.astype(counts, acc)
    centered = data.block(0, n_samples)  # centered copy in float64; O(n·d) like X itself
    all_sq = squared_norms(centered, xp=xp)
    rows = _silhouette_block_rows(n_samples, k, xp, device)
    columns = xp.arange(n_samples, device=device)
    inf = xp.asarray(float("inf"), dtype=acc, device=device)
    out = []
    for start, stop in row_blocks(n_samples, rows):
        A = centered[start:stop, :]
        sq = squared_norms(A, xp=xp)[:, None] - 2.0 * (A @ centered.T) + all_sq[None, :]
        # A point's distance to itself is exactly 0 (the GEMM form leaves rounding residue).
        own = xp.arange(start, stop, device=device)[:, None] == columns[None, :]
        dist = xp.where(own, xp.zeros_like(sq), xp.sqrt(xp.clip(sq, min=0.0)))
        # (k, block) sums of distances to each cluster: a segment sum over the n columns.
        sums, _ = segment_sum(dist.T, data.codes, ones, k, xp=xp)
        sums = sums.T  # (block, k)
        block_codes = data.codes[start:stop]
        in_own = block_codes[:, None] == xp.arange(k, device=device)[None, :]
        own_count = xp.take(counts, block_codes, axis=0)
        own_sum = xp.sum(xp.where(in_own, sums, xp.zeros_like(sums)), axis=1)
        singleton = own_count <= 1
        a = own_sum / xp.where(singleton, xp.ones_like(own_count), own_count - 1)
        b = xp.min(xp.where(in_own, inf, sums / counts[None, :]), axis=1)
        denominator = xp.maximum(a, b)
        ok = (denominator > 0) & ~singleton
        s = (b - a) / xp.where(ok, denominator, xp.ones_like(denominator))
        out.append(xp.where(ok, s, xp.zeros_like(s)))
    return xp.concat(out)


def silhouette_score(
    X: Any,
    labels: Any,
    *,
    metric: str = "euclidean",
    sample_size: int | None = None,
    random_state: Any = None,
) -> float:
    """Mean silhouette coefficient of all samples (or of a random subsample).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    metric : {"euclidean"}
        Accepted for scikit-learn's signature; Euclidean is the only distance.
    sample_size : int, optional
        Score a random subsample of this many rows (drawn without replacement) instead of all;
        the cost falls from O(n²·d) to O(sample_size²·d). At least 2; more than n_samples
        means all rows.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Chooses the subsample. An int seed picks the same rows as scikit-learn's
        ``silhouette_score`` with that seed.

    Returns
    -------
    float
        Between −1 (wrong clusters) and 1 (dense, well-separated clusters).

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp import silhouette_score
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> round(silhouette_score(X, [0, 0, 1, 1]), 6)
    0.899749
    """
    _check_metric(metric)
    if sample_size is not None:
        X, xp, device = check_data(X, "X")
        codes, _ = check_labels(labels, X.shape[0])
        rows = subsample_rows(X.shape[0], sample_size, random_state)
        X = xp.take(X, xp.asarray(rows, device=device), axis=0)
        labels = codes[rows]
    data = _Scored(X, labels)
    return float(data.xp.mean(_silhouette_samples(data)))


def subsample_rows(n_samples: int, sample_size: Any, random_state: Any) -> np.ndarray:
    """Sorted indices of ``min(sample_size, n_samples)`` rows drawn without replacement.

    An int seed draws from a ``RandomState``, as scikit-learn does, so a seed picks the same rows
    as scikit-learn's ``silhouette_score``; a ``sample_size`` beyond n_samples takes every row
    (as there).
    """
    if isinstance(sample_size, bool) or not isinstance(sample_size, numbers.Integral):
        msg = f"sample_size must be None or an integer, got {sample_size!r}."
        raise TypeError(msg)
    if sample_size < 2:
        msg = f"sample_size must be >= 2 (a silhouette needs two points), got {sample_size!r}."
        raise ValueError(msg)
    rng = check_random_state(random_state)  # validates, and the usual message for a bad seed
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        rng = np.random.RandomState(int(random_state))
    return np.sort(rng.permutation(n_samples)[:sample_size])


# --------------------------------------------------------------------------------------------
# Calinski-Harabasz and Davies-Bouldin
# --------------------------------------------------------------------------------------------


def calinski_harabasz_score(X: Any, labels: Any) -> float:
    """Calinski-Harabasz index: between-cluster over within-cluster dispersion (higher is better).

    score = [Σ_k n_k ‖c_k − m‖² / (k − 1)] / [Σ_i ‖x_i − c_(label i)‖² / (n − k)], and 1.0 when
    every point sits on its centroid (as scikit-learn).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)

    Returns
    -------
    float
    """
    data = _Scored(X, labels)
    xp = data.xp
    centroids, counts = data.centroids()  # centered: the overall mean m is the origin
    between = float(xp.sum(counts * squared_norms(centroids, xp=xp)))
    within = 0.0
    for start, stop in row_blocks(data.X.shape[0], data.block_rows):
        diff = data.block(start, stop) - xp.take(centroids, data.codes[start:stop], axis=0)
        within += float(xp.sum(diff * diff))
    n_samples, k = data.X.shape[0], data.n_labels
    if within == 0.0:
        return 1.0
    return between * (n_samples - k) / (within * (k - 1))


def davies_bouldin_score(X: Any, labels: Any) -> float:
    """Davies-Bouldin index: mean over clusters of the worst similarity ratio (lower is better).

    With s_i the mean distance of cluster i's points to its centroid and d_ij the distance
    between centroids, score = mean_i max_(j≠i) (s_i + s_j) / d_ij; 0.0 when all s_i or all d_ij
    are 0 (as scikit-learn).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)

    Returns
    -------
    float
    """
    data = _Scored(X, labels)
    xp, acc, k = data.xp, data.acc, data.n_labels
    centroids, counts = data.centroids()
    segment_sum = segment_sum_for(xp)
    spread = None
    for start, stop in row_blocks(data.X.shape[0], data.block_rows):
        codes = data.codes[start:stop]
        diff = data.block(start, stop) - xp.take(centroids, codes, axis=0)
        distance = xp.sqrt(xp.sum(diff * diff, axis=1))
        s, _ = segment_sum(distance[:, None], codes, xp.ones_like(distance), k, xp=xp)
        spread = s[:, 0] if spread is None else spread + s[:, 0]
    spread = spread / counts
    between = _pairwise_distances(centroids, centroids, xp=xp)
    # A centroid's distance to itself is exactly 0 (the GEMM form leaves rounding residue).
    diagonal = xp.arange(k, device=data.device)
    between = xp.where(diagonal[:, None] == diagonal[None, :], xp.zeros_like(between), between)
    # scikit-learn's np.allclose(..., 0): every value within 1e-8 of zero.
    if float(xp.max(xp.abs(spread))) <= 1e-8 or float(xp.max(xp.abs(between))) <= 1e-8:
        return 0.0
    inf = xp.asarray(float("inf"), dtype=acc, device=data.device)
    between = xp.where(between == 0, inf, between)
    ratios = (spread[:, None] + spread[None, :]) / between
    return float(xp.mean(xp.max(ratios, axis=1)))
