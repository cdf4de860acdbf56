"""The CuPy backend's CUDA kernels, run on the CPU by ``cuda_emulator`` (no GPU, no CuPy needed).

Each test launches a kernel exactly as ``_backends/cupy.py`` does — the same ``Launch`` from
``cuda_launch`` (grid, threads, arguments in the kernel's C types, shared memory) — on NumPy
arrays, and compares the result with a float64 brute-force reference. The GPU tests in
test_certified.py run the same kernels on a device where one answers.
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_emulator import EmulatedModule, compiler
from helpers import near_ties, nearest64, sq_distances64

from kmeans_xp._backends import cuda_launch
from kmeans_xp._backends.cuda_launch import (
    assign_certified_launch,
    segment_sum_launch,
    segment_sum_sorts,
    small_pass,
    small_pass_launch,
    split_launch,
)
from kmeans_xp._core.certified import CertifiedAssign
from kmeans_xp._core.primitives import segment_sum
from kmeans_xp._lib.options import pass_options

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler for the emulator")


class EmulatedModules:
    """Both CUDA sources (``KERNEL_SOURCE``, and ``MMA_SOURCE``, compiled on first use), with
    ``get_function`` taking a kernel of either, as ``cupy._run`` does."""

    def __init__(self):
        self.kernels = EmulatedModule(cuda_launch.KERNEL_SOURCE, cuda_launch.KERNEL_NAMES)
        self.mma = None

    def get_function(self, name: str):
        if name not in cuda_launch.MMA_KERNEL_NAMES:
            return self.kernels.get_function(name)
        if self.mma is None:
            self.mma = EmulatedModule(cuda_launch.MMA_SOURCE, cuda_launch.MMA_KERNEL_NAMES)
        return self.mma.get_function(name)


@pytest.fixture(scope="module")
def gpu() -> EmulatedModules:
    return EmulatedModules()


def run(gpu: EmulatedModules, launch: cuda_launch.Launch) -> None:
    kernel = gpu.get_function(launch.kernel_name)
    kernel((launch.grid,), (launch.threads,), launch.arguments, shared_mem=launch.shared_bytes)


def exact_partial(X, C, labels) -> np.ndarray:
    """‖c_label‖² − 2·x·c_label in float64: the partial distance a kernel returns."""
    X64 = np.asarray(X, dtype=np.float64)
    d = sq_distances64(X, C)[np.arange(len(labels)), labels]
    return d - np.sum(X64 * X64, axis=1)


def random_problem(n, d, k, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed + n + d + k)
    X = rng.normal(size=(n, d)).astype(dtype)
    C = X[rng.choice(n, size=k, replace=False)].copy()
    return X, C


def scorer_for(C, *, every_row_ambiguous: bool) -> CertifiedAssign:
    scorer = CertifiedAssign(C, xp=np)
    if every_row_ambiguous and scorer.certify:
        scorer.a = scorer.b = 1e30  # every row's best two are "too close": all rescored
    return scorer


# ---- assign_certified: the cuBLAS path's best-two-and-rescore pass ---------------------------


@pytest.mark.parametrize(
    ("n", "d", "k"), [(300, 5, 40), (200, 1, 3), (64, 7, 64), (100, 33, 1), (200, 4, 132)]
)
@pytest.mark.parametrize("every_row_ambiguous", [False, True])
def test_assign_certified_gives_the_float64_argmin(gpu, n, d, k, every_row_ambiguous):
    X, C = random_problem(n, d, k)
    scorer = scorer_for(C, every_row_ambiguous=every_row_ambiguous)
    products = np.ascontiguousarray(X @ scorer.neg2_centers_t, dtype=np.float32)
    labels = np.full(n, -1, dtype=np.int32)
    partial = np.full(n, np.nan, dtype=np.float32)
    run(gpu, assign_certified_launch(products, X, scorer, labels, partial))
    np.testing.assert_array_equal(labels, nearest64(X, C))
    np.testing.assert_allclose(partial, exact_partial(X, C, labels), rtol=1e-5, atol=1e-4)


def test_assign_certified_settles_near_ties(gpu):
    """Rows within 1e-4 of a bisector: float32 scores alone get some wrong (tested in
    test_certified.py); the kernel's rescoring gets all right."""
    X, C = near_ties(n=400)
    scorer = CertifiedAssign(C, xp=np)
    products = np.ascontiguousarray(X @ scorer.neg2_centers_t, dtype=np.float32)
    labels = np.empty(len(X), dtype=np.int32)
    partial = np.empty(len(X), dtype=np.float32)
    run(gpu, assign_certified_launch(products, X, scorer, labels, partial))
    np.testing.assert_array_equal(labels, nearest64(X, C))


def test_assign_certified_ties_go_to_the_lowest_index(gpu):
    """Exactly equal scores (duplicate centers), float64 data (no certificate): the first."""
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.25, 0.0], [0.75, 1.0]])
    C = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    scorer = CertifiedAssign(C, xp=np)
    products = np.ascontiguousarray(X @ scorer.neg2_centers_t)
    labels = np.empty(4, dtype=np.int32)
    partial = np.empty(4)
    run(gpu, assign_certified_launch(products, X, scorer, labels, partial))
    np.testing.assert_array_equal(labels, [1, 0, 1, 0])


def test_assign_certified_rescoring_ties_go_to_the_lowest_index(gpu):
    """float32 data, duplicate centers: every row's best two scores are equal, so every row is
    rescored in float64, where the duplicates tie exactly; the lowest index wins. 70 centers: the
    candidates span three of the warp's 32-column rounds."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 9)).astype(np.float32)
    base = rng.normal(size=(35, 9)).astype(np.float32)
    C = np.concatenate([base, base])  # center j + 35 repeats center j
    scorer = CertifiedAssign(C, xp=np)
    products = np.ascontiguousarray(X @ scorer.neg2_centers_t, dtype=np.float32)
    labels = np.empty(len(X), dtype=np.int32)
    partial = np.empty(len(X), dtype=np.float32)
    run(gpu, assign_certified_launch(products, X, scorer, labels, partial))
    expected = nearest64(X, C)
    assert np.all(expected < 35)  # argmin's first of the tied pair
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_allclose(partial, exact_partial(X, C, labels), rtol=1e-5, atol=1e-4)


# ---- assign_mma: tensor-core products fused with the best two, and the listed rows' rescoring ----


def mma_scorer(C, precision: str, *, every_row_ambiguous: bool = False) -> CertifiedAssign:
    """The float32 scorer ``cupy.CertifiedAssign`` hands ``assign_mma_launch``."""
    scorer = CertifiedAssign(C, xp=np, precision=precision)
    scorer.precision = precision
    scorer.centers = np.ascontiguousarray(C, dtype=np.float32)
    if every_row_ambiguous:
        scorer.a = scorer.b = 1e30
    return scorer


def run_mma(gpu, X, scorer):
    """assign_mma then its rescoring, as ``cupy.CertifiedAssign`` launches them: labels,
    partials and the rows listed."""
    m = X.shape[0]
    labels = np.full(m, -1, dtype=np.int32)
    partial = np.full(m, np.nan, dtype=np.float32)
    n_listed = np.zeros(1, dtype=np.uint64)
    listed = np.full(m, -1, dtype=np.int64)
    threshold = np.full(m, np.nan)
    buffers = (labels, partial, n_listed, listed, threshold)
    run(gpu, cuda_launch.assign_mma_launch(X, scorer, *buffers, rescore=False))
    rows = listed[: int(n_listed[0])].copy()
    run(gpu, cuda_launch.assign_mma_launch(X, scorer, *buffers, rescore=True))
    return labels, partial, rows


@pytest.mark.parametrize("precision", ["high", "tf32x3"])
@pytest.mark.parametrize(
    ("n", "d", "k"),
    # a row tile and a bit, two feature chunks (the second part zeros), two center tiles (the
    # second part empty); one feature; one center; k just past a tile; k = n
    [(300, 40, 150), (130, 1, 3), (64, 33, 1), (200, 8, 129), (64, 7, 64)],
)
def test_assign_mma_gives_the_float64_argmin(gpu, precision, n, d, k):
    """Every label is the float64 argmin; a settled row's partial is within the certificate's
    bound of the exact one, a rescored row's is the exact one (to float32). With k > 2 one
    center is far from every row (an empty cluster)."""
    X, C = random_problem(n, d, k)
    if k > 2:
        C[1] = 50.0
    scorer = mma_scorer(C, precision)
    labels, partial, listed = run_mma(gpu, X, scorer)
    np.testing.assert_array_equal(labels, nearest64(X, C))
    exact = exact_partial(X, C, labels)
    settled = np.ones(n, dtype=bool)
    settled[listed] = False
    norms = np.linalg.norm(X.astype(np.float64), axis=1)
    bound = scorer.a * norms + scorer.b
    assert np.all(np.abs(partial - exact)[settled] <= bound[settled])
    np.testing.assert_allclose(partial[~settled], exact[~settled], rtol=1e-5, atol=1e-4)
    assert len(np.unique(listed)) == len(listed)


@pytest.mark.parametrize("precision", ["high", "tf32x3"])
@pytest.mark.parametrize("d", [37, 36])  # tiles loaded a value or 16 bytes at a time
def test_assign_mma_products_follow_the_fragment_layout(gpu, precision, d):
    """Small integers are exact in TF32 and their products and sums in float32: every partial
    is then exactly |c|^2 - 2 x.c, so a row, center or feature taken from the wrong place in
    any fragment would show. Rows 0, 1 and 2 are made nearest to centers 5, 130 and 77."""
    rng = np.random.default_rng(7)
    n, k = 150, 140
    X = rng.integers(-8, 9, size=(n, d)).astype(np.float32)
    C = rng.integers(-8, 9, size=(k, d)).astype(np.float32)
    for row, center in ((0, 5), (1, 130), (2, 77)):
        X[row] = C[center]
    scorer = mma_scorer(C, precision)
    labels, partial, _ = run_mma(gpu, X, scorer)
    np.testing.assert_array_equal(labels[:3], [5, 130, 77])
    np.testing.assert_array_equal(labels, nearest64(X, C))
    np.testing.assert_array_equal(partial, exact_partial(X, C, labels).astype(np.float32))


def test_assign_mma_cuts_operands_to_tf32(gpu):
    """Products in "high" are of TF32 operands (the bound's assumption), in "tf32x3" as good as
    float32's: with 1 + 2^-12 in every value, "high" drops it and "tf32x3" keeps it."""
    n, d, k = 40, 16, 8
    X = np.full((n, d), 1.0 + 2.0**-12, dtype=np.float32)
    C = np.zeros((k, d), dtype=np.float32)
    C[:, 0] = np.arange(1, k + 1, dtype=np.float32)
    exact = np.float32(C[0, 0] ** 2) - 2 * np.float32(C[0, 0]) * X[0, 0]
    for precision, expected in (("high", np.float32(1.0 - 2.0)), ("tf32x3", exact)):
        scorer = mma_scorer(C, precision)
        scorer.a = scorer.b = 0.0  # nothing rescored: the products themselves
        labels, partial, listed = run_mma(gpu, X, scorer)
        assert len(listed) == 0
        np.testing.assert_array_equal(labels, 0)
        np.testing.assert_array_equal(partial, expected)


def test_assign_mma_lists_ambiguous_rows_and_rescores_them(gpu):
    """With an unbounded error every row is listed, rescored in float64, and ties (duplicate
    centers) go to the lowest index."""
    X, C = random_problem(140, 9, 6)
    C = np.concatenate([C, C[::-1]])  # center j and 11 - j equal
    scorer = mma_scorer(C, "high", every_row_ambiguous=True)
    labels, partial, listed = run_mma(gpu, X, scorer)
    np.testing.assert_array_equal(np.sort(listed), np.arange(140))
    np.testing.assert_array_equal(labels, nearest64(X, C))
    assert labels.max() < 6
    np.testing.assert_allclose(partial, exact_partial(X, C, labels), rtol=1e-5, atol=1e-4)


def test_assign_mma_settles_near_ties(gpu):
    """Rows within 1e-4 of a bisector, split TF32 products: some are listed, all end exact."""
    X, C = near_ties(n=300)
    X, C = X.astype(np.float32), C.astype(np.float32)
    labels, _, listed = run_mma(gpu, X, mma_scorer(C, "tf32x3"))
    np.testing.assert_array_equal(labels, nearest64(X, C))
    assert len(listed) > 0


# ---- split_for_tf32 ----------------------------------------------------------------------------


@pytest.mark.parametrize("tail_at", [1, 2])
def test_split_kernel_clears_13_mantissa_bits(gpu, tail_at):
    rng = np.random.default_rng(tail_at)
    A = (rng.normal(size=(37, 5)) * 10.0 ** rng.integers(-20, 20, size=(37, 5))).astype(np.float32)
    out = np.full((37, 15), np.nan, dtype=np.float32)
    run(gpu, split_launch(A, out, tail_at=tail_at))
    head = (A.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)
    groups = [head, head, head]
    groups[tail_at] = A - head
    np.testing.assert_array_equal(out, np.concatenate(groups, axis=1))
    tail = out[:, 5 * tail_at : 5 * tail_at + 5]
    np.testing.assert_array_equal(out[:, :5] + tail, A)  # head + tail: exactly x


# ---- segment sums --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "d", "k"),
    [
        (600, 4, 16), (300, 64, 300), (10, 3, 1), (7, 2, 7), (300, 1, 5),
        # sum_shared over several blocks of 4096 rows, two groups of 32 features, two chunks of
        # the labels' scan; then blocks of 1024 rows (k·(d+1) sums leave no room for 4096)
        (9000, 40, 50), (2500, 35, 120),
    ],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_segment_sum_kernels_equal_the_standard(gpu, n, d, k, dtype):
    """sum_shared (small k·d: each block's rows grouped by label in shared memory first) and
    sum_sorted (large), with an empty cluster (k - 1) when k > 1."""
    rng = np.random.default_rng(n + k)
    X = rng.normal(size=(n, d)).astype(dtype)
    labels = rng.integers(0, max(1, k - 1), size=n).astype(np.int32)
    w = rng.uniform(size=n).astype(dtype)
    sums = np.zeros((k, d))
    counts = np.zeros(k)
    order = np.argsort(labels).astype(np.int64) if segment_sum_sorts(k, d) else None
    launch = segment_sum_launch(X, w, labels, order, sums, counts)
    assert launch.kernel_name.startswith("sum_sorted" if order is not None else "sum_shared")
    assert launch.shared_bytes <= cuda_launch.SHARED_BYTES
    if (n, k) in ((9000, 50), (2500, 120)):  # 4096 rows a block, then 1024: three blocks each
        assert (int(launch.arguments[6]), launch.grid) == ({50: 4096, 120: 1024}[k], 3)
    run(gpu, launch)
    expected_sums, expected_counts = segment_sum(X, labels, w, k, xp=np)
    np.testing.assert_allclose(sums, expected_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(counts, expected_counts, rtol=1e-12)
    if k > 1:
        assert counts[k - 1] == 0


@pytest.mark.parametrize(("n", "k"), [(1000, 37), (300, 1), (5, 9)])
def test_label_grouping_kernels_order_rows_by_label(gpu, n, k):
    """label_count, an exclusive cumulative sum, label_scatter: every row once, labels in
    order, each label's rows where its count says (empty labels included)."""
    rng = np.random.default_rng(n + k)
    labels = rng.integers(0, max(1, k - 2), size=n).astype(np.int32)
    counts = np.zeros(k, dtype=np.uint64)
    run(gpu, cuda_launch.label_count_launch(labels, counts, multiprocessors=2))
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=k))
    next_position = np.cumsum(counts) - counts
    order = np.full(n, -1, dtype=np.int64)
    run(gpu, cuda_launch.label_scatter_launch(labels, next_position, order, multiprocessors=2))
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    np.testing.assert_array_equal(labels[order], np.sort(labels))
    np.testing.assert_array_equal(next_position, np.cumsum(counts))  # every cursor at its end


def test_sum_sorted_over_a_shuffled_grouping(gpu):
    """sum_sorted needs rows grouped by label, not sorted within a label (label_scatter's
    order varies): the sums of a grouping shuffled inside each label equal the standard's."""
    rng = np.random.default_rng(5)
    n, d, k = 700, 64, 100
    assert segment_sum_sorts(k, d)
    X = rng.normal(size=(n, d)).astype(np.float32)
    labels = rng.integers(0, k, size=n).astype(np.int32)
    w = rng.uniform(size=n).astype(np.float32)
    order = np.lexsort((rng.permutation(n), labels)).astype(np.int64)
    sums, counts = np.zeros((k, d)), np.zeros(k)
    run(gpu, segment_sum_launch(X, w, labels, order, sums, counts))
    expected_sums, expected_counts = segment_sum(X, labels, w, k, xp=np)
    np.testing.assert_allclose(sums, expected_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(counts, expected_counts, rtol=1e-12)


# ---- lloyd_pass_small: the fused pass for small k·d ---------------------------------------------


SMALL_SHAPES = [(1000, 1, 5), (700, 5, 3), (513, 32, 64), (300, 64, 20), (300, 33, 1), (64, 7, 64)]


@pytest.mark.parametrize(("n", "d", "k"), SMALL_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("every_row_ambiguous", [False, True])
def test_small_pass_assigns_the_float64_argmin(gpu, n, d, k, dtype, every_row_ambiguous):
    X, C = random_problem(n, d, k, dtype)
    plan = small_pass(d, k, dtype, accumulate=False)
    assert plan is not None
    scorer = scorer_for(C, every_row_ambiguous=every_row_ambiguous)
    labels = np.full(n, -1, dtype=np.int32)
    partial = np.full(n, np.nan, dtype=dtype)
    launch = small_pass_launch(
        plan, X, np.zeros(d, dtype), C, scorer, labels, partial, unused=np.empty(1),
        multiprocessors=1,
    )  # fmt: skip
    run(gpu, launch)
    np.testing.assert_array_equal(labels, nearest64(X, C))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(partial, exact_partial(X, C, labels), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("every_row_ambiguous", [False, True])
def test_small_pass_ties_go_to_the_lowest_index(gpu, every_row_ambiguous):
    """Duplicate centers: equal float32 scores, and equal float64 distances when rescored."""
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.25, 0.0], [0.75, 1.0]], dtype=np.float32)
    C = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    labels = np.empty(4, dtype=np.int32)
    partial = np.empty(4, dtype=np.float32)
    launch = small_pass_launch(
        small_pass(2, 4, np.float32, accumulate=False), X, np.zeros(2, np.float32), C,
        scorer_for(C, every_row_ambiguous=every_row_ambiguous), labels, partial,
        unused=np.empty(1), multiprocessors=1,
    )  # fmt: skip
    run(gpu, launch)
    np.testing.assert_array_equal(labels, [1, 0, 1, 0])


def test_small_pass_settles_near_ties(gpu):
    X, C = near_ties(n=1500)
    plan = small_pass(X.shape[1], C.shape[0], X.dtype, accumulate=False)
    labels = np.empty(len(X), dtype=np.int32)
    partial = np.empty(len(X), dtype=np.float32)
    scorer = CertifiedAssign(C, xp=np)
    launch = small_pass_launch(
        plan, X, np.zeros(X.shape[1], np.float32), C, scorer, labels, partial,
        unused=np.empty(1), multiprocessors=1,
    )  # fmt: skip
    run(gpu, launch)
    np.testing.assert_array_equal(labels, nearest64(X, C))


@pytest.mark.parametrize(("n", "d", "k"), [(1500, 3, 6), (1100, 32, 64), (600, 64, 16)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_pass_sums_counts_and_changes_like_the_standard_pass(gpu, n, d, k, dtype):
    """The whole Lloyd pass: X far from the origin with its mean subtracted in the kernel,
    weights with zeros, one cluster left empty, two row blocks (as ``cupy.assign_and_sum`` runs
    them), grid-stride tiles (one multiprocessor: 4 blocks for up to 6 tiles), labels compared
    with the previous pass's."""
    rng = np.random.default_rng(n + d)
    X = (rng.normal(size=(n, d)) + 1000.0).astype(dtype)
    offset = X.astype(np.float64).mean(axis=0).astype(dtype)
    centered = X - offset  # what the kernel forms, in X's dtype
    C = centered[rng.choice(n, size=k, replace=False)].copy()
    C[k - 1] = 1e6  # no row is nearest: an empty cluster
    w = rng.uniform(size=n).astype(dtype)
    w[::7] = 0.0
    expected = nearest64(centered, C)
    previous = np.where(rng.uniform(size=n) < 0.5, expected, (expected + 1) % k).astype(np.int32)
    labels = previous.copy()
    partial = np.full(n, np.nan, dtype=dtype)
    sums, counts = np.zeros((k, d)), np.zeros(k)
    n_changed = np.zeros((), dtype=np.uint64)
    plan = small_pass(d, k, dtype, accumulate=True)
    scorer = CertifiedAssign(C, xp=np)
    for start, stop in [(0, n // 3), (n // 3, n)]:
        launch = small_pass_launch(
            plan, X[start:stop], offset, C, scorer, labels[start:stop], partial[start:stop],
            weights=w[start:stop], sums=sums, counts=counts, n_changed=n_changed,
            unused=np.empty(1), multiprocessors=1,
        )  # fmt: skip
        run(gpu, launch)
    np.testing.assert_array_equal(labels, expected)
    assert int(n_changed) == int(np.sum(previous != expected))
    expected_sums, expected_counts = segment_sum(centered, expected, w, k, xp=np)
    np.testing.assert_allclose(sums, expected_sums, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(counts, expected_counts, rtol=1e-12)
    assert counts[k - 1] == 0
    tolerance = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(partial, exact_partial(centered, C, labels), rtol=tolerance)


# ---- k-means++: a step's trial distances and potentials, then the update ----------------------


KMEANSPP_CANDIDATES = {
    5: [3, 500, 3, 41, 699],  # one row drawn twice
    1: [41],  # the first center's step
    16: [699, *range(0, 450, 30)],  # as many as a launch takes (KMEANSPP_MAX_TRIALS)
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_candidates", sorted(KMEANSPP_CANDIDATES))
def test_kmeanspp_step_kernels_equal_the_float64_reference(gpu, dtype, n_candidates):
    """Trial distances and potentials for 1, 5 (one drawn twice) or 16 candidates over 701
    rows (the last warp's four-row sweep ends past them) of 37 features (not a multiple of a
    lane group's 8), weights with zeros, some rows' nearest distance still +inf; then the
    update: the least potential wins, distances and weights follow."""
    assert len(KMEANSPP_CANDIDATES[16]) == cuda_launch.KMEANSPP_MAX_TRIALS
    rng = np.random.default_rng(7)
    n, d = 701, 37
    X = (rng.normal(size=(n, d)) + 20.0).astype(dtype)
    offset = X.mean(axis=0).astype(dtype)
    w = rng.uniform(size=n).astype(dtype)
    w[::9] = 0.0
    closest = rng.uniform(10.0, 80.0, size=n)
    closest[::13] = np.inf
    candidates = np.array(KMEANSPP_CANDIDATES[n_candidates], dtype=np.int64)
    trial_sq = np.full((n, n_candidates), np.nan, dtype=dtype)
    potentials = np.zeros(n_candidates)
    run(gpu, cuda_launch.kmeanspp_trials_launch(
        X, offset, candidates, closest, w, trial_sq, potentials, multiprocessors=1,
    ))  # fmt: skip
    exact = sq_distances64(X - offset, (X - offset)[candidates])
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(trial_sq, exact, rtol=tolerance, atol=tolerance)
    expected_potentials = (w[:, None] * np.minimum(closest[:, None], exact)).sum(axis=0)
    np.testing.assert_allclose(potentials, expected_potentials, rtol=tolerance)
    if n_candidates == 5:
        assert potentials[0] == potentials[2]  # the same row twice: the same sums, added alike

    chosen = np.full(1, -1, dtype=np.int64)
    before = closest.copy()
    run(gpu, cuda_launch.kmeanspp_update_launch(
        trial_sq, potentials, candidates, closest, chosen, multiprocessors=1,
    ))  # fmt: skip
    best = int(np.argmin(potentials))
    assert chosen[0] == candidates[best]
    np.testing.assert_array_equal(closest, np.minimum(before, trial_sq[:, best]))

    # Without kept trial distances (hundreds of millions of rows): the same potentials, and the
    # winner's distances computed again from X come out the same, bit for bit.
    again = np.zeros(n_candidates)
    run(gpu, cuda_launch.kmeanspp_trials_launch(
        X, offset, candidates, before, w, None, again, multiprocessors=1,
    ))  # fmt: skip
    np.testing.assert_array_equal(again, potentials)
    from_x = before.copy()
    chosen_again = np.full(1, -1, dtype=np.int64)
    run(gpu, cuda_launch.kmeanspp_update_from_x_launch(
        X, offset, again, candidates, from_x, chosen_again, multiprocessors=1,
    ))  # fmt: skip
    assert chosen_again[0] == chosen[0]
    np.testing.assert_array_equal(from_x, closest)


def test_kmeanspp_update_breaks_ties_by_the_first_candidate(gpu):
    """Mirror-image rows of symmetric data have exactly equal potentials (integer distances):
    the first listed wins, as ``argmin`` does in the standard version."""
    X = np.array([[-2, 0], [2, 0], [0, 3], [0, -3], [-1, 1], [1, 1]], dtype=np.float32)
    w = np.ones(6, dtype=np.float32)
    closest = np.full(6, np.inf)
    for candidates in ([1, 0], [0, 1]):
        candidates = np.array(candidates, dtype=np.int64)
        trial_sq = np.empty((6, 2), dtype=np.float32)
        potentials = np.zeros(2)
        run(gpu, cuda_launch.kmeanspp_trials_launch(
            X, np.zeros(2, np.float32), candidates, closest, w, trial_sq, potentials,
            multiprocessors=1,
        ))  # fmt: skip
        assert potentials[0] == potentials[1]
        chosen = np.full(1, -1, dtype=np.int64)
        run(gpu, cuda_launch.kmeanspp_update_launch(
            trial_sq, potentials, candidates, closest.copy(), chosen, multiprocessors=1,
        ))  # fmt: skip
        assert chosen[0] == candidates[0]


def sample_on_the_emulator(gpu, w, closest, uniforms, *, weights_only=False):
    totals = np.full(cuda_launch._KMEANSPP_SAMPLE_THREADS, np.nan)
    picked = np.full(len(uniforms), -1, dtype=np.int64)
    for launch in cuda_launch.kmeanspp_sample_launches(
        w, closest, np.ascontiguousarray(uniforms, dtype=np.float64), totals, picked,
        weights_only=weights_only,
    ):  # fmt: skip
        run(gpu, launch)
    return picked


def standard_sample(w, closest, uniforms, *, weights_only=False):
    """What ``init.kmeans_plusplus_indices`` draws: its chunked cumulative-sum sampling."""
    from kmeans_xp._core.seeding import sample_in_chunks
    from kmeans_xp._lib.compat import get_namespace
    from kmeans_xp._lib.options import current_options

    increments = w.astype(np.float64) if weights_only else w.astype(np.float64) * closest
    return sample_in_chunks(
        lambda a, b: increments[a:b], len(w), np.asarray(uniforms, dtype=np.float64),
        xp=get_namespace(increments), chunk_rows=current_options().sampling_chunk_rows,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 700, 20_000])
def test_kmeanspp_sampling_kernels_draw_what_the_standard_version_draws(gpu, dtype, n):
    """Random weights (a third zero) and D² (some zero: rows on a center): the same rows for 16
    uniforms, never a row of zero increment; and by weight alone at the first step."""
    rng = np.random.default_rng(n)
    w = rng.uniform(0.5, 2.0, size=n).astype(dtype)
    w[rng.uniform(size=n) < 1 / 3] = 0.0
    closest = rng.exponential(50.0, size=n)
    closest[rng.uniform(size=n) < 0.2] = 0.0
    if not (w.astype(np.float64) * closest).any():
        w[0], closest[0] = 1.0, 1.0
    uniforms = rng.uniform(size=16)
    picked = sample_on_the_emulator(gpu, w, closest, uniforms)
    np.testing.assert_array_equal(picked, standard_sample(w, closest, uniforms))
    assert (w[picked] > 0).all()
    assert (closest[picked] > 0).all()
    if n > 1:
        w[0] = 0.0
    at_first = sample_on_the_emulator(gpu, w, np.full(n, np.inf), uniforms, weights_only=True)
    expected = standard_sample(w, closest, uniforms, weights_only=True)
    np.testing.assert_array_equal(at_first, expected)
    assert (w[at_first] > 0).all()


def test_kmeanspp_sampling_kernels_at_the_boundaries_between_rows(gpu):
    """Integer increments (exact sums in any order), with runs of zeros: targets exactly on a
    cumulative sum, at 0 and just below the total pick what searchsorted(side="right") picks,
    over parts of 256 rows; every increment zero: the last row, as the standard version."""
    rng = np.random.default_rng(3)
    n = 2000
    w = rng.integers(0, 4, size=n).astype(np.float64)
    w[100:700] = 0.0  # whole parts of zeros
    closest = np.ones(n)
    cumulative = np.cumsum(w)
    total = cumulative[-1]
    on_boundaries = cumulative[rng.choice(n, size=13, replace=False)] / total
    uniforms = np.concatenate([on_boundaries, [0.0, np.nextafter(1.0, 0.0), 0.5]])
    picked = sample_on_the_emulator(gpu, w, closest, uniforms)
    np.testing.assert_array_equal(picked, standard_sample(w, closest, uniforms))
    np.testing.assert_array_equal(picked, np.searchsorted(cumulative, uniforms * total, "right"))
    assert (w[picked] > 0).all()
    zeros = sample_on_the_emulator(gpu, np.zeros(n), closest, uniforms[:3])
    np.testing.assert_array_equal(zeros, standard_sample(np.zeros(n), closest, uniforms[:3]))
    assert (zeros == n - 1).all()


def scan_as_the_kernel_does(values):
    """The kernels' block_inclusive_scan (Hillis-Steele, 256 threads) in NumPy: the same
    additions in the same order."""
    v = np.zeros(cuda_launch._KMEANSPP_SAMPLE_THREADS)
    v[: len(values)] = values
    offset = 1
    while offset < len(v):
        v = np.concatenate([np.zeros(offset), v[:-offset]]) + v
        offset *= 2
    return v[: len(values)]


def test_kmeanspp_sampling_never_picks_a_zero_row_in_a_rounding_gap(gpu):
    """One part of 256 rows, a row a thread: where the scan's start of thread t + 1 rounds
    above thread t's end (its start plus its row), a target in between belongs to no slice;
    thread t + 1's row has zero increment, so the next row is drawn, not it — and where every
    row after t has zero increment, row t (the last positive), not the part's last row."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        w = np.exp(rng.uniform(-12, 12, size=256))
        scan = scan_as_the_kernel_does(w)
        ends = np.concatenate([[0.0], scan[:-1]]) + w  # each thread's start plus its row
        gaps = [t for t in range(1, 250) if scan[t] > ends[t]]
        if gaps:
            break
    else:
        pytest.fail("no rounding gap found")
    t = gaps[0]
    for zeros, expected in ((slice(t + 1, t + 2), t + 2), (slice(t + 1, None), t)):
        v = w.copy()
        v[zeros] = 0.0  # the scan up to t is unchanged
        total = scan_as_the_kernel_does(v)[-1]
        u = ends[t] / total
        for _ in range(8):  # a uniform whose target is exactly thread t's end
            if u * total == ends[t]:
                break
            u = np.nextafter(u, 2.0 if u * total < ends[t] else 0.0)
        assert u * total == ends[t]
        picked = sample_on_the_emulator(gpu, v, np.ones(256), np.array([u]))
        assert picked[0] == expected
        assert v[picked[0]] > 0


def test_kmeanspp_sampling_parts():
    """At most one part a thread of the pick's block and one a 256 rows, none empty, together
    the rows."""
    for n in (1, 255, 256, 257, 70_000, 1_048_576, 10**8 + 7):
        parts, part_rows = cuda_launch.kmeanspp_sample_parts(n)
        assert 1 <= parts <= cuda_launch._KMEANSPP_SAMPLE_THREADS
        assert (parts - 1) * part_rows < n <= parts * part_rows
        assert parts <= -(-n // cuda_launch._KMEANSPP_SAMPLE_MIN_PART_ROWS)


def kmeanspp_step(gpu, X, offset, w, candidates, state, *, step, prune):
    """One k-means++ step on the emulator from given candidates: (gaps, when pruning, then)
    trials, then update. ``state`` holds closest, nearest and chosen, updated in place;
    returns the step's trial distances and potentials."""
    closest, nearest, chosen = state
    n, t = len(X), len(candidates)
    candidates = np.asarray(candidates, dtype=np.int64)
    pruning = {}
    if prune and step > 0:
        gaps = np.full(len(chosen) * t, np.nan)
        run(gpu, cuda_launch.kmeanspp_gaps_launch(X, offset, chosen, step, candidates, gaps))
        pruning = {"nearest": nearest, "gaps": gaps}
    trial_sq = np.full((n, t), np.nan, dtype=X.dtype)
    potentials = np.zeros(t)
    run(gpu, cuda_launch.kmeanspp_trials_launch(
        X, offset, candidates, closest, w, trial_sq, potentials, multiprocessors=1, **pruning
    ))  # fmt: skip
    run(gpu, cuda_launch.kmeanspp_update_launch(
        trial_sq, potentials, candidates, closest, chosen[step : step + 1], multiprocessors=1,
        nearest=nearest, index=step,
    ))  # fmt: skip
    return trial_sq, potentials


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kmeanspp_pruning_skips_far_rows_and_changes_nothing(gpu, dtype):
    """Four blobs far apart, centers chosen in three: at the fourth step, candidates from the
    fourth blob and one from the first. Pruned, exactly the rows whose every candidate is at
    least KMEANSPP_PRUNE times their nearest distance from their nearest center are not read —
    trial distances +inf: all of blobs two and three, none of blob four — and the potentials,
    nearest distances, nearest centers and the pick equal the unpruned step's bit for bit; the
    gaps are the centers' squared distances to the candidates."""
    rng = np.random.default_rng(5)
    n_blob, d = 150, 9
    means = np.array([[0.0] * d, [60.0] * d, [-60.0] * d, [0.0] * (d - 1) + [90.0]])
    X = np.concatenate([m + rng.normal(size=(n_blob, d)) for m in means]).astype(dtype)
    X += 500.0  # far from the origin: offset subtracted in the kernels
    offset = X.mean(axis=0).astype(dtype)
    w = rng.uniform(0.5, 2.0, size=len(X)).astype(dtype)
    steps = [[3], [160, 170], [310, 320], [460, 470, 480, 5]]
    runs = {}
    for prune in (False, True):
        state = (np.full(len(X), np.inf), np.zeros(len(X), np.int32), np.full(4, -1, np.int64))
        for step, candidates in enumerate(steps):
            before = (state[0].copy(), state[1].copy())
            trial_sq, potentials = kmeanspp_step(
                gpu, X, offset, w, candidates, state, step=step, prune=prune
            )
        runs[prune] = (trial_sq, potentials, *state)
    full, potentials, closest, nearest, chosen = runs[False]
    pruned, pruned_potentials, pruned_closest, pruned_nearest, pruned_chosen = runs[True]
    np.testing.assert_array_equal(pruned_potentials, potentials)
    np.testing.assert_array_equal(pruned_closest, closest)
    np.testing.assert_array_equal(pruned_nearest, nearest)
    np.testing.assert_array_equal(pruned_chosen, chosen)
    np.testing.assert_array_equal(chosen[:3] // n_blob, [0, 1, 2])
    np.testing.assert_array_equal(before[1][: 3 * n_blob], np.repeat([0, 1, 2], n_blob))

    gaps = np.full(4 * 4, np.nan)
    run(gpu, cuda_launch.kmeanspp_gaps_launch(
        X, offset, chosen, 3, np.array(steps[3], dtype=np.int64), gaps
    ))  # fmt: skip
    points = (X - offset).astype(np.float64)
    expected = sq_distances64(points[chosen[:3]], points[steps[3]]).ravel()
    np.testing.assert_allclose(gaps[:12], expected, rtol=1e-12)
    closest_before, nearest_before = before
    assert f"#define KMEANSPP_PRUNE {cuda_launch.KMEANSPP_PRUNE}" in cuda_launch.KERNEL_SOURCE
    reach = cuda_launch.KMEANSPP_PRUNE * closest_before[:, None]
    far = (gaps[:12].reshape(3, 4)[nearest_before] >= reach).all(axis=1)
    skipped = np.isinf(pruned).all(axis=1)
    assert not np.isinf(full).any()
    np.testing.assert_array_equal(skipped, far)
    assert skipped[n_blob : 3 * n_blob].all()  # blobs two and three: far from every candidate
    assert not skipped[3 * n_blob :].any()  # blob four: its own center is not chosen yet
    np.testing.assert_array_equal(pruned[~skipped], full[~skipped])


def test_kmeanspp_kernels_take_at_most_their_register_budget_of_candidates():
    """More than KMEANSPP_MAX_TRIALS candidates (n_local_trials set high) go to the standard
    version, as do candidate rows beyond shared memory."""
    most = cuda_launch.KMEANSPP_MAX_TRIALS
    assert cuda_launch.kmeanspp_applies(128, most, np.float32)
    assert not cuda_launch.kmeanspp_applies(128, most + 1, np.float32)
    assert not cuda_launch.kmeanspp_applies(2048, 8, np.float32)  # 64 KiB of candidates
    assert f"#define KMEANSPP_MAX_TRIALS {most}" in cuda_launch.KERNEL_SOURCE
    group = cuda_launch._KMEANSPP_GROUP  # lanes per row: sizes the grid and shared memory
    assert f"#define KMEANSPP_GROUP {group}" in cuda_launch.KERNEL_SOURCE
    # The float kernel's launch bound is for the launches' block size.
    threads = cuda_launch._KMEANSPP_THREADS
    assert f"#define KMEANSPP_THREADS {threads}" in cuda_launch.KERNEL_SOURCE
    assert most % group == 0
    assert 32 % group == 0


def test_small_pass_applies_only_where_it_fits(use_options, monkeypatch):
    """Up to 64 features, shared memory within 48 KiB; off when ``use_small_pass`` is."""
    assert small_pass(32, 64, np.float32, accumulate=True).kernel_name.endswith("float_32")
    assert small_pass(33, 8, np.float64, accumulate=False).kernel_name.endswith("double_64")
    assert small_pass(65, 4, np.float32, accumulate=False) is None
    assert small_pass(32, 384, np.float32, accumulate=False) is None  # 49 KiB of centers
    assert small_pass(32, 128, np.float32, accumulate=True) is None  # 17 + 33 KiB of sums
    for d, k in [(1, 1), (32, 64), (64, 100), (8, 500)]:
        plan = small_pass(d, k, np.float32, accumulate=True)
        assert plan is None or plan.shared_bytes <= cuda_launch.SHARED_BYTES
    use_options(small_pass=False)
    assert small_pass(32, 64, np.float32, accumulate=True) is None


def test_small_pass_rows_per_thread_agree_with_the_kernels():
    """Each width's kernel scores R rows a thread (its DEFINE_LLOYD_PASS_SMALL line); the launch
    sizes shared memory and the grid from ``SMALL_PASS_ROWS``, so the two must say the same."""
    import re

    defined = re.findall(
        r"^DEFINE_LLOYD_PASS_SMALL\((\w+), \w+, (\d+), (\d+)\)$",
        cuda_launch.KERNEL_SOURCE, flags=re.MULTILINE,
    )  # fmt: skip
    assert len(defined) == 2 * len(cuda_launch.SMALL_PASS_WIDTHS)
    for dtype, width, rows in defined:
        assert cuda_launch.SMALL_PASS_ROWS[dtype][int(width)] == int(rows), (dtype, width)
    plan = small_pass(32, 64, np.float32, accumulate=True)
    # shape B of issue 4: one row a thread, measured faster than two on an H200
    assert (plan.kernel_name, plan.rows_per_thread) == ("lloyd_pass_small_float_32", 1)
    assert small_pass(16, 64, np.float32, accumulate=True).rows_per_thread == 2


def test_mma_launch_sizes_agree_with_the_kernel():
    """``assign_mma_launch`` takes its grid, threads and shared memory from Python constants;
    the kernel's #defines must say the same, and its tiles fit the 48 KiB every card gives."""
    import re

    defined = dict(
        re.findall(r"^#define (MMA_\w+) (\d+)$", cuda_launch.MMA_SOURCE, flags=re.MULTILINE)
    )
    names = ("MMA_ROWS", "MMA_CENTERS", "MMA_STRIDE", "MMA_THREADS")
    for name in names:
        assert int(defined[name]) == getattr(cuda_launch, name), name
    rows, centers, stride = (int(defined[n]) for n in names[:3])
    # the two tiles; per row its index and threshold; per row from 4 warps best and second-best
    # (or the nearest, a double) and a label; per row |x|^2
    layout = 4 * (rows + centers) * stride + 16 * rows + 4 * rows * (8 + 4) + 4 * rows
    assert layout == cuda_launch.MMA_SHARED_BYTES
    assert cuda_launch.MMA_SHARED_BYTES <= cuda_launch.SHARED_BYTES
    X, C = random_problem(300, 5, 7)
    buffers = [np.empty(1) for _ in range(5)]
    for rescore in (False, True):
        launch = cuda_launch.assign_mma_launch(X, mma_scorer(C, "high"), *buffers, rescore=rescore)
        assert (launch.grid, launch.threads) == (3, cuda_launch.MMA_THREADS)
    vector = {}  # the `vector` argument: 16-byte tile loads where d % 4 == 0 and aligned
    for d in (8, 5):
        X, C = random_problem(300, d, 7)
        launch = cuda_launch.assign_mma_launch(X, mma_scorer(C, "high"), *buffers, rescore=False)
        vector[d] = int(launch.arguments[10])
    assert vector == {8: 1, 5: 0}


def test_emulator_refuses_what_a_gpu_would(gpu):
    """Its own guard: more shared memory than it has is an error, not a silent overrun."""
    X = np.zeros((4, 2), dtype=np.float32)
    sums, counts = np.zeros((1, 2)), np.zeros(1)
    launch = segment_sum_launch(
        X, np.ones(4, np.float32), np.zeros(4, np.int32), None, sums, counts
    )
    kernel = gpu.get_function(launch.kernel_name)
    with pytest.raises(ValueError, match="refused"):
        kernel((1,), (launch.threads,), launch.arguments, shared_mem=1 << 20)


# ---- cupy.py's own Python, with NumPy standing in for CuPy -------------------------------------


class _FakeDevice:
    id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _HostArray(np.ndarray):
    """A NumPy array with CuPy's ``.device`` (a context manager with an ``id``)."""

    @property
    def device(self):
        return _FakeDevice()


@pytest.fixture
def cupy_on_the_emulator(gpu, monkeypatch):
    """``_backends.cupy`` with its ``cupy`` replaced by NumPy (arrays as ``_HostArray``) and its
    launches run by the emulator: the backend's Python (buffers, blocks, launch arguments, the
    fall-back to cuBLAS) runs on a machine where CuPy imports but no GPU answers."""
    pytest.importorskip("cupy")
    import contextlib
    import types

    from kmeans_xp._backends import cupy as _cupy

    def host(function):
        return lambda *args, **kwargs: np.asarray(function(*args, **kwargs)).view(_HostArray)

    fake = types.SimpleNamespace(
        empty=host(np.empty), zeros=host(np.zeros), full=host(np.full), asarray=host(np.asarray),
        ascontiguousarray=host(np.ascontiguousarray), matmul=host(np.matmul),
        cumsum=host(np.cumsum), int32=np.int32, int64=np.int64, uint64=np.uint64,
        float32=np.float32, float64=np.float64,
    )  # fmt: skip
    monkeypatch.setattr(_cupy, "cupy", fake)
    monkeypatch.setattr(_cupy, "_run", lambda launch: run(gpu, launch))
    monkeypatch.setattr(_cupy, "_multiprocessors", lambda device_id: 1)
    monkeypatch.setattr(_cupy, "_compute_capability", lambda device_id: 90)
    monkeypatch.setattr(_cupy, "matmul_precision", lambda *a: contextlib.nullcontext())
    return _cupy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_small_pass", [True, False])
def test_cupy_pass_glue_on_the_emulator(
    use_options, cupy_on_the_emulator, monkeypatch, dtype, use_small_pass
):
    """``cupy.assign_and_sum`` over three blocks, fused or through cuBLAS's stand-in: labels,
    sums and counts of the float64 reference; a second pass over its buffers counts the five
    labels it changes back; ``CertifiedAssign`` alone gives the same labels."""
    import functools

    import array_api_compat.numpy as xp

    from kmeans_xp._core.passes import standard_assign_and_sum
    from kmeans_xp._core.primitives import PassBuffers

    _cupy = cupy_on_the_emulator
    use_options(small_pass=use_small_pass)
    rng = np.random.default_rng(0)
    n, d, k = 450, 8, 12  # the emulator runs a warp per row on the cuBLAS path: keep n small
    X = (rng.normal(size=(n, d)) + 50.0).astype(dtype)
    offset = X.mean(axis=0).astype(dtype)
    C = (X - offset)[:k].copy()
    w = rng.uniform(size=n).astype(dtype)
    X, C, w, offset = (a.view(_HostArray) for a in (X, C, w, offset))
    standard = functools.partial(
        standard_assign_and_sum, make_assign=functools.partial(_cupy.CertifiedAssign, xp=xp)
    )
    args = (X, C, w, offset, _cupy.segment_sum)
    labels, partial, sums, counts = _cupy.assign_and_sum(
        *args, block_rows=160, xp=xp, standard=standard
    )
    centered = np.asarray(X - offset)
    expected = nearest64(centered, np.asarray(C))
    np.testing.assert_array_equal(np.asarray(labels), expected)
    expected_sums, expected_counts = segment_sum(centered, expected, np.asarray(w), k, xp=np)
    np.testing.assert_allclose(np.asarray(sums), expected_sums, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.asarray(counts), expected_counts, rtol=1e-12)
    buffers = PassBuffers(labels, partial)
    buffers.labels[:5] = (buffers.labels[:5] + 1) % k
    _cupy.assign_and_sum(*args, block_rows=160, xp=xp, out=buffers, standard=standard)
    assert int(buffers.n_changed) == 5
    assigned, _ = _cupy.CertifiedAssign(C, xp=xp)(X - offset)
    np.testing.assert_array_equal(np.asarray(assigned), expected)
    # X centered once for the whole fit (``lloyd``'s x_centered): the pass gets offset None and
    # gives the same labels and sums (to the order of atomic additions, which varies).
    again = _cupy.assign_and_sum(
        (X - offset).view(_HostArray), C, w, None, _cupy.segment_sum, block_rows=160, xp=xp,
        standard=standard,
    )  # fmt: skip
    np.testing.assert_array_equal(np.asarray(again[0]), expected)
    np.testing.assert_allclose(np.asarray(again[2]), np.asarray(sums), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(again[3]), np.asarray(counts), rtol=1e-12)


def record_launches(_cupy, monkeypatch) -> set:
    """The names of the kernels ``_backends.cupy`` launches from now on (they still run)."""
    launched = set()
    run_launch = _cupy._run

    def record(launch):
        launched.add(launch.kernel_name)
        run_launch(launch)

    monkeypatch.setattr(_cupy, "_run", record)
    return launched


@pytest.mark.parametrize("precision", ["high", "tf32x3"])
@pytest.mark.parametrize("use_mma", [True, False])
def test_cupy_tensor_core_glue_on_the_emulator(
    use_options, cupy_on_the_emulator, monkeypatch, precision, use_mma
):
    """``cupy.CertifiedAssign`` in a tensor-core precision: with ``use_mma`` the fused kernel
    and the rescoring of the rows it lists (nothing through cuBLAS), else cuBLAS's stand-in and
    ``assign_certified``; float64 labels either way, for rows well apart and rows on bisectors.
    On a card before sm_80 the fused kernel is not used."""
    _cupy = cupy_on_the_emulator
    import array_api_compat.numpy as xp

    use_options(mma=use_mma)
    launched = record_launches(_cupy, monkeypatch)
    for X, C in (random_problem(300, 70, 20), near_ties(n=200, d=70, k=20)):
        X, C = X.view(_HostArray), C.view(_HostArray)
        labels, _ = _cupy.CertifiedAssign(C, xp=xp, precision=precision)(X)
        np.testing.assert_array_equal(np.asarray(labels), nearest64(X, C))
    if use_mma:
        fused = "assign_mma_tf32x3" if precision == "tf32x3" else "assign_mma_tf32"
        assert launched == {fused, fused.replace("assign", "rescore")}
    else:
        split = {"split_for_tf32_float"} if precision == "tf32x3" else set()
        assert launched == {"assign_certified_float"} | split
    monkeypatch.setattr(_cupy, "_compute_capability", lambda device_id: 75)
    assert not _cupy.CertifiedAssign(C, xp=xp, precision=precision).mma


@pytest.mark.parametrize("use_mma", [True, False])
def test_cupy_pass_takes_tensor_cores_at_small_k_d_too(
    use_options, cupy_on_the_emulator, monkeypatch, use_mma
):
    """A shape the one-kernel small pass takes (d = 8, k = 12), fitted in "tf32x3": with
    ``use_mma`` the pass is the tensor-core assignment and ``segment_sum``'s sums, else the small
    pass (in float32: "tf32x3" then changes nothing); the labels and sums of the float64
    reference either way."""
    import functools

    import array_api_compat.numpy as xp

    from kmeans_xp._core.passes import standard_assign_and_sum

    _cupy = cupy_on_the_emulator
    use_options(mma=use_mma)
    launched = record_launches(_cupy, monkeypatch)
    X, C = random_problem(300, 8, 12)
    w = np.ones(300, dtype=np.float32)
    X, C, w = (a.view(_HostArray) for a in (X, C, w))
    make_assign = functools.partial(_cupy.CertifiedAssign, xp=xp, precision="tf32x3")
    standard = functools.partial(standard_assign_and_sum, make_assign=make_assign)
    labels, _, sums, counts = _cupy.assign_and_sum(
        X, C, w, None, _cupy.segment_sum, block_rows=1000, xp=xp, standard=standard,
        precision="tf32x3",
    )  # fmt: skip
    expected = nearest64(X, C)
    np.testing.assert_array_equal(np.asarray(labels), expected)
    expected_sums, expected_counts = segment_sum(np.asarray(X), expected, np.asarray(w), 12, xp=np)
    np.testing.assert_allclose(np.asarray(sums), expected_sums, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(counts), expected_counts)
    if use_mma:
        assert launched == {"assign_mma_tf32x3", "rescore_mma_tf32x3", "sum_shared_float"}
    else:
        assert launched == {"lloyd_pass_small_float_8"}


@pytest.mark.parametrize("use_mma", [True, False])
def test_x_is_centered_once_where_tensor_cores_replace_the_small_pass(
    use_options, cupy_on_the_emulator, monkeypatch, use_mma
):
    """At a small-k·d shape the fused pass subtracts the offset in its kernel (no copy); where
    the tensor-core assignment takes the fit instead, its passes would copy X − offset block by
    block, so X is centered once, as on the cuBLAS path."""
    from kmeans_xp import _backends

    use_options(mma=use_mma)
    monkeypatch.setattr(_backends, "pass_runs_cupy_kernels", lambda xp, device: True)
    monkeypatch.setattr(_backends, "is_cupy", lambda xp: True)
    X = np.arange(120, dtype=np.float32).reshape(30, 4).view(_HostArray)
    offset = np.full(4, 2.0, dtype=np.float32).view(_HostArray)
    for precision in ("tf32x3", "highest"):
        centered = _backends.centered_for_passes(
            X, offset, 3, xp=np, device="gpu", budget=10**6, precision=precision
        )
        if use_mma and precision == "tf32x3":
            np.testing.assert_array_equal(centered, np.asarray(X) - 2.0)
        else:
            assert centered is None


def test_cupy_segment_sum_glue_on_the_emulator(cupy_on_the_emulator):
    """``cupy.segment_sum`` where k·(d+1) sums exceed shared memory: rows grouped by
    ``order_by_label`` (label_count, cumsum, label_scatter), then sum_sorted."""
    import array_api_compat.numpy as xp

    _cupy = cupy_on_the_emulator
    rng = np.random.default_rng(6)
    n, d, k = 600, 64, 100
    assert segment_sum_sorts(k, d)
    X = rng.normal(size=(n, d)).astype(np.float32)
    labels = rng.integers(0, k - 1, size=n).astype(np.int32)  # cluster k - 1 empty
    w = rng.uniform(size=n).astype(np.float32)
    sums, counts = _cupy.segment_sum(
        X.view(_HostArray), labels.view(_HostArray), w.view(_HostArray), k, xp=xp
    )
    expected_sums, expected_counts = segment_sum(X, labels, w, k, xp=np)
    np.testing.assert_allclose(np.asarray(sums), expected_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(counts), expected_counts, rtol=1e-12)
    assert counts[k - 1] == 0


@pytest.mark.parametrize(
    ("chunk_rows", "keep_trials", "fused_sampling"),
    [(None, True, True), (128, True, True), (128, True, False), (128, False, True)],
)
def test_cupy_kmeans_plusplus_glue_on_the_emulator(
    use_options, cupy_on_the_emulator, monkeypatch, chunk_rows, keep_trials, fused_sampling
):
    """``cupy.kmeans_plusplus_indices`` (four launches per center, two of them the sampling's
    over two parts of 200 rows; or the standard sampling) picks the rows the standard version
    picks from the same seed, on weighted data far from the origin; it declines (drawing
    nothing) for X that is not C-contiguous; with sampling chunks of 128 rows too (as past 4 M
    rows), and without kept trial distances (as past 1 GiB of them: the winner's distances
    from X again). (float32 only: seconds of emulation each; the float64 kernels are tested
    above.)"""

    use_options(fused_kmeanspp_sampling=fused_sampling)
    if chunk_rows is not None:
        use_options(sampling_chunk_rows=chunk_rows)
    if not keep_trials:
        use_options(trial_distances_max_bytes=0)
    dtype = np.float32
    import array_api_compat.numpy as xp

    from kmeans_xp._algorithms.init import kmeans_plusplus_indices

    _cupy = cupy_on_the_emulator
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(400, 6)) * 4.0 + 100.0).astype(dtype)
    X[:150] += 40.0
    w = rng.uniform(0.5, 2.0, size=400).astype(dtype)
    offset = X.mean(axis=0).astype(dtype)
    expected = kmeans_plusplus_indices(
        X, 9, w, np.random.default_rng(11), offset=offset, n_local_trials=4, block_rows=128,
        xp=np,
    )  # fmt: skip
    picked = _cupy.kmeans_plusplus_indices(
        X.view(_HostArray), 9, w.view(_HostArray), np.random.default_rng(11),
        offset=offset.view(_HostArray), n_local_trials=4, xp=xp,
    )  # fmt: skip
    np.testing.assert_array_equal(np.asarray(picked), expected)
    generator = np.random.default_rng(0)
    fortran = np.asfortranarray(X).view(_HostArray)
    assert (
        _cupy.kmeans_plusplus_indices(
            fortran, 9, w, generator, offset=offset, n_local_trials=4, xp=xp
        )
        is None
    )
    assert generator.uniform() == np.random.default_rng(0).uniform()  # nothing drawn
    with pass_options(fused_kmeanspp=False):  # the benchmark's switch to the standard one
        assert (
            _cupy.kmeans_plusplus_indices(
                X.view(_HostArray), 9, w, generator, offset=offset, n_local_trials=4, xp=xp
            )
            is None
        )


def test_torch_cuda_pass_glue_on_the_emulator(cupy_on_the_emulator, monkeypatch):
    """``torch_cuda.cuda_assign_and_sum`` hands tensors to CuPy's fused pass through DLPack
    (here: CPU tensors shared with NumPy arrays) and writes the next pass's labels into the
    previous pass's tensors; shapes the fused pass does not take go to ``standard``."""
    torch = pytest.importorskip("torch")
    import contextlib
    import functools

    import array_api_compat.torch as xp
    import cupy

    from kmeans_xp._backends import torch_cpu, torch_cuda
    from kmeans_xp._core.passes import standard_assign_and_sum
    from kmeans_xp._core.primitives import PassBuffers

    monkeypatch.setattr(torch_cuda, "_cupy_backend", lambda: cupy_on_the_emulator)
    monkeypatch.setattr(torch_cuda, "_on_torch_stream", lambda tensor: contextlib.nullcontext())
    monkeypatch.setattr(cupy, "from_dlpack", lambda tensor: tensor.numpy().view(_HostArray))
    rng = np.random.default_rng(1)
    n, d, k = 300, 5, 7
    X = rng.normal(size=(n, d)).astype(np.float32)
    C = X[:k].copy()
    w = np.ones(n, dtype=np.float32)
    args = [torch.from_numpy(a) for a in (X, C, w, np.zeros(d, np.float32))]
    standard_calls = []

    def standard(*a, **kw):
        standard_calls.append(a[1].shape)
        return standard_assign_and_sum(
            *a, make_assign=functools.partial(torch_cuda.CertifiedAssign, xp=xp), **kw
        )

    labels, partial, sums, counts = torch_cuda.cuda_assign_and_sum(
        *args, torch_cpu.segment_sum, block_rows=128, xp=xp, standard=standard
    )
    assert standard_calls == []
    np.testing.assert_array_equal(labels.numpy(), nearest64(X, C))
    expected_sums, expected_counts = segment_sum(X, nearest64(X, C), w, k, xp=np)
    np.testing.assert_allclose(sums.numpy(), expected_sums, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(counts.numpy(), expected_counts)
    buffers = PassBuffers(labels, partial)
    labels[:3] = (labels[:3] + 1) % k
    returned = torch_cuda.cuda_assign_and_sum(
        *args, torch_cpu.segment_sum, block_rows=128, xp=xp, out=buffers, standard=standard
    )
    assert returned[0] is labels  # written in place
    assert isinstance(buffers.n_changed, torch.Tensor)  # read with the fit's other scalars
    assert int(buffers.n_changed) == 3
    np.testing.assert_array_equal(labels.numpy(), nearest64(X, C))
    # d = 70: beyond the fused pass.
    wide = [torch.from_numpy(np.tile(a, (1, 14))) for a in (X, C)]
    wide += [torch.from_numpy(w), torch.zeros(70)]
    torch_cuda.cuda_assign_and_sum(
        *wide, torch_cpu.segment_sum, block_rows=128, xp=xp, standard=standard
    )
    assert standard_calls == [(k, 70)]
