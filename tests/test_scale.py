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


def _mapped_kb(path):
    """Resident kB of this process's mappings of ``path`` (from /proc/self/smaps), or None."""
    try:
        with open("/proc/self/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    total, inside = 0, False
    for line in lines:
        if line[:1] in "0123456789abcdef":  # a mapping's header line: address range first
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_gathers_from_a_memmap_release_pages_between_chunks(memmap_blobs, monkeypatch):
    """Rows gathered by index map ~64 KiB of the file each (fault-around): a gather of many is
    split so that a release comes after each ``RELEASE_EVERY_BYTES`` of such pages, and returns
    the same rows as one ``take``. (k-means|| gathered 178 rows, 11 MB, at once before.)"""
    import kmeans_xp._lib.memmap as memmap_module

    X, _ = memmap_blobs
    releases = []
    monkeypatch.setattr(memmap_module._Residency, "release", lambda self: releases.append(1))
    monkeypatch.setattr(memmap_module, "RELEASE_EVERY_BYTES", 3 * memmap_module.FAULT_AROUND_BYTES)
    rows = np.random.default_rng(0).choice(X.shape[0], size=10, replace=False)
    with memmap_module.bounded_residency(X):
        gathered = memmap_module.gather_rows(X, rows, np)
        assert len(releases) == 3  # after rows 3, 6 and 9; the tenth waits for more reads
    np.testing.assert_array_equal(gathered, np.asarray(X)[rows])
    assert len(releases) == 4  # and the one at the end of the fit
    # Without a bounded memmap: a plain take, nothing released.
    np.testing.assert_array_equal(memmap_module.gather_rows(X, rows, np), np.asarray(X)[rows])
    assert len(releases) == 4


@pytest.mark.skipif(_mapped_kb("") is None, reason="needs Linux /proc/self/smaps")
@pytest.mark.parametrize("init", ["k-means++", "k-means||", "random"])
def test_memmap_pages_are_released_as_the_fit_reads_them(memmap_blobs, monkeypatch, init):
    """The mapped file's resident pages stay a small part of X (a pass over a file larger than
    RAM would otherwise fill RAM with them); without the release they reach the whole file."""
    import mmap
    import threading
    import time

    import kmeans_xp._lib.memmap as memmap_module

    X, k = memmap_blobs
    path = X.filename

    def peak_file_pages(release_every):
        monkeypatch.setattr(memmap_module, "RELEASE_EVERY_BYTES", release_every)
        memmap_module._mapping_of(X).madvise(mmap.MADV_DONTNEED)
        peak, done = [0], threading.Event()

        def poll():
            while not done.is_set():
                peak[0] = max(peak[0], _mapped_kb(path))
                time.sleep(0.001)

        watcher = threading.Thread(target=poll)
        watcher.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                KMeans(k, init=init, max_iter=3, random_state=0).fit(X)
            # One reading after the fit too: on a busy machine the watcher may not have run
            # while the pages were resident (unreleased pages still are now).
            peak[0] = max(peak[0], _mapped_kb(path))
        finally:
            done.set()
            watcher.join()
        return peak[0] * 1024

    assert peak_file_pages(2**20) < 0.25 * X.nbytes
    assert peak_file_pages(2**62) > 0.75 * X.nbytes  # so the check above can fail
