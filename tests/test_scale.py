"""Scale (issue 6): data on disk through numpy.memmap are read in blocks, never copied whole."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

from kmeans_xp import ConvergenceWarning, KMeans


@pytest.fixture
def memmap_blobs(tmp_path):
    """A float32 memmap of 100 000 × 64 (25.6 MB) holding 16 blobs, and its labels' means."""
    rng = np.random.default_rng(0)
    n, d, k = 100_000, 64, 16
    X = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32, shape=(n, d))
    means = rng.normal(scale=5.0, size=(k, d)).astype(np.float32)
    for start in range(0, n, 10_000):
        rows = rng.integers(0, k, size=10_000)
        X[start : start + 10_000] = rng.standard_normal((10_000, d), dtype=np.float32) + means[rows]
    X.flush()
    del X
    return np.load(tmp_path / "X.npy", mmap_mode="r"), k


@pytest.mark.parametrize("init", ["k-means++", "k-means||", "random"])
@pytest.mark.parametrize("algorithm", ["lloyd", "hamerly"])
def test_memmap_fit_allocates_no_copy_of_x(memmap_blobs, init, algorithm):
    """A whole-array astype, norm, centering or float64 copy would allocate ≥ 100 % of X (the
    mapped file's pages are not allocations, so tracemalloc sees only what the fit makes)."""
    X, k = memmap_blobs
    assert isinstance(X, np.memmap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # Warm up on a sliver first: modules imported on first use (scipy.sparse, threadpoolctl)
        # would otherwise count as the fit's memory.
        KMeans(k, init=init, algorithm=algorithm, max_iter=2, random_state=0).fit(X[:2000])
        tracemalloc.start()
        try:
            km = KMeans(k, init=init, algorithm=algorithm, max_iter=5, random_state=0).fit(X)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 0.5 * X.nbytes, f"peak {peak / 2**20:.1f} MiB for X of {X.nbytes / 2**20:.1f} MiB"
    assert km.cluster_centers_.dtype == np.float32
    assert km.labels_.shape == (X.shape[0],)
    # The same fit as from the array in memory.
    in_memory = KMeans(k, init=init, algorithm=algorithm, max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        in_memory.fit(np.asarray(X).copy())
    np.testing.assert_array_equal(km.cluster_centers_, in_memory.cluster_centers_)
