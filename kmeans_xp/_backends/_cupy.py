"""CuPy versions of the primitives."""

from __future__ import annotations

from types import ModuleType

import cupy


def segment_sum(
    X_block: cupy.ndarray,
    labels: cupy.ndarray,
    weights: cupy.ndarray,
    n_clusters: int,
    *,
    xp: ModuleType,
) -> tuple[cupy.ndarray, cupy.ndarray]:
    """``_primitives.segment_sum`` by ``cupy.add.at`` (float64 atomic adds) on the device.

    Atomics make the order of additions, and so the last bit of a sum, vary from run to run.
    """
    d = X_block.shape[1]
    with X_block.device:  # allocate on the block's GPU, not the current one
        sums = cupy.zeros((n_clusters, d), dtype=cupy.float64)
        counts = cupy.zeros((n_clusters,), dtype=cupy.float64)
        w = weights.astype(cupy.float64)
        cupy.add.at(sums, labels, X_block.astype(cupy.float64) * w[:, None])
        cupy.add.at(counts, labels, w)
    return sums, counts
