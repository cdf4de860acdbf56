"""Brute-force float64 references and test data, shared by the tests."""

from __future__ import annotations

import numpy as np


def sq_distances64(X, C) -> np.ndarray:
    """(n, k) squared distances in float64, by explicit differences (no GEMM shortcut)."""
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    return ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)


def nearest64(X, C) -> np.ndarray:
    return np.argmin(sq_distances64(X, C), axis=1)


def inertia64(X, C, labels, weights=None) -> float:
    d = sq_distances64(X, C)[np.arange(len(labels)), labels]
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    return float(np.sum(w * d))


def assert_labels_are_argmin(X, C, labels, *, rel_tie=1e-5) -> None:
    """Each label is the float64 argmin, or a genuine near-tie with it."""
    d = sq_distances64(X, C)
    labels = np.asarray(labels)
    chosen = d[np.arange(len(labels)), labels]
    best = d.min(axis=1)
    slack = rel_tie * np.maximum(best, 1e-12 * d.max())
    bad = np.flatnonzero(chosen > best + slack)
    assert bad.size == 0, (
        f"labels not the argmin at rows {bad[:10]}: {chosen[bad[:3]]} > {best[bad[:3]]}"
    )


def blobs(n_per_cluster: int, centers, sd: float = 1.0, seed: int = 0, dtype=np.float64):
    """Gaussian blobs around the given centers; returns X and the true group of each row."""
    rng = np.random.default_rng(seed)
    centers = np.asarray(centers, dtype=np.float64)
    X = np.concatenate([rng.normal(c, sd, (n_per_cluster, centers.shape[1])) for c in centers])
    y = np.repeat(np.arange(len(centers)), n_per_cluster)
    return X.astype(dtype), y


def same_partition(a, b) -> bool:
    """True if two labelings define the same groups (up to renaming the clusters)."""
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def near_ties(n: int = 4000, d: int = 16, k: int = 8, radius: float = 100.0, seed: int = 0):
    """float32 rows almost on the bisector of two of k centers of norm ``radius``.

    The two distances differ by about 2·t·|c_a − c_b| with |t| < 1e-4: far below float32's
    rounding of ‖c‖² − 2·x·c (about 1e-7·radius²), far above float64's.
    """
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(k, d))
    C *= radius / np.linalg.norm(C, axis=1, keepdims=True)
    a = rng.integers(0, k, size=n)
    b = (a + rng.integers(1, k, size=n)) % k
    direction = C[b] - C[a]
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    t = rng.uniform(-1e-4, 1e-4, size=(n, 1))
    X = (C[a] + C[b]) / 2 + t * direction
    return X.astype(np.float32), C.astype(np.float32)
