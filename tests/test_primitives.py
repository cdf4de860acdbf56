"""The two primitives and the block walk, against brute force and against each other."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from helpers import sq_distances64

from kmeans_xp._algorithms.repair import (
    _REPAIR_CHUNK_ROWS,
    _REPAIR_ROW_BYTES,
    relocate_empty_clusters,
    repair_chunk_rows,
    sums_after_relocation,
)
from kmeans_xp._backends import segment_sum_for
from kmeans_xp._core import primitives as _primitives
from kmeans_xp._core.passes import (
    sum_by_label,
)
from kmeans_xp._lib import budget


def test_cupy_lloyd_passes_size_blocks_by_their_own_bytes(monkeypatch):
    """A CuPy fit's Lloyd passes take as many rows as the device budget holds at
    ``cupy_pass_row_bytes`` a row (several times the standard count's rows); Hamerly's passes,
    and other libraries, keep the fit's blocks."""
    import array_api_compat.numpy as np_namespace

    from kmeans_xp._algorithms import prepare
    from kmeans_xp._algorithms.data import PreparedData
    from kmeans_xp._algorithms.hamerly import hamerly
    from kmeans_xp._algorithms.lloyd import lloyd

    n, d, k = 100_000_000, 64, 1024  # issue 4's memory target
    X = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (n, d), (0, 0))
    prep = PreparedData(X, np_namespace, "cpu", None, 7_000, None, 1.0, X)
    assert prepare.pass_block_rows(prep, k, lloyd) == 7_000  # NumPy: the fit's blocks
    monkeypatch.setattr(prepare, "pass_runs_cupy_kernels", lambda xp, device: True)
    free = 2 * 2**30
    monkeypatch.setattr(budget, "free_device_memory", lambda xp, device: free)
    rows = prepare.pass_block_rows(prep, k, lloyd)
    block_bytes = free // budget.DEVICE_BLOCK_FRACTION
    assert rows == block_bytes // budget.cupy_pass_row_bytes(d, k, 4)
    assert rows > 4 * (block_bytes // budget.block_row_bytes(d, k))
    assert prepare.pass_block_rows(prep, k, hamerly) == 7_000


def test_x_is_centered_once_only_where_cupy_kernels_would_copy_it_per_block(
    use_options, xp, monkeypatch
):
    """``_backends.centered_for_passes``: X − offset where CuPy's kernels run the passes, the
    cuBLAS path would subtract the offset per block and X fits the budget; None where the fused
    small-k·d pass subtracts in its kernel, over budget, on the host, or where other libraries'
    passes run (they subtract per block themselves)."""
    from kmeans_xp import _backends

    X = xp.asarray(np.arange(120, dtype=np.float32).reshape(30, 4))
    offset = xp.asarray(np.full(4, 2.0, dtype=np.float32))
    kwargs = {"xp": xp.xp, "device": xp.device}
    on_cupy_kernels = _backends.pass_runs_cupy_kernels(xp.xp, xp.device)
    if xp.name == "torch_cuda":
        from kmeans_xp._backends import torch_cuda

        assert on_cupy_kernels == (torch_cuda._cupy_backend() is not None)  # CuPy installed?
    else:
        assert on_cupy_kernels == (xp.name == "cupy")
    use_options(small_pass=False)
    if not on_cupy_kernels:
        assert _backends.centered_for_passes(X, offset, 3, budget=10**6, **kwargs) is None
        monkeypatch.setattr(_backends, "pass_runs_cupy_kernels", lambda xp, device: True)
    centered = _backends.centered_for_passes(X, offset, 3, budget=10**6, **kwargs)
    np.testing.assert_array_equal(xp.to_numpy(centered), np.arange(120).reshape(30, 4) - 2.0)
    assert _backends.centered_for_passes(X, offset, 3, budget=479, **kwargs) is None  # 480 B
    assert _backends.centered_for_passes(X, offset, 3, budget=None, **kwargs) is None  # host
    use_options(small_pass=True)
    contiguous = xp.name != "array_api_strict"  # the standard does not say: not assumed
    fused = _backends.centered_for_passes(X, offset, 3, budget=10**6, **kwargs)
    assert (fused is None) == contiguous  # the fused pass takes contiguous X itself


def test_centering_once_is_skipped_when_its_copy_runs_out_of_memory(use_options, monkeypatch):
    """Free memory was measured before the copy: if the copy's allocation fails anyway, the
    passes subtract the offset per block (None), the fit does not die."""
    import array_api_compat.numpy as np_namespace

    from kmeans_xp import _backends

    class OutOfMemoryOnSubtraction:
        shape, dtype = (30, 4), np.float32

        def __sub__(self, other):
            raise MemoryError("out of memory allocating 480 bytes")

    monkeypatch.setattr(_backends, "pass_runs_cupy_kernels", lambda xp, device: True)
    use_options(small_pass=False)
    centered = _backends.centered_for_passes(
        OutOfMemoryOnSubtraction(), np.zeros(4, np.float32), 3, xp=np_namespace, device="cpu",
        budget=10**6,
    )  # fmt: skip
    assert centered is None


def test_relocation_retries_with_smaller_chunks_when_memory_runs_out(xp, monkeypatch):
    """The repair's chunks come from a budget measured before the fit: when one still runs out
    of memory, the repair runs again with half the rows per chunk, to the same result."""
    import kmeans_xp._algorithms.repair as repair_module

    rng = np.random.default_rng(1)
    n, k = 100, 6
    labels = xp.asarray(rng.integers(0, 4, size=n))  # clusters 4 and 5 empty
    sq_dist = xp.asarray(rng.uniform(size=n))
    weights = xp.asarray(np.ones(n))
    counts = xp.asarray(np.bincount(xp.to_numpy(labels), minlength=k).astype(np.float64))
    expected = relocate_empty_clusters(labels, sq_dist, weights, counts, xp=xp.xp, chunk_rows=64)
    original, tried = repair_module.relocate_empty_clusters, []

    def short_of_memory(*args, chunk_rows, **kwargs):
        tried.append(chunk_rows)
        if chunk_rows > 16:
            raise MemoryError(f"out of memory at {chunk_rows} rows")
        return original(*args, chunk_rows=chunk_rows, **kwargs)

    monkeypatch.setattr(repair_module, "relocate_empty_clusters", short_of_memory)
    got = repair_module.relocate_retrying_on_oom(
        labels, sq_dist, weights, counts, xp=xp.xp, device=xp.device, chunk_rows=64
    )
    assert tried == [64, 32, 16]
    np.testing.assert_array_equal(xp.to_numpy(got.labels), xp.to_numpy(expected.labels))
    np.testing.assert_array_equal(xp.to_numpy(got.rows), xp.to_numpy(expected.rows))


def test_c_contiguity_is_read_from_every_library(xp):
    from kmeans_xp._lib.compat import is_c_contiguous

    A = xp.asarray(np.zeros((4, 3), dtype=np.float32))
    if xp.name == "array_api_strict":
        assert not is_c_contiguous(A)  # the standard does not say: treated as not contiguous
    else:
        assert is_c_contiguous(A)
        assert not is_c_contiguous(A.T)


def test_row_blocks_cover_every_row_once():
    for n, b in [(1, 1), (10, 3), (10, 10), (10, 100), (7, 1)]:
        rows = [i for start, stop in budget.row_blocks(n, b) for i in range(start, stop)]
        assert rows == list(range(n))


def test_block_rows_respect_the_budget(xp):
    limit = 1 << 20
    rows = budget.block_rows_for(
        10**6, 64, 256, 4, xp=xp.xp, device=xp.device, max_block_bytes=limit
    )
    assert 1 <= rows < 10**6
    assert rows * 8 * (4 * 256 + 2 * 64) <= limit
    # Never more rows than X has, never fewer than one.
    assert budget.block_rows_for(5, 2, 3, 4, xp=xp.xp, device=xp.device) == 5
    assert budget.block_rows_for(5, 2, 10**9, 4, xp=xp.xp, device=xp.device, max_block_bytes=1) == 1


def test_free_cupy_memory_counts_the_pools_cache_and_its_limit(monkeypatch):
    """CuPy's free memory for the block budgets: the device's free bytes plus what the pool has
    cached, capped by a limit set on the pool (what it may still hand out). Checked with the
    CUDA calls replaced, so it runs without a GPU."""
    cupy = pytest.importorskip("cupy")
    import array_api_compat.cupy as cupy_namespace

    from kmeans_xp._lib.compat import free_device_memory

    class Pool:
        limit = 0

        def free_bytes(self):
            return 300

        def used_bytes(self):
            return 5_000

        def get_limit(self):
            return self.limit

    pool = Pool()
    monkeypatch.setattr(cupy.cuda, "Device", lambda index: contextlib.nullcontext())
    monkeypatch.setattr(cupy.cuda.runtime, "memGetInfo", lambda: (10_000, 80_000))
    monkeypatch.setattr(cupy, "get_default_memory_pool", lambda: pool)
    assert free_device_memory(cupy_namespace, 0) == 10_300
    pool.limit = 8_000  # 3 000 left under the limit
    assert free_device_memory(cupy_namespace, 0) == 3_000
    pool.limit = 4_000  # already past it
    assert free_device_memory(cupy_namespace, 0) == 0


def test_host_blocks_shrink_with_small_data():
    def block_bytes(n, d, k):
        rows = budget.block_rows_for(n, d, k, 4, xp=np, device="cpu")
        return rows * (8 * (4 * k + 2 * d) + 16)

    # A quarter of X (12.8 MB here), not the full 16 MiB host budget ...
    assert block_bytes(100_000, 32, 64) <= 100_000 * 32 * 4 // 4
    # ... but never below 1 MiB, and at most 16 MiB for large X.
    assert block_bytes(2_000, 32, 64) > 2**20 - 8 * (4 * 64 + 2 * 32) - 16
    assert 15 * 2**20 < block_bytes(10**7, 64, 256) <= budget.HOST_BLOCK_BYTES


@pytest.mark.parametrize(("n", "d", "k"), [(50, 3, 4), (1, 1, 1), (40, 1, 7), (9, 5, 9)])
def test_assign_block_is_the_float64_argmin(xp, n, d, k):
    rng = np.random.default_rng(n * 100 + d * 10 + k)
    X = rng.normal(size=(n, d))
    C = rng.normal(size=(k, d))
    Xb, Cb = xp.asarray(X), xp.asarray(C)
    labels, partial = _primitives.assign_block(
        Xb, Cb, _primitives.squared_norms(Cb, xp=xp.xp), xp=xp.xp
    )
    ref = sq_distances64(X, C)
    np.testing.assert_array_equal(xp.to_numpy(labels), ref.argmin(axis=1))
    x_sq = (X**2).sum(axis=1)
    np.testing.assert_allclose(xp.to_numpy(partial) + x_sq, ref.min(axis=1), rtol=1e-10, atol=1e-10)


def _segment_sum_reference(X, labels, w, k):
    sums = np.zeros((k, X.shape[1]))
    counts = np.zeros(k)
    for i, lab in enumerate(labels):
        sums[lab] += w[i] * X[i]
        counts[lab] += w[i]
    return sums, counts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("n", "d", "k"), [(200, 5, 7), (1, 1, 1), (30, 2, 30), (64, 1, 3), (17, 4, 40)]
)
def test_segment_sum_fast_and_standard_paths_equal_the_reference(xp, dtype, n, d, k):
    rng = np.random.default_rng(n + d + k)
    X = rng.normal(size=(n, d)).astype(dtype)
    labels = rng.integers(0, max(1, k // 2), size=n)  # leaves clusters empty when k > 1
    w = rng.uniform(0, 2, size=n).astype(dtype)
    ref_sums, ref_counts = _segment_sum_reference(
        X.astype(np.float64), labels, w.astype(np.float64), k
    )
    args = (xp.asarray(X), xp.asarray(labels), xp.asarray(w), k)
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    for segment_sum in {segment_sum_for(xp.xp), _primitives.segment_sum}:
        sums, counts = segment_sum(*args, xp=xp.xp)
        assert sums.dtype == xp.xp.float64  # accumulation dtype on every CPU backend
        np.testing.assert_allclose(xp.to_numpy(sums), ref_sums, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(xp.to_numpy(counts), ref_counts, rtol=rtol, atol=rtol)


def test_segment_sum_on_a_non_contiguous_block(xp):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 6))
    labels = rng.integers(0, 4, size=20)
    w = np.ones(20)
    Xd = xp.asarray(X)[::2, ::2]  # a strided view
    sums, counts = segment_sum_for(xp.xp)(Xd, xp.asarray(labels), xp.asarray(w), 4, xp=xp.xp)
    ref_sums, ref_counts = _segment_sum_reference(X[::2, ::2], labels, w, 4)
    np.testing.assert_allclose(xp.to_numpy(sums), ref_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xp.to_numpy(counts), ref_counts)


def test_relocate_empty_clusters_takes_the_farthest_weighted_points(xp):
    labels = np.array([0, 0, 0, 2, 2, 2])
    sq_dist = np.array([1.0, 9.0, 4.0, 7.0, 9.0, 0.5])
    weights = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 1.0])  # row 4 is far but weightless
    counts = np.array([3.0, 0.0, 2.0, 0.0])  # clusters 1 and 3 are empty
    new = relocate_empty_clusters(
        xp.asarray(labels),
        xp.asarray(sq_dist),
        xp.asarray(weights),
        xp.asarray(counts),
        xp=xp.xp,
    )
    # Farthest weighted rows: 1 (9.0), then 3 (7.0); they go to clusters 1 and 3 in order.
    np.testing.assert_array_equal(xp.to_numpy(new.labels), [0, 1, 0, 3, 2, 2])
    np.testing.assert_array_equal(xp.to_numpy(new.rows), [1, 3])
    np.testing.assert_array_equal(xp.to_numpy(new.before), [0, 2])
    np.testing.assert_array_equal(xp.to_numpy(new.after), [1, 3])


@pytest.mark.parametrize("chunk_rows", [3, 7, 1000])
def test_relocate_empty_clusters_in_chunks_equals_a_full_sort(xp, monkeypatch, chunk_rows):
    import kmeans_xp._algorithms.repair as repair_module

    monkeypatch.setattr(repair_module, "_REPAIR_CHUNK_ROWS", chunk_rows)
    rng = np.random.default_rng(chunk_rows)
    n, k = 60, 9
    labels = rng.integers(0, 5, size=n)  # clusters 5..8 are empty
    sq_dist = rng.integers(0, 4, size=n).astype(np.float64)  # many ties, across chunks
    weights = rng.uniform(size=n)
    weights[::5] = 0.0
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    new = relocate_empty_clusters(
        xp.asarray(labels), xp.asarray(sq_dist), xp.asarray(weights), xp.asarray(counts),
        xp=xp.xp,
    )  # fmt: skip
    # Reference: a full stable sort, largest distance first, lower row first among equals.
    score = np.where(weights > 0, sq_dist, -1.0)
    farthest = sorted(range(n), key=lambda i: (-score[i], i))[:4]
    expected = labels.copy()
    expected[farthest] = [5, 6, 7, 8]
    np.testing.assert_array_equal(xp.to_numpy(new.labels), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_after_relocation_equal_a_new_pass(xp, dtype):
    """The moved rows' contributions moved between clusters (unit weights) give the sums and
    counts a new pass over X gives, and a cluster whose only row moved counts exactly 0."""
    rng = np.random.default_rng(3)
    n, d, k = 200, 5, 8
    X = (rng.normal(size=(n, d)) + 50.0).astype(dtype)
    offset = X.astype(np.float64).mean(axis=0).astype(dtype)
    labels = rng.integers(0, 4, size=n)  # clusters 5, 6 and 7 empty
    labels[17] = 4  # cluster 4's only row, and the farthest: it moves, and cluster 4 empties
    sq_dist = rng.uniform(size=n)
    sq_dist[17] = 100.0
    w = np.ones(n, dtype=dtype)
    segment_sum = segment_sum_for(xp.xp)
    X_, labels_, w_, offset_ = (xp.asarray(a) for a in (X, labels, w, offset))
    kwargs = {"block_rows": 64, "xp": xp.xp}
    sums, counts = sum_by_label(X_, labels_, w_, offset_, k, segment_sum, **kwargs)
    relocation = relocate_empty_clusters(labels_, xp.asarray(sq_dist), w_, counts, xp=xp.xp)
    assert xp.to_numpy(relocation.rows).tolist()[0] == 17
    new_sums, new_counts = sums_after_relocation(
        X_, relocation, w_, offset_, sums, counts, segment_sum, xp=xp.xp
    )
    ref_sums, ref_counts = sum_by_label(
        X_, relocation.labels, w_, offset_, k, segment_sum, **kwargs
    )
    np.testing.assert_array_equal(xp.to_numpy(new_counts), xp.to_numpy(ref_counts))
    assert xp.to_numpy(new_counts)[4] == 0.0
    assert xp.to_numpy(new_counts)[5:].tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(xp.to_numpy(new_sums), xp.to_numpy(ref_sums), rtol=1e-12, atol=1e-9)


def test_repair_chunks_fit_the_block_budget():
    """Chunks of the empty-cluster repair: as many rows as a pass's block budget holds at
    ``_REPAIR_ROW_BYTES`` a row, the budget taken at the leanest count of a block row's bytes
    (CuPy's), never fewer than ``_REPAIR_CHUNK_ROWS``."""
    assert repair_chunk_rows(1, 2, 3, 4) == _REPAIR_CHUNK_ROWS
    rows = repair_chunk_rows(929_000, 128, 1024, 4)  # shape A's CuPy blocks: one chunk for 1 M
    assert rows > 1_048_576
    # 100 M x 64 -> 1024 beside 2 GB: CuPy blocks of ~32 000 rows (1/8 of ~1.6 GB free)
    rows = repair_chunk_rows(32_000, 64, 1024, 4)
    block_bytes = 32_000 * budget.cupy_pass_row_bytes(64, 1024, 4)
    assert rows * _REPAIR_ROW_BYTES <= block_bytes < 2**28
    # The standard count's blocks (NumPy on the host): chunks within the host's block budget.
    host_rows = budget.block_rows_for(10**6, 128, 1024, 4, xp=np, device="cpu")
    rows = repair_chunk_rows(host_rows, 128, 1024, 4)
    assert rows * _REPAIR_ROW_BYTES <= budget.HOST_BLOCK_BYTES


def test_numpy_update_without_scipy_equals_the_sparse_one(monkeypatch):
    from kmeans_xp._backends import numpy as _numpy

    rng = np.random.default_rng(9)
    X = rng.normal(size=(300, 7)).astype(np.float32)
    labels = rng.integers(0, 5, size=300)  # cluster 5 of 6 stays empty
    w = rng.uniform(0, 3, size=300).astype(np.float32)
    ref_sums, ref_counts = _segment_sum_reference(
        X.astype(np.float64), labels, w.astype(np.float64), 6
    )
    with_scipy = _numpy.segment_sum(X, labels, w, 6, xp=np)
    monkeypatch.setattr(_numpy, "_sparse", None)
    without = _numpy.segment_sum(X, labels, w, 6, xp=np)
    # float32 x times float32 w is exact in float64, so both accumulate exact products: equal
    # to the float64 reference up to the order of the additions (rounded products, as the
    # fallback once formed them in float32, miss by about 1e-8 relative).
    for sums, counts in (with_scipy, without):
        assert sums.dtype == np.float64
        np.testing.assert_allclose(sums, ref_sums, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(counts, ref_counts, rtol=1e-12)
