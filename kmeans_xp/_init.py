"""Initial centers: k-means++ (greedy, weighted) and random choice, written once.

Random numbers are drawn on the host from a NumPy generator and moved to the device in one
transfer; the sampling itself (cumulative sums and searchsorted) runs on the device, so k-means++
makes no host round trip per center and the same seed picks the same points on every backend.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

from ._array_api import Array, accumulation_dtype, array_device, to_numpy
from ._primitives import row_blocks, squared_norms
from ._validation import RandomState


def default_local_trials(n_clusters: int) -> int:
    """2 + ⌊ln k⌋ candidates per step, the choice of Arthur & Vassilvitskii and scikit-learn."""
    return 2 + int(math.log(n_clusters))


def _sample_by_cumulative(cumulative: Array, uniforms: Array, *, xp: ModuleType) -> Array:
    """Indices drawn with probability proportional to the increments of ``cumulative``.

    ``side="right"`` never returns an index whose increment is zero (a point of weight or
    distance zero) unless every increment is zero.
    """
    n = cumulative.shape[0]
    targets = uniforms * cumulative[-1]
    indices = xp.searchsorted(cumulative, targets, side="right")
    return xp.clip(indices, max=n - 1)


def _sq_distances(X_block: Array, x_sq_norms: Array, centers: Array, *, xp: ModuleType) -> Array:
    """Squared distances, (m, c), of centered rows to centered centers, clipped at 0."""
    c_sq = squared_norms(centers, xp=xp)
    sq = x_sq_norms[:, None] - 2.0 * (X_block @ centers.T) + c_sq[None, :]
    return xp.clip(sq, min=0.0)


def kmeans_plusplus_indices(
    X: Array,
    n_clusters: int,
    weights: Array,
    rng: RandomState,
    *,
    offset: Array,
    n_local_trials: int,
    block_rows: int,
    xp: ModuleType,
) -> Array:
    """Indices (on X's device) of the rows that greedy weighted k-means++ picks as centers.

    Prior validation of the data is assumed. Each step draws ``n_local_trials`` candidates with
    probability ∝ w·D(x)² and keeps the one that lowers the potential Σ w·D(x)² the most.
    Distances are computed on row blocks of X, centered by ``offset``, one pass over X per
    center; memory is O(n · n_local_trials) in X's dtype plus one block.
    """
    n_samples = X.shape[0]
    device = array_device(X)
    acc = accumulation_dtype(xp, device)
    blocks = list(row_blocks(n_samples, block_rows))

    def centered(start: int, stop: int) -> Array:
        return X[start:stop, :] - offset

    x_sq = xp.concat([squared_norms(centered(a, b), xp=xp) for a, b in blocks])
    w = xp.astype(weights, acc)

    # All random numbers at once, in one host->device copy.
    uniforms_host = rng.uniform(size=1 + (n_clusters - 1) * n_local_trials)
    uniforms = xp.asarray(uniforms_host, dtype=acc, device=device)

    def distances_to(centers: Array) -> Array:
        """(n, c) squared distances from every row to the given (centered) centers."""
        return xp.concat(
            [
                xp.astype(_sq_distances(centered(a, b), x_sq[a:b], centers, xp=xp), acc)
                for a, b in blocks
            ]
        )

    trial_sq = xp.empty((n_samples, n_local_trials), dtype=X.dtype, device=device)
    first = _sample_by_cumulative(xp.cumulative_sum(w), uniforms[:1], xp=xp)
    chosen = [first]
    closest = distances_to(xp.take(X, first, axis=0) - offset)[:, 0]

    for step in range(1, n_clusters):
        lo = 1 + (step - 1) * n_local_trials
        candidates = _sample_by_cumulative(
            xp.cumulative_sum(w * closest), uniforms[lo : lo + n_local_trials], xp=xp
        )
        candidate_centers = xp.take(X, candidates, axis=0) - offset
        # Potential of each candidate, summed block by block. The (n, trials) distances are
        # kept, in X's dtype, so the winner's column updates `closest` without a second pass
        # over X (passes over X are what k-means++ spends its time on).
        potential = None
        for a, b in blocks:
            trial_sq[a:b, :] = _sq_distances(centered(a, b), x_sq[a:b], candidate_centers, xp=xp)
            d_block = xp.minimum(closest[a:b, None], xp.astype(trial_sq[a:b, :], acc))
            part = xp.sum(w[a:b, None] * d_block, axis=0)
            potential = part if potential is None else potential + part
        best = xp.reshape(xp.argmin(potential), (1,))
        chosen.append(xp.take(candidates, best, axis=0))
        closest = xp.minimum(closest, xp.astype(xp.take(trial_sq, best, axis=1)[:, 0], acc))

    return xp.concat(chosen)


def random_indices(
    n_samples: int, n_clusters: int, weights: Array, rng: RandomState, *, uniform_weights: bool
) -> np.ndarray:
    """Host indices of ``n_clusters`` distinct rows, chosen with probability ∝ weight."""
    if uniform_weights:
        return rng.permutation(n_samples)[:n_clusters]
    p = to_numpy(weights).astype(np.float64)
    n_positive = int(np.count_nonzero(p))
    if n_positive < n_clusters:
        # Too few weighted points to choose distinct ones; take all of them, then any others.
        order = np.argsort(-p, kind="stable")
        return order[:n_clusters]
    return rng.choice(n_samples, size=n_clusters, replace=False, p=p / p.sum())
