"""The certified assignment: labels equal a float64 argmin even where float32 (or TF32) products
cannot tell the two nearest centers apart; the GPU kernels equal the standard-only version."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from helpers import near_ties, nearest64, sq_distances64

import kmeans_xp._algorithms.lloyd as lloyd_module
import kmeans_xp._core.certified as certified
from benchmarks.certified_rescore import tf32_matmul
from kmeans_xp import KMeans, kmeans
from kmeans_xp._core.certified import (
    PRECISIONS,
    CertifiedAssign,
    score_error_coefficients,
    split_for_tf32,
)
from kmeans_xp._core.primitives import assign_block, segment_sum, squared_norms
from kmeans_xp._lib.options import pass_options


def exact_scores(X, C) -> np.ndarray:
    """‖c‖² − 2·x·c of float32 operands, exactly enough (float64 with explicit differences)."""
    return sq_distances64(X, C) - (np.asarray(X, dtype=np.float64) ** 2).sum(axis=1)[:, None]


# ---- the error bound ------------------------------------------------------------------------


def tf32x3_matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A "tf32x3" product emulated on the CPU: split operands (K = 3d), TF32-truncated."""
    rows = split_for_tf32(A, xp=np, tail_at=2)
    return tf32_matmul(rows, split_for_tf32(np.ascontiguousarray(B.T), xp=np, tail_at=1).T)


def score_errors(X, C, matmul):
    """|computed − exact| of every score, and the bound's a, b for the centers' norms."""
    c_sq = (C.astype(np.float64) ** 2).sum(axis=1).astype(np.float32)
    computed = matmul(X, (-2.0 * C).T) + c_sq[None, :]
    return np.abs(computed.astype(np.float64) - exact_scores(X, C))


@pytest.mark.parametrize(
    ("precision", "matmul"),
    [("highest", np.matmul), ("high", tf32_matmul), ("tf32x3", tf32x3_matmul)],
)
def test_error_bound_holds_for_every_score(precision, matmul):
    X, C = near_ties(n=2000, d=64, k=16)
    X = X + np.random.default_rng(1).normal(scale=30.0, size=X.shape).astype(np.float32)
    error = score_errors(X, C, matmul)
    norm_max = float(np.linalg.norm(C, axis=1).max())
    x_norms = np.linalg.norm(X.astype(np.float64), axis=1)[:, None]
    a, b = score_error_coefficients(64, 4, precision, norm_max)
    assert np.all(error <= a * x_norms + b)
    if precision == "high":
        # TF32's error is far above float32's bound: "high" needs its wider one.
        a32, b32 = score_error_coefficients(64, 4, "highest", norm_max)
        assert np.any(error > a32 * x_norms + b32)
    if precision == "tf32x3":
        # The split recovers float32-like accuracy from the same TF32 products.
        assert error.max() < score_errors(X, C, tf32_matmul).max() / 100


def test_bound_is_wider_for_tf32_and_larger_data():
    low = score_error_coefficients(32, 4, "highest", 1.0)
    high = score_error_coefficients(32, 4, "high", 1.0)
    split = score_error_coefficients(32, 4, "tf32x3", 1.0)
    assert high[0] > 100 * low[0]
    assert low[0] < split[0] < high[0] / 10
    assert high[1] == low[1] == split[1]
    assert score_error_coefficients(32, 4, "highest", 10.0)[1] == pytest.approx(100 * low[1])
    assert score_error_coefficients(32, 8, "highest", 1.0)[0] < 1e-12
    # Past n·u = 1/2 no bound is known: every row (of nonzero norm) must be rescored.
    assert score_error_coefficients(3_000_000, 4, "tf32x3", 1.0)[0] > 1e15


def test_split_for_tf32_is_exact_with_tf32_heads(xp):
    rng = np.random.default_rng(0)
    A = (rng.normal(size=(40, 5)) * 10.0 ** rng.integers(-30, 30, size=(40, 5))).astype(np.float32)
    A[0, :] = [0.0, -0.0, 1.0, -3.0, np.float32(1 + 2**-23)]
    for tail_at in (1, 2):
        out = xp.to_numpy(split_for_tf32(xp.asarray(A), xp=xp.xp, tail_at=tail_at))
        assert out.shape == (40, 15)
        assert out.dtype == np.float32
        groups = [out[:, g * 5 : (g + 1) * 5] for g in range(3)]
        head = groups[0] if tail_at != 0 else groups[1]
        tail = groups[tail_at]
        for g in range(3):
            if g != tail_at:
                np.testing.assert_array_equal(groups[g], head)
        np.testing.assert_array_equal(head.astype(np.float64) + tail, A.astype(np.float64))
        assert np.all(head.view(np.uint32) & np.uint32(0x1FFF) == 0)  # 10 mantissa bits
        assert np.all(np.abs(tail) <= 2.0**-10 * np.abs(A))
    assert np.any(out[:, 10:] != 0)  # the tails carry something


# ---- labels -----------------------------------------------------------------------------------


def test_plain_float32_assignment_gets_near_ties_wrong():
    """The data of the tests below are hard: float32's GEMM form mislabels some rows."""
    X, C = near_ties()
    labels, _ = assign_block(X, C, squared_norms(C, xp=np), xp=np)
    assert np.count_nonzero(labels != nearest64(X, C)) > 10


def test_labels_equal_the_float64_argmin(xp):
    X, C = near_ties()
    assign = CertifiedAssign(xp.asarray(C), xp=xp.xp)
    labels, partial = assign(xp.asarray(X))
    np.testing.assert_array_equal(xp.to_numpy(labels), nearest64(X, C))
    best = exact_scores(X, C).min(axis=1)
    scale = float(np.abs(best).max())
    np.testing.assert_allclose(xp.to_numpy(partial), best, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("precision", ["high", "tf32x3"])
def test_tf32_products_are_certified_too(precision):
    X, C = near_ties()
    assign = CertifiedAssign(C, xp=np, precision=precision, matmul=tf32_matmul)
    labels, _ = assign(X)
    np.testing.assert_array_equal(labels, nearest64(X, C))
    matmul = tf32_matmul if precision == "high" else tf32x3_matmul
    plain = np.argmin(matmul(X, (-2.0 * C).T) + squared_norms(C, xp=np), axis=1)
    # What the products alone get wrong: many rows with TF32, some even with the split.
    assert np.count_nonzero(plain != nearest64(X, C)) > (100 if precision == "high" else 10)


def test_split_products_are_certified_on_every_backend(xp):
    """The "tf32x3" mode on any namespace: split operands (K = 3d) through its own matmul."""
    X, C = near_ties()
    labels, partial = CertifiedAssign(xp.asarray(C), xp=xp.xp, precision="tf32x3")(xp.asarray(X))
    np.testing.assert_array_equal(xp.to_numpy(labels), nearest64(X, C))
    best = exact_scores(X, C).min(axis=1)
    np.testing.assert_allclose(xp.to_numpy(partial), best, rtol=0, atol=1e-5 * np.abs(best).max())


def test_every_row_rescored_in_chunks(xp, monkeypatch):
    """With a bound that flags every row, and rescoring 3 rows at a time, labels are still the
    float64 argmin (and the partials the exact scores)."""
    monkeypatch.setattr(certified, "_MARGIN", 1e12)
    monkeypatch.setattr(certified, "_RECHECK_ELEMENTS", 3 * 8)
    X, C = near_ties(n=50)
    labels, partial = CertifiedAssign(xp.asarray(C), xp=xp.xp)(xp.asarray(X))
    np.testing.assert_array_equal(xp.to_numpy(labels), nearest64(X, C))
    np.testing.assert_allclose(xp.to_numpy(partial), exact_scores(X, C).min(axis=1), rtol=1e-6)


def test_float64_and_single_center_need_no_certificate(xp):
    X, C = near_ties(n=200)
    for centers, rows in [(C.astype(np.float64), X.astype(np.float64)), (C[:1], X)]:
        assign = CertifiedAssign(xp.asarray(centers), xp=xp.xp)
        labels, _ = assign(xp.asarray(rows))
        np.testing.assert_array_equal(xp.to_numpy(labels), nearest64(rows, centers))
    assert not CertifiedAssign(xp.asarray(C.astype(np.float64)), xp=xp.xp).certify


def test_torch_best_two_equals_the_standard_one():
    torch = pytest.importorskip("torch")
    from kmeans_xp._backends.torch_cuda import best_two
    from kmeans_xp._core.certified import standard_best_two
    from kmeans_xp._lib.compat import get_namespace

    scores = torch.asarray(np.random.default_rng(0).normal(size=(300, 17)).astype(np.float32))
    scores[:5, 3] = scores[:5, 9] = -10.0  # exact ties: gap 0 either way
    got = best_two(scores)
    expected = standard_best_two(scores, xp=get_namespace(scores))
    np.testing.assert_array_equal(got[0][5:].numpy(), expected[0][5:].numpy())
    for g, e in zip(got[1:], expected[1:], strict=True):
        np.testing.assert_array_equal(g.numpy(), e.numpy())
    assert set(got[0][:5].tolist()) <= {3, 9}
    X, C = near_ties()
    assign = CertifiedAssign(torch.asarray(C), xp=get_namespace(scores), best_two=best_two)
    np.testing.assert_array_equal(assign(torch.asarray(X))[0].numpy(), nearest64(X, C))


# ---- the estimator ------------------------------------------------------------------------------


def test_matmul_precision_is_validated():
    X = np.random.default_rng(0).normal(size=(50, 2))
    for bad in ["medium", "float32", None]:
        with pytest.raises(ValueError, match=r"matmul_precision must be one of .*got"):
            KMeans(2, matmul_precision=bad).fit(X)
    with pytest.raises(ValueError, match="matmul_precision="):
        kmeans(X, 2, matmul_precision="tf32")


def test_auto_precision_is_split_tf32_only_where_it_was_measured_faster(monkeypatch):
    """ "auto": "tf32x3" for float32 CuPy data (here NumPy standing in for CuPy) on a card with
    TF32 tensor cores and k >= 256; "highest" for float64, fewer centers, an older card, X
    streamed from the host, and every other library. Explicit modes pass through."""
    import kmeans_xp._backends as backends

    resolve = backends.resolve_precision
    X32 = np.zeros((10, 3), dtype=np.float32)
    k = backends.AUTO_TF32X3_MIN_CLUSTERS
    assert resolve("auto", X32, 10_000, xp=np) == "highest"  # not CuPy
    monkeypatch.setattr(backends, "is_cupy", lambda ns: ns is np)
    monkeypatch.setattr(backends, "_tf32_tensor_cores", lambda X, xp: True)
    assert resolve("auto", X32, k, xp=np) == "tf32x3"
    assert resolve("auto", X32, k - 1, xp=np) == "highest"
    assert resolve("auto", X32.astype(np.float64), k, xp=np) == "highest"

    class Streamed:  # a HostRows stand-in
        is_host_rows = True
        dtype = np.float32

    assert resolve("auto", Streamed(), k, xp=np) == "highest"
    for mode in certified.PRECISIONS:
        assert resolve(mode, X32, 2, xp=np) == mode
    monkeypatch.setattr(backends, "_tf32_tensor_cores", lambda X, xp: False)  # before sm_80
    assert resolve("auto", X32, k, xp=np) == "highest"


def test_auto_precision_on_torch_follows_cupys_kernels(backend_named, monkeypatch):
    """torch tensors get split TF32 where their passes run CuPy's kernels (CUDA tensors with
    CuPy installed), as CuPy arrays do; on the CPU, or on CUDA without CuPy, "highest"."""
    import kmeans_xp._backends as backends

    torch = backend_named("torch").module
    X32 = torch.zeros((10, 3), dtype=torch.float32)
    xp = backend_named("torch").xp
    k = backends.AUTO_TF32X3_MIN_CLUSTERS
    monkeypatch.setattr(backends, "_tf32_tensor_cores", lambda X, xp: True)
    assert backends.resolve_precision("auto", X32, k, xp=xp) == "highest"  # a CPU tensor
    kernels = {"run": False}
    monkeypatch.setattr(backends, "pass_runs_cupy_kernels", lambda ns, device: kernels["run"])
    assert backends.resolve_precision("auto", X32, k, xp=xp) == "highest"  # CUDA, no CuPy
    kernels["run"] = True
    assert backends.resolve_precision("auto", X32, k, xp=xp) == "tf32x3"
    assert backends.resolve_precision("auto", X32.double(), k, xp=xp) == "highest"


def test_fit_predict_and_score_resolve_auto_precision(monkeypatch):
    """The estimator's default reaches no pass unresolved: fit, predict and score each ask
    ``resolve_precision`` with "auto" and pass on its answer."""
    import kmeans_xp._algorithms.fit as fit_module
    import kmeans_xp._estimators.fitted as fitted_module

    asked, given = [], []
    real = fit_module.resolve_precision

    def spy(precision, X, n_clusters, *, xp):
        asked.append((precision, n_clusters))
        return real(precision, X, n_clusters, xp=xp)

    def assign_spy(*args, precision, **kwargs):
        given.append(precision)
        return labels_and_inertia(*args, precision=precision, **kwargs)

    from kmeans_xp._algorithms.lloyd import labels_and_inertia

    for module in (fit_module, fitted_module):  # the fit; predict and score
        monkeypatch.setattr(module, "resolve_precision", spy)
        monkeypatch.setattr(module, "labels_and_inertia", assign_spy)
    X = np.random.default_rng(0).normal(size=(60, 3))
    km = KMeans(3, random_state=0).fit(X)
    km.predict(X)
    km.score(X)
    assert km.matmul_precision == "auto"
    assert asked == [("auto", 3)] * 3
    assert given == ["highest"] * 3  # the fit's final labels, predict, score


def test_high_precision_changes_nothing_on_a_cpu(xp):
    rng = np.random.default_rng(0)
    X = xp.asarray(rng.normal(size=(500, 4)).astype(np.float32))
    fits = [
        KMeans(5, random_state=0, matmul_precision=p, algorithm="lloyd").fit(X) for p in PRECISIONS
    ]
    for fit in fits[1:]:
        np.testing.assert_array_equal(xp.to_numpy(fits[0].labels_), xp.to_numpy(fit.labels_))
        assert fits[0].inertia_ == fit.inertia_


def test_out_of_memory_retries_with_smaller_blocks(xp, monkeypatch):
    """A pass that cannot allocate runs again with half the rows per block (here: until
    blocks have at most 64 rows), and the fit is the one it would have been."""
    rng = np.random.default_rng(0)
    X = xp.asarray(rng.normal(size=(1000, 3)))
    expected = KMeans(4, random_state=0, algorithm="lloyd").fit(X)
    seen = []

    def refusing(original):
        def run(*args, block_rows, **kwargs):
            seen.append(block_rows)
            if block_rows > 64:
                raise MemoryError("out of memory (test)")
            return original(*args, block_rows=block_rows, **kwargs)

        return run

    import kmeans_xp._backends.numpy as numpy_backend

    monkeypatch.setattr(numpy_backend, "assign_and_sum", refusing(numpy_backend.assign_and_sum))
    monkeypatch.setattr(
        lloyd_module, "standard_assign_and_sum", refusing(lloyd_module.standard_assign_and_sum)
    )
    monkeypatch.setattr(
        lloyd_module,
        "standard_labels_and_inertia",
        refusing(lloyd_module.standard_labels_and_inertia),
    )
    got = KMeans(4, random_state=0, algorithm="lloyd").fit(X)
    assert max(seen) > 64
    assert min(seen) <= 64
    np.testing.assert_array_equal(xp.to_numpy(got.labels_), xp.to_numpy(expected.labels_))
    np.testing.assert_allclose(
        xp.to_numpy(got.cluster_centers_), xp.to_numpy(expected.cluster_centers_), rtol=1e-12
    )


def test_out_of_memory_with_one_row_blocks_is_raised():
    def never(*args, block_rows, **kwargs):
        raise MemoryError("out of memory (test)")

    with pytest.raises(MemoryError, match="test"):
        lloyd_module.with_smaller_blocks_on_oom(never, 8, xp=np, device="cpu")


# ---- the GPU versions against the standard-only ones --------------------------------------------


@pytest.fixture
def cupy_backend(backend_named):
    backend_named("cupy")  # skips without a CUDA device
    from kmeans_xp._backends import cupy as _cupy

    return _cupy


@pytest.mark.parametrize(("n", "d", "k"), [(3000, 16, 8), (500, 1, 5), (64, 7, 64), (300, 33, 1)])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("every_row_ambiguous", [False, True])
@pytest.mark.parametrize("small_pass", [True, False])
def test_cupy_kernel_equals_standard(
    use_options, cupy_backend, n, d, k, precision, every_row_ambiguous, small_pass, monkeypatch
):
    """Labels equal the float64 argmin; with a bound so wide that every row is ambiguous, the
    kernel's exact rescoring decides every label. These shapes are small enough for the fused
    small-k·d kernel; ``small_pass=False`` sends them through cuBLAS and assign_certified."""
    import cupy

    use_options(small_pass=small_pass)
    if every_row_ambiguous:
        monkeypatch.setattr(certified, "_MARGIN", 1e12)

    rng = np.random.default_rng(n + d + k)
    X = rng.normal(size=(n, d)).astype(np.float32)
    C = X[rng.choice(n, size=k, replace=False)]
    X_gpu = cupy.asarray(np.asfortranarray(X))  # not C-contiguous: the kernel copies it
    xp = cupy_backend_namespace(X_gpu)
    scorer = cupy_backend.CertifiedAssign(cupy.asarray(C), xp=xp, precision=precision)
    labels, partial = scorer(X_gpu)
    np.testing.assert_array_equal(labels.get(), nearest64(X, C))
    best = exact_scores(X, C).min(axis=1)
    if precision == "high" and scorer.small is None and not every_row_ambiguous:
        # TF32 products: a row's partial distance is its best TF32 score, within the bound the
        # certificate uses (a·‖x‖ + b); only ambiguous rows are rescored. The fit's inertia_ is
        # computed from the differences at the end, not from these.
        error = np.abs(partial.get().astype(np.float64) - best)
        bound = scorer.a * np.linalg.norm(X.astype(np.float64), axis=1) + scorer.b
        assert np.all(error <= bound * 1.01 + 1e-6)
    else:
        np.testing.assert_allclose(partial.get(), best, rtol=1e-5, atol=1e-4)
    Xh, Ch = near_ties()
    labels, _ = cupy_backend.CertifiedAssign(cupy.asarray(Ch), xp=xp, precision=precision)(
        cupy.asarray(Xh)
    )
    np.testing.assert_array_equal(labels.get(), nearest64(Xh, Ch))


@pytest.mark.parametrize("name", ["cupy", "torch_cuda"])
def test_gpu_default_fit_takes_split_tf32_at_large_k(cupy_backend, backend_named, name):
    """A default fit of float32 CuPy data, or of a torch CUDA tensor (CuPy's kernels through
    DLPack), with k >= 256 runs split-TF32 products on an sm_80+ card ("auto"), with the
    float64 argmin's labels and the centers of float32 products."""
    import cupy

    from kmeans_xp._backends import AUTO_TF32X3_MIN_CLUSTERS, resolve_precision

    backend = backend_named(name)
    k = AUTO_TF32X3_MIN_CLUSTERS
    rng = np.random.default_rng(7)
    X = rng.normal(size=(4000, 72)).astype(np.float32)  # d > 64: no one-kernel small pass
    X_gpu = backend.asarray(X)
    capable = cupy_backend._compute_capability(cupy.cuda.Device().id) >= 80
    mode = resolve_precision("auto", X_gpu, k, xp=backend.xp)
    assert mode == ("tf32x3" if capable else "highest")
    fits = [
        KMeans(k, init=X[:k], max_iter=3, tol=0, matmul_precision=p).fit(X_gpu)
        for p in ("auto", "highest")
    ]
    centers = backend.to_numpy(fits[0].cluster_centers_)
    np.testing.assert_array_equal(backend.to_numpy(fits[0].predict(X_gpu)), nearest64(X, centers))
    np.testing.assert_allclose(
        centers, backend.to_numpy(fits[1].cluster_centers_), rtol=1e-5, atol=1e-6
    )
    assert fits[0].inertia_ == pytest.approx(fits[1].inertia_, rel=1e-6)


@pytest.fixture
def cupy_mma(use_options, cupy_backend, monkeypatch):
    """The CuPy backend with ``assign_mma`` switched on (skipped on cards before sm_80)."""
    import cupy

    if cupy_backend._compute_capability(cupy.cuda.Device().id) < 80:
        pytest.skip("no TF32 mma before sm_80")
    use_options(mma=True)
    return cupy_backend


@pytest.mark.parametrize(("n", "d", "k"), [(3000, 70, 20), (1000, 130, 260), (129, 65, 1)])
@pytest.mark.parametrize("precision", certified.TENSOR_CORE_PRECISIONS)
@pytest.mark.parametrize("every_row_ambiguous", [False, True])
def test_cupy_mma_gives_the_float64_argmin(
    cupy_mma, n, d, k, precision, every_row_ambiguous, monkeypatch
):
    """``assign_mma`` on tensor cores (shapes past the small-k·d pass): float64 labels, partials
    within the certificate's bound of the exact ones; with every row ambiguous all are
    rescored (but for k = 1: a row with no second center has nothing to settle, and keeps its
    tensor-core score, as on every path); near-ties settled."""
    import cupy

    if every_row_ambiguous:
        monkeypatch.setattr(certified, "_MARGIN", 1e12)
    rng = np.random.default_rng(n + d + k)
    X = rng.normal(size=(n, d)).astype(np.float32)
    C = X[rng.choice(n, size=k, replace=False)]
    xp = cupy_backend_namespace(cupy.asarray(C))
    scorer = cupy_mma.CertifiedAssign(cupy.asarray(C), xp=xp, precision=precision)
    assert scorer.mma
    labels, partial = scorer(cupy.asarray(np.asfortranarray(X)))  # copied contiguous first
    np.testing.assert_array_equal(labels.get(), nearest64(X, C))
    best = exact_scores(X, C).min(axis=1)
    if every_row_ambiguous and k > 1:  # all rescored in float64
        np.testing.assert_allclose(partial.get(), best, rtol=1e-5, atol=1e-4)
    else:
        error = np.abs(partial.get().astype(np.float64) - best)
        bound = scorer.a * np.linalg.norm(X.astype(np.float64), axis=1) + scorer.b
        assert np.all(error <= bound * 1.01 + 1e-6)
    Xh, Ch = near_ties(d=80)
    labels, _ = cupy_mma.CertifiedAssign(cupy.asarray(Ch), xp=xp, precision=precision)(
        cupy.asarray(Xh)
    )
    np.testing.assert_array_equal(labels.get(), nearest64(Xh, Ch))


@pytest.mark.parametrize("precision", certified.TENSOR_CORE_PRECISIONS)
def test_cupy_mma_fragments_on_the_card(cupy_mma, precision):
    """Small integers are exact in TF32 and their sums in float32 in any order: the tensor
    cores' partials equal |c|^2 - 2 x.c exactly, which a misread fragment layout would break."""
    import cupy

    rng = np.random.default_rng(11)
    n, d, k = 700, 75, 300
    X = rng.integers(-8, 9, size=(n, d)).astype(np.float32)
    C = rng.integers(-8, 9, size=(k, d)).astype(np.float32)
    xp = cupy_backend_namespace(cupy.asarray(C))
    labels, partial = cupy_mma.CertifiedAssign(cupy.asarray(C), xp=xp, precision=precision)(
        cupy.asarray(X)
    )
    labels = labels.get()
    np.testing.assert_array_equal(labels, nearest64(X, C))
    np.testing.assert_array_equal(partial.get(), exact_scores(X, C)[np.arange(n), labels])


@pytest.mark.parametrize(("n", "d", "k"), [(20000, 32, 64), (5000, 3, 7), (3000, 64, 16)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_fused_pass_equals_the_standard_pass(cupy_backend, n, d, k, dtype):
    """``cupy.assign_and_sum`` (one lloyd_pass_small launch per block) against the standard
    pass with the cuBLAS assignment: same labels, partials, sums and counts, with data far from
    the origin, zero weights, an empty cluster, several blocks, and the changed-label count of
    a second pass over the first's buffers."""
    import cupy

    from kmeans_xp._backends import cuda_launch
    from kmeans_xp._core.passes import standard_assign_and_sum
    from kmeans_xp._core.primitives import PassBuffers

    rng = np.random.default_rng(n + d)
    X = (rng.normal(size=(n, d)) + 1000.0).astype(dtype)
    offset = X.astype(np.float64).mean(axis=0).astype(dtype)
    C = (X - offset)[rng.choice(n, size=k, replace=False)].copy()
    C[k - 1] = 1e6  # an empty cluster
    w = rng.uniform(size=n).astype(dtype)
    w[::5] = 0.0
    X_gpu, C_gpu, w_gpu, o_gpu = (cupy.asarray(a) for a in (X, C, w, offset))
    xp = cupy_backend_namespace(X_gpu)
    standard = functools.partial(
        standard_assign_and_sum, make_assign=functools.partial(cupy_backend.CertifiedAssign, xp=xp)
    )
    args = (X_gpu, C_gpu, w_gpu, o_gpu, cupy_backend.segment_sum)
    assert cuda_launch.small_pass(d, k, dtype, accumulate=True) is not None
    with pass_options(small_pass=False):
        expected = standard(*args, block_rows=n, xp=xp)
    fused = cupy_backend.assign_and_sum(*args, block_rows=n // 3 + 1, xp=xp, standard=standard)
    labels = fused[0].get()
    np.testing.assert_array_equal(labels, expected[0].get())
    np.testing.assert_array_equal(labels, nearest64(X - offset, C))
    np.testing.assert_allclose(fused[1].get(), expected[1].get(), rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(fused[2].get(), expected[2].get(), rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(fused[3].get(), expected[3].get(), rtol=1e-12)
    assert fused[3].get()[k - 1] == 0
    buffers = PassBuffers(fused[0], fused[1])
    buffers.labels[:7] = (buffers.labels[:7] + 1) % k  # seven labels the next pass must change
    cupy_backend.assign_and_sum(*args, block_rows=n, xp=xp, out=buffers, standard=standard)
    assert int(buffers.n_changed) == 7
    np.testing.assert_array_equal(buffers.labels.get(), labels)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_cublas_scores_stay_within_the_bound(cupy_backend, precision):
    """The bound's assumptions about the card (TF32 inputs within 2⁻¹⁰, tensor-core sums within
    2 ulps per addition) against cuBLAS's real products: every score within a·‖x‖ + b. Also
    shows the modes differ: TF32 errors pass float32's bound, the split's stay far below TF32's."""
    import cupy

    rng = np.random.default_rng(3)
    X, C = near_ties(n=20000, d=256, k=64)
    X = X + rng.normal(scale=30.0, size=X.shape).astype(np.float32)
    assign = cupy_backend.CertifiedAssign(
        cupy.asarray(C), xp=cupy_backend_namespace(cupy.asarray(C)), precision=precision
    )
    X_gpu = cupy.asarray(X)
    with cupy_backend.matmul_precision(np.float32, precision):
        rows = cupy_backend.split_for_tf32(X_gpu, tail_at=2) if assign.split else X_gpu
        computed = (cupy.matmul(rows, assign.neg2_centers_t) + assign.c_sq[None, :]).get()
    error = np.abs(computed.astype(np.float64) - exact_scores(X, C))
    x_norms = np.linalg.norm(X.astype(np.float64), axis=1)[:, None]
    assert np.all(error <= assign.a * x_norms + assign.b)
    norm_max = float(np.linalg.norm(C, axis=1).max())
    a32, b32 = score_error_coefficients(256, 4, "highest", norm_max)
    if precision == "high":
        assert np.any(error > a32 * x_norms + b32)  # TF32 did engage
    if precision == "tf32x3":
        tf32 = score_errors(X, C, tf32_matmul)  # TF32 alone, emulated
        assert error.max() < tf32.max() / 100


def cupy_backend_namespace(a):
    from kmeans_xp._lib.compat import get_namespace

    return get_namespace(a)


@pytest.mark.parametrize(
    ("n", "d", "k"), [(5000, 4, 16), (5000, 64, 300), (10, 3, 1), (7, 2, 7), (300, 1, 5)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strided", [False, True])
def test_cupy_segment_sum_equals_standard(cupy_backend, n, d, k, dtype, strided):
    """Both kernels (shared-memory accumulators for small k·d, label-sorted runs otherwise),
    with empty clusters (labels avoid cluster k-1 when k > 1), k = 1, k = n, d = 1, and rows
    that are a strided view (every other column of a wider array)."""
    import cupy

    rng = np.random.default_rng(n + k)
    X = rng.normal(size=(n, d)).astype(dtype)
    labels = rng.integers(0, max(1, k - 1), size=n)
    w = rng.uniform(size=n).astype(dtype)
    expected = segment_sum(X, labels, w, k, xp=np)
    X_gpu = cupy.asarray(X)
    if strided:
        wide = cupy.zeros((n, 2 * d), dtype=dtype)
        wide[:, ::2] = X_gpu
        X_gpu = wide[:, ::2]
        assert not X_gpu.flags.c_contiguous
    sums, counts = cupy_backend.segment_sum(
        X_gpu, cupy.asarray(labels), cupy.asarray(w), k, xp=None
    )
    np.testing.assert_allclose(sums.get(), expected[0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(counts.get(), expected[1], rtol=1e-12)
    if k > 1:
        assert counts.get()[k - 1] == 0


@pytest.mark.parametrize("through_cupy", [True, False])
def test_torch_cuda_assignment_equals_float64_argmin(backend_named, monkeypatch, through_cupy):
    """Through CuPy's kernels (when CuPy is installed) and through the standard-only version
    with torch's own matmul and topk (as without CuPy)."""
    backend = backend_named("torch_cuda")
    import kmeans_xp._backends.torch_cuda as torch_backend
    from kmeans_xp._backends.torch_cuda import CudaCertifiedAssign

    if not through_cupy:
        monkeypatch.setattr(torch_backend, "_cupy_backend", lambda: None)
    elif torch_backend._cupy_backend() is None:
        pytest.skip("CuPy is not installed")
    X, C = near_ties()
    for precision in PRECISIONS:
        assign = CudaCertifiedAssign(backend.asarray(C), xp=backend.xp, precision=precision)
        labels, _ = assign(backend.asarray(X))
        np.testing.assert_array_equal(backend.to_numpy(labels), nearest64(X, C))


def test_torch_cuda_fused_pass_equals_float64(backend_named):
    """torch CUDA tensors through CuPy's fused small-k·d pass (DLPack): the labels of a float64
    argmin, sums and counts of those labels, and labels rewritten in the previous tensors."""
    backend = backend_named("torch_cuda")
    import kmeans_xp._backends.torch_cuda as torch_backend
    from kmeans_xp._core.passes import standard_assign_and_sum
    from kmeans_xp._core.primitives import PassBuffers

    if torch_backend._cupy_backend() is None:
        pytest.skip("CuPy is not installed")
    X, C = near_ties(n=20000, d=32, k=64)
    w = np.random.default_rng(0).uniform(size=len(X)).astype(np.float32)
    args = [backend.asarray(a) for a in (X, C, w, np.zeros(32, np.float32))]
    standard = functools.partial(standard_assign_and_sum, make_assign=None)  # must not be called
    labels, partial, sums, counts = torch_backend.cuda_assign_and_sum(
        *args, torch_backend.segment_sum, block_rows=7000, xp=backend.xp, standard=standard
    )
    expected = nearest64(X, C)
    np.testing.assert_array_equal(backend.to_numpy(labels), expected)
    expected_sums, expected_counts = segment_sum(X, expected, w, 64, xp=np)
    np.testing.assert_allclose(backend.to_numpy(sums), expected_sums, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(counts), expected_counts, rtol=1e-12)
    buffers = PassBuffers(labels, partial)
    labels[:4] = (labels[:4] + 1) % 64
    torch_backend.cuda_assign_and_sum(
        *args, torch_backend.segment_sum, block_rows=7000, xp=backend.xp, out=buffers,
        standard=standard,
    )  # fmt: skip
    assert int(buffers.n_changed) == 4
    np.testing.assert_array_equal(backend.to_numpy(buffers.labels), expected)


def test_kernels_compile_with_nvrtc():
    """Both CUDA sources compile (for Turing and Hopper; the tensor-core kernels trap before
    sm_80, where they are never launched), checked without a GPU where NVRTC is installed (the
    nvidia-cuda-nvrtc wheel); skipped elsewhere. Only on sm_80 and later do the tensor-core
    kernels hold the mma instruction."""
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc")
    from kmeans_xp._backends import cuda_launch

    sources = [
        (cuda_launch.KERNEL_SOURCE, cuda_launch.KERNEL_NAMES),
        (cuda_launch.MMA_SOURCE, cuda_launch.MMA_KERNEL_NAMES),
    ]
    for arch in ("compute_75", "compute_90"):
        for source, names in sources:
            try:
                program = nvrtc.createProgram(source, "kmeans_xp.cu", [], [])
                nvrtc.compileProgram(program, [f"-arch={arch}", "--std=c++14"])
            except Exception as exc:
                if "nvrtc" in str(exc).lower() and "COMPILATION" not in str(exc):
                    pytest.skip(f"NVRTC unavailable: {exc}")
                raise AssertionError(nvrtc.getProgramLog(program)) from exc
            ptx = nvrtc.getPTX(program).decode()
            for name in names:
                assert f".entry {name}(" in ptx
            has_mma = "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" in ptx
            assert has_mma == (names == cuda_launch.MMA_KERNEL_NAMES and arch == "compute_90")


def _warp_top2_model(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The assign_certified kernel's reduction, lane by lane, as CUDA runs it: each of 32
    lanes keeps the best two of columns lane, lane + 32, ...; five __shfl_down_sync steps
    merge them."""
    k = scores.shape[1]
    inf = np.float32(np.inf)

    def keep_two(state, v, j):
        best, best_j, second = state
        if v < best or (v == best and j < best_j):
            return v, j, best
        return best, best_j, min(second, v)

    labels, bests, seconds = [], [], []
    for row in scores:
        lanes = []
        for lane in range(32):
            state = (inf, 2**31 - 1, inf)
            for j in range(lane, k, 32):
                state = keep_two(state, row[j], j)
            lanes.append(state)
        for offset in (16, 8, 4, 2, 1):
            shuffled = [lanes[i + offset] if i + offset < 32 else lanes[i] for i in range(32)]
            merged = []
            for i in range(32):
                state = lanes[i]
                if i + offset < 32:
                    other = shuffled[i]
                    state = keep_two(state, other[0], other[1])
                    state = (state[0], state[1], min(state[2], other[2]))
                merged.append(state)
            lanes = merged
        labels.append(lanes[0][1])
        bests.append(lanes[0][0])
        seconds.append(lanes[0][2])
    return np.array(labels), np.array(bests), np.array(seconds)


@pytest.mark.parametrize("k", [1, 2, 31, 33, 100])
def test_the_kernels_warp_reduction_finds_the_best_two(k):
    """A model of the CUDA kernel's lane-and-shuffle reduction (checked without a GPU) gives
    the standard best two: the first index on ties, the true second-best value."""
    from kmeans_xp._core.certified import standard_best_two

    rng = np.random.default_rng(k)
    scores = rng.integers(-3, 4, size=(40, k)).astype(np.float32)  # many exact ties
    labels, best, second = _warp_top2_model(scores)
    expected = standard_best_two(scores, xp=np)
    np.testing.assert_array_equal(labels, expected[0])
    np.testing.assert_array_equal(best, expected[1])
    np.testing.assert_array_equal(second, expected[2])
