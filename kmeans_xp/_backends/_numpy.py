"""NumPy versions of the primitives."""

from __future__ import annotations

from types import ModuleType

import numpy as np


def segment_sum(
    X_block: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    n_clusters: int,
    *,
    xp: ModuleType,
) -> tuple[np.ndarray, np.ndarray]:
    """``_primitives.segment_sum`` by ``np.bincount`` over flattened (label, feature) indices.

    bincount accumulates in float64 and, unlike ``np.add.at``, runs one tight loop over the
    block (measured on 1M x 64 -> 256: 387 ms against 414 ms for add.at and 665 ms for a dense
    one-hot GEMM, see DESIGN.md).
    """
    d = X_block.shape[1]
    flat_index = (labels[:, None] * d + np.arange(d)).ravel()
    weighted = X_block * weights[:, None]
    sums = np.bincount(flat_index, weights=weighted.ravel(), minlength=n_clusters * d)
    counts = np.bincount(labels, weights=weights, minlength=n_clusters)
    return sums.reshape(n_clusters, d), counts.astype(np.float64, copy=False)
