"""The two hot primitives of Lloyd's algorithm, in standard-only form, and how X is walked.

``assign_block`` finds the nearest center of each row of a block of X; ``segment_sum`` adds the
(weighted) rows of each cluster. Both work on one block of rows at a time, so the caller controls
how much memory a step may use: no n×k array exists unless one block spans all of X, and nothing is
ever n×k×d.

``segment_sum`` has faster library-specific versions in ``_backends``; this standard-only one is
their reference and the path for any other array-API library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .._lib.compat import Array, accumulation_dtype, array_device

# centers -> (X_block -> (labels, partial squared distances)); see ``_backends.assign_for``.
AssignFactory = Callable[[Array], Callable[[Array], tuple[Array, Array]]]


def squared_norms(A: Array, *, xp: ModuleType) -> Array:
    """Row-wise squared Euclidean norms, in A's dtype."""
    return xp.sum(A * A, axis=1)


def assign_block(
    X_block: Array, centers: Array, center_sq_norms: Array, *, xp: ModuleType
) -> tuple[Array, Array]:
    """Nearest center of each row, by the GEMM form of the squared distance.

    ‖x − c‖² = ‖x‖² − 2·x·c + ‖c‖², and ‖x‖² does not change the argmin, so only
    x·(−2c) + ‖c‖² is formed: one GEMM (the factor −2 is folded into the k×d centers, exactly,
    being a power of two) and one pass over the block's k columns.

    Parameters
    ----------
    X_block : array of shape (m, d)
    centers : array of shape (k, d), same dtype
    center_sq_norms : array of shape (k,), ``squared_norms(centers)``

    Returns
    -------
    labels : int array of shape (m,)
    partial_sq_dist : array of shape (m,)
        ‖c_label‖² − 2·x·c_label; add ‖x‖² (and clip at 0) for the squared distance.
    """
    m, k = X_block.shape[0], centers.shape[0]
    scores = X_block @ (-2.0 * centers).T + center_sq_norms[None, :]
    labels = xp.argmin(scores, axis=1)
    # Gather the winning score instead of a second reduction over k (min along a short last
    # axis is several times slower than argmin in NumPy).
    rows = xp.arange(m, dtype=labels.dtype, device=array_device(labels))
    partial = xp.take(xp.reshape(scores, (-1,)), rows * k + labels, axis=0)
    return labels, partial


class PlainAssign:
    """``assign_block`` bound to one set of centers (their norms computed once per pass)."""

    def __init__(self, centers: Array, *, xp: ModuleType) -> None:
        self.centers, self.xp = centers, xp
        self.c_sq = squared_norms(centers, xp=xp)

    def __call__(self, X_block: Array) -> tuple[Array, Array]:
        return assign_block(X_block, self.centers, self.c_sq, xp=self.xp)


def segment_sum(
    X_block: Array, labels: Array, weights: Array, n_clusters: int, *, xp: ModuleType
) -> tuple[Array, Array]:
    """Per-cluster weighted sums of rows and of weights, accumulated in float64 where available.

    Standard-only version: a one-hot matrix times the weighted rows (a GEMM of the block's size).

    Parameters
    ----------
    X_block : array of shape (m, d)
    labels : int array of shape (m,), values in ``[0, n_clusters)``
    weights : array of shape (m,)
    n_clusters : int

    Returns
    -------
    sums : array of shape (n_clusters, d), accumulation dtype
    counts : array of shape (n_clusters,), accumulation dtype (sum of weights)
    """
    device = array_device(X_block)
    acc = accumulation_dtype(xp, device)
    one_hot = xp.astype(labels[:, None] == xp.arange(n_clusters, device=device)[None, :], acc)
    w = xp.astype(weights, acc)
    sums = one_hot.T @ (xp.astype(X_block, acc) * w[:, None])
    counts = one_hot.T @ w
    return sums, counts


@dataclass
class PassBuffers:
    """A pass's labels and partial distances, given to the next pass to overwrite.

    The next pass counts, block by block on the device, the labels it changes (``n_changed``,
    set when it ends), so a fit holds one labels array and one partials array, not the previous
    pass's beside the new one's: 8 bytes per row less on a GPU (4 + 4), more where labels are
    int64.
    """

    labels: Array
    partial: Array
    n_changed: Any = None
