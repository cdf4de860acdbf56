"""Lloyd and Hamerly-bounded iterations give the same fits; NumPy's own pass equals the standard."""

from __future__ import annotations

import itertools
import re
from functools import partial

import numpy as np
import pytest
from helpers import assert_labels_are_argmin, blobs

import kmeans_xp._algorithms.hamerly as hamerly_module
import kmeans_xp._algorithms.init as init_module
import kmeans_xp._algorithms.lloyd as lloyd_module
import kmeans_xp._backends.numpy as numpy_backend
from kmeans_xp import KMeans, kmeans
from kmeans_xp._algorithms.fit import iteration_for
from kmeans_xp._algorithms.lloyd import lloyd
from kmeans_xp._backends import segment_sum_for
from kmeans_xp._core.bounds import as_lower_bound, as_upper_bound
from kmeans_xp._core.nearest_two import standard_nearest_two
from kmeans_xp._core.passes import standard_assign_and_sum, standard_labels_and_inertia
from kmeans_xp._core.primitives import PlainAssign
from kmeans_xp._lib.compat import get_namespace, on_gpu


@pytest.fixture(params=["from the start", "in chunks of 16 rows", "after the switch"])
def bounds_start(request, monkeypatch):
    """Run the bounded loop with bounds from iteration 2 on (in one chunk of rows and centers,
    or many), or as it runs by default."""
    if request.param != "after the switch":
        monkeypatch.setattr(hamerly_module, "_SWITCH_FRACTION", 1.0)
        monkeypatch.setattr(hamerly_module, "_FALLBACK_FRACTION", 1.0)  # bounds throughout
    if request.param == "in chunks of 16 rows":
        monkeypatch.setattr(hamerly_module, "_CHUNK_ROWS", 16)
        monkeypatch.setattr(hamerly_module, "_GAP_BLOCK_ROWS", 2)
    return request.param


def overlapping_blobs(seed=0, n=150, k=6, d=3, dtype=np.float64):
    """Touching clusters: many iterations, rows that change cluster late, some near the edge."""
    rng = np.random.default_rng(seed)
    X, _ = blobs(n // k, rng.normal(scale=2.0, size=(k, d)), sd=1.0, seed=seed, dtype=dtype)
    return X


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_hamerly_equals_lloyd_on_every_backend(xp, bounds_start, dtype):
    for seed in range(3):
        X = xp.asarray(overlapping_blobs(seed, dtype=dtype))
        fits = {
            algorithm: KMeans(
                6, init="random", n_init=1, tol=0, random_state=seed, algorithm=algorithm
            ).fit(X)
            for algorithm in ("lloyd", "hamerly", "elkan")
        }
        ref = fits["lloyd"]
        assert ref.n_iter_ > 3  # the bounds had work to do
        for algorithm in ("hamerly", "elkan"):
            fit = fits[algorithm]
            np.testing.assert_array_equal(xp.to_numpy(fit.labels_), xp.to_numpy(ref.labels_))
            np.testing.assert_allclose(
                xp.to_numpy(fit.cluster_centers_), xp.to_numpy(ref.cluster_centers_),
                rtol=1e-5 if dtype == np.float32 else 1e-10,
            )  # fmt: skip
            assert fit.n_iter_ == ref.n_iter_
            assert fit.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)


def test_hamerly_with_weights_and_empty_clusters(xp, bounds_start):
    X = overlapping_blobs(4, n=120, k=4)
    w = np.random.default_rng(4).uniform(0.0, 3.0, size=len(X))
    w[::7] = 0.0
    # One initial center far away: its cluster empties at once and is refilled.
    init = np.concatenate([X[:3], [[100.0, 100.0, 100.0]]])
    # At iteration 7 only rows of weight 0 change cluster: the centers stay as they were, and
    # both fits stop on that. tol=0 would ask for a shift of exactly 0, which a GPU's float64
    # atomics (adding in any order) miss by an ulp in Lloyd's full re-summation (Hamerly's
    # updates add nothing): found on an H200, where Lloyd then stopped one iteration later.
    results = [
        kmeans(xp.asarray(X), 4, sample_weight=w, init=init, tol=1e-20, algorithm=algorithm)
        for algorithm in ("lloyd", "hamerly")
    ]
    (c1, l1, i1, n1), (c2, l2, i2, n2) = results
    np.testing.assert_array_equal(xp.to_numpy(l1), xp.to_numpy(l2))
    np.testing.assert_allclose(xp.to_numpy(c1), xp.to_numpy(c2), rtol=1e-10)
    assert (n1, i1) == (n2, pytest.approx(i2, rel=1e-12))
    assert np.isfinite(xp.to_numpy(c2)).all()
    assert_labels_are_argmin(X, xp.to_numpy(c2), xp.to_numpy(l2))


def test_hamerly_refills_a_cluster_that_empties_late(xp, bounds_start, capsys):
    # Found by search: the cluster of one center empties at iteration 4, when (with bounds from
    # the start) the bounds are in use. The fit must stay Lloyd's. (This data does not tell
    # whether the refilled rows' bounds are reset: the farthest row fails its bound test anyway.)
    rng = np.random.default_rng(2111)
    X = rng.normal(size=(40, 2))
    X[:20] += 2.5
    init = rng.normal(size=(10, 2)) * 2 + 1
    fits = [
        KMeans(10, init=init, tol=0, verbose=True, algorithm=algorithm).fit(xp.asarray(X))
        for algorithm in ("lloyd", "hamerly")
    ]
    lloyd_out, hamerly_out = _halves(capsys.readouterr().out)
    assert hamerly_out == lloyd_out
    assert any(line.startswith("Iteration 4:") and "refilled" in line for line in lloyd_out)
    np.testing.assert_array_equal(xp.to_numpy(fits[1].labels_), xp.to_numpy(fits[0].labels_))
    np.testing.assert_allclose(
        xp.to_numpy(fits[1].cluster_centers_), xp.to_numpy(fits[0].cluster_centers_), rtol=1e-10
    )
    assert fits[1].n_iter_ == fits[0].n_iter_


def test_hamerly_single_cluster_and_one_point_per_cluster(xp, bounds_start):
    X = overlapping_blobs(5, n=30, k=3)
    one = KMeans(1, algorithm="hamerly").fit(xp.asarray(X))
    np.testing.assert_allclose(xp.to_numpy(one.cluster_centers_)[0], X.mean(axis=0), rtol=1e-12)
    every = KMeans(30, algorithm="hamerly", random_state=0).fit(xp.asarray(X))
    assert sorted(xp.to_numpy(every.labels_).tolist()) == list(range(30))


def test_hamerly_verbose_prints_what_lloyd_prints(capsys, bounds_start):
    X = overlapping_blobs(6)
    for algorithm in ("lloyd", "hamerly"):
        KMeans(6, init=X[:6], tol=0, verbose=1, algorithm=algorithm).fit(X)
    lloyd_out, hamerly_out = _halves(capsys.readouterr().out)
    assert hamerly_out == lloyd_out


def _halves(text):
    lines = [_rounding_shift_as_zero(line) for line in text.splitlines()]
    starts = [i for i, line in enumerate(lines) if line.startswith("Initialization complete")]
    # The lines print inertias to 6 significant digits, so rounding differences do not show.
    return lines[starts[0] : starts[1]], lines[starts[1] :]


def _rounding_shift_as_zero(line):
    """A center shift of rounding size (under 1e-20: a GPU's float64 sums add in an order that
    varies, so a converged center can move by 1e-31) printed as an exact 0."""
    shift = re.search(r"center shift ([-+.e0-9]+)", line)
    if shift and abs(float(shift.group(1))) < 1e-20:
        return line.replace(shift.group(0), "center shift 0.000e+00")
    return line


def test_hamerly_stops_early_on_tol_like_lloyd():
    X = overlapping_blobs(7, n=600, k=6)
    for tol in (1e-2, 1e-4):
        a = KMeans(6, init=X[:6], tol=tol, algorithm="lloyd").fit(X)
        b = KMeans(6, init=X[:6], tol=tol, algorithm="hamerly").fit(X)
        assert a.n_iter_ == b.n_iter_
        np.testing.assert_array_equal(a.labels_, b.labels_)


def test_algorithm_choice():
    np_xp = get_namespace(np.zeros(1))
    assert not on_gpu(np_xp, "cpu")
    assert iteration_for("auto", np_xp, "cpu") is hamerly_module.hamerly
    assert iteration_for("lloyd", np_xp, "cpu") is lloyd
    assert iteration_for("elkan", np_xp, "cpu") is hamerly_module.hamerly
    with pytest.raises(ValueError, match="algorithm must be one of 'auto', 'lloyd', 'hamerly'"):
        KMeans(2, algorithm="full").fit(np.zeros((4, 1)))


def test_auto_is_lloyd_on_a_gpu(xp):
    if not (xp.name == "cupy" or xp.name == "torch_cuda"):
        pytest.skip("a GPU backend")
    X = xp.asarray(np.zeros((4, 1)))
    assert iteration_for("auto", xp.xp, X.device) is lloyd


# ---- NumPy's own assign-and-sum pass -----------------------------------------------------------


def share_blocks_between(monkeypatch, threads: int) -> None:
    """NumPy's passes split their blocks between ``threads`` threads, however small the pass
    (threads hold BLAS to one thread each through threadpoolctl, so more than one needs it)."""
    if threads > 1:
        pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(numpy_backend, "_thread_count", lambda: threads)
    monkeypatch.setattr(numpy_backend, "MIN_SCORES_FOR_THREADS", 0)


def off_origin_problem(n: int, d: int, k: int, dtype):
    """(rng, X, offset, centers): X off the origin, so that the offset matters; k of its rows."""
    rng = np.random.default_rng(n + d + k)
    X = (rng.normal(size=(n, d)) + 100.0).astype(dtype)
    offset = X.mean(axis=0)
    return rng, X, offset, X[rng.choice(n, k, replace=False)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("n", "d", "k", "block_rows", "chunk_bytes"),
    [
        (1000, 5, 7, 64, 8 << 20),
        (1001, 3, 1, 1000, 8 << 20),
        (5000, 16, 40, 333, 1),
        (10, 2, 3, 1, 1),
    ],
)
@pytest.mark.parametrize("threads", [1, 3])
def test_numpy_pass_equals_the_standard_pass(
    monkeypatch, dtype, n, d, k, block_rows, chunk_bytes, threads
):
    share_blocks_between(monkeypatch, threads)
    monkeypatch.setattr(numpy_backend, "UPDATE_CHUNK_BYTES", chunk_bytes)  # 1: flush every block
    if threads > 1 and n // block_rows >= 2 * threads:
        assert len(numpy_backend._thread_parts(np.empty((n, d)), block_rows, k, 8)) == threads
    rng = np.random.default_rng(n + d + k)
    X = rng.normal(size=(n, d)).astype(dtype)
    centers = X[:k] - X.mean(axis=0)
    w = rng.uniform(size=n).astype(dtype)
    offset = X.mean(axis=0)
    args = (X, centers, w, offset, segment_sum_for(np))
    standard = standard_assign_and_sum(
        *args, block_rows=block_rows, xp=np, make_assign=partial(PlainAssign, xp=np)
    )
    fast = numpy_backend.assign_and_sum(*args, block_rows=block_rows, xp=np)
    np.testing.assert_array_equal(fast[0], standard[0])  # labels: bit for bit
    assert fast[0].dtype == np.int32  # half the memory of the standard pass's int64
    np.testing.assert_array_equal(fast[1], standard[1])  # partial distances: bit for bit
    np.testing.assert_allclose(fast[2], standard[2], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast[3], standard[3], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("n", "d", "k", "block_rows"),
    [(1000, 5, 7, 64), (1001, 3, 1, 1000), (5000, 16, 40, 333), (10, 1, 10, 1)],
)
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("weighted", [True, False])
def test_numpy_labels_and_inertia_equal_the_standard_pass(
    monkeypatch, dtype, n, d, k, block_rows, threads, weighted
):
    share_blocks_between(monkeypatch, threads)
    rng, X, offset, centers = off_origin_problem(n, d, k, dtype)
    w = rng.uniform(size=n).astype(dtype) if weighted else None
    args = (X, centers, centers - offset, w, offset)
    standard = standard_labels_and_inertia(
        *args, make_assign=partial(PlainAssign, xp=np), block_rows=block_rows, xp=np
    )
    fast = numpy_backend.labels_and_inertia(*args, block_rows=block_rows, xp=np)
    np.testing.assert_array_equal(fast[0], standard[0])
    assert fast[0].dtype == np.int64
    assert fast[1] == standard[1]  # the same block sums, added in the same order: bit for bit
    if weighted:
        X64, c64 = X.astype(np.float64), centers.astype(np.float64)
        brute = (w * ((X64 - c64[fast[0]]) ** 2).sum(axis=1)).sum()
        assert fast[1] == pytest.approx(brute, rel=1e-10)
        assert_labels_are_argmin(X64, c64, fast[0])
    else:
        assert fast[1] is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("n", "d", "k", "block_rows"), [(1000, 5, 7, 64), (1001, 3, 1, 1000), (10, 1, 10, 1)]
)
@pytest.mark.parametrize("threads", [1, 3])
def test_numpy_distances_to_centers_equal_the_standard_ones(
    monkeypatch, dtype, n, d, k, block_rows, threads
):
    share_blocks_between(monkeypatch, threads)
    _, X, offset, centers = off_origin_problem(n, d, k, dtype)
    fast = numpy_backend.distances_to_centers(
        X, centers, offset=offset, block_rows=block_rows, xp=np
    )
    monkeypatch.setattr(lloyd_module, "distances_to_centers_for", lambda *args: None)
    standard = lloyd_module.distances_to_centers(
        X, centers, offset=offset, block_rows=block_rows, xp=np
    )
    assert fast.dtype == standard.dtype == dtype
    np.testing.assert_array_equal(fast, standard)
    brute = np.sqrt(((X[:, None, :] - centers[None, :, :]).astype(np.float64) ** 2).sum(axis=2))
    np.testing.assert_allclose(fast, brute, rtol=1e-5 if dtype == np.float32 else 1e-9, atol=1e-4)


def test_threaded_passes_in_two_threads_run_one_at_a_time_and_restore_blas():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import threading

    def blas_threads():
        pools = threadpoolctl.threadpool_info()
        return {pool["num_threads"] for pool in pools if pool["user_api"] == "blas"}

    original = blas_threads()
    first_in, first_may_leave, second_in = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with numpy_backend._blas_on_one_thread():
            seen["first"] = blas_threads()
            first_in.set()
            first_may_leave.wait()

    def second():
        first_in.wait()
        with numpy_backend._blas_on_one_thread():
            second_in.set()
            seen["second"] = blas_threads()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_in.wait()
    assert not second_in.wait(timeout=0.2)  # waits for the first pass
    first_may_leave.set()
    for thread in threads:
        thread.join()
    assert seen == {"first": {1}, "second": {1}}
    assert blas_threads() == original


def test_predict_and_score_run_numpys_labels_pass(monkeypatch):
    calls = []
    original = numpy_backend.labels_and_inertia

    def counted(*args, **kwargs):
        calls.append(kwargs["block_rows"])
        return original(*args, **kwargs)

    monkeypatch.setattr(numpy_backend, "labels_and_inertia", counted)
    X, _ = blobs(50, [[0, 0], [5, 5], [0, 9]], seed=2)
    km = KMeans(3, random_state=0).fit(X)  # the final labels
    assert len(calls) == 1
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    assert km.score(X) == pytest.approx(-km.inertia_, rel=1e-12)
    assert len(calls) == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which_rows", ["all", "some, unsorted, repeated"])
@pytest.mark.parametrize(
    ("n", "d", "k", "block_rows"),
    [(1000, 5, 7, 64), (300, 3, 2, 1000), (50, 1, 50, 7), (40, 2, 1, 16)],
)
def test_numpy_nearest_two_equals_the_standard_one(dtype, which_rows, n, d, k, block_rows):
    rng = np.random.default_rng(n + d + k)
    X = (rng.normal(size=(n, d)) + 50.0).astype(dtype)
    offset = X.mean(axis=0)
    centers = X[:k] - offset
    rows = None if which_rows == "all" else rng.integers(0, n, size=n // 3)
    args = (X, rows, centers, centers.astype(np.float64), offset)
    standard = standard_nearest_two(*args, block_rows=block_rows, xp=np)
    fast = numpy_backend.nearest_two(*args, block_rows=block_rows, xp=np)
    assert fast[0].dtype == np.int32  # labels: half the memory of the standard int64
    for name, a, b in zip(("labels", "first", "second"), fast, standard, strict=True):
        assert name == "labels" or a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)  # bit for bit


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights_dtype", ["float64", "X's"])
@pytest.mark.parametrize("keep_trials", [True, False])
@pytest.mark.parametrize(
    ("n", "d", "t", "block_rows", "threads"),
    [
        (1000, 5, 4, 64, 1),
        (1000, 5, 4, 64, 2),
        (1001, 3, 8, 100, 3),
        (50, 1, 1, 7, 2),
        (9, 2, 3, 50, 2),
    ],
)
def test_numpy_candidate_potentials_equal_the_standard_ones(
    monkeypatch, dtype, weights_dtype, keep_trials, n, d, t, block_rows, threads
):
    """k-means++'s pass per center: the same potentials and trial distances, bit for bit, on one
    thread and several (each block's partial added in block order; products this small run on
    one BLAS thread either way, see ``assign_and_sum``), and each block reported to ``_lib.memmap``
    once."""
    if threads > 1:
        pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(numpy_backend, "_thread_count", lambda: threads)
    monkeypatch.setattr(numpy_backend, "_MIN_ROWS_FOR_POTENTIALS_THREADS", 0)
    rng = np.random.default_rng(n + d + t)
    X = (rng.normal(size=(n, d)) + 30.0).astype(dtype)
    offset = X.mean(axis=0)
    x_sq = np.sum((X - offset) * (X - offset), axis=1)
    candidates = X[rng.integers(0, n, size=t)] - offset
    closest = rng.uniform(0.0, 2.0 * d, size=n)  # some rows nearer their center than to any trial
    weights = rng.uniform(size=n)
    weights = weights if weights_dtype == "float64" else weights.astype(dtype)
    reads = []
    monkeypatch.setattr(numpy_backend, "note_rows_read", reads.append)
    trials = {}
    results = {}
    for name, potentials in (
        ("standard", init_module.standard_candidate_potentials),
        ("numpy", numpy_backend.candidate_potentials),
    ):
        trials[name] = np.full((n, t), np.nan, dtype=dtype) if keep_trials else None
        results[name] = potentials(
            X, offset, x_sq, candidates, closest, weights, trials[name],
            block_rows=block_rows, centered_blocks=None, xp=np,
        )  # fmt: skip
    assert results["numpy"].dtype == np.float64
    np.testing.assert_array_equal(results["numpy"], results["standard"])  # bit for bit
    if keep_trials:
        np.testing.assert_array_equal(trials["numpy"], trials["standard"])
    assert sorted(reads) == sorted(min(block_rows, n - a) for a in range(0, n, block_rows))
    # Against a float64 brute force (the float32 distances' rounding allowed for).
    sq = ((X.astype(np.float64) - offset)[:, None, :] - candidates.astype(np.float64)) ** 2
    expected = np.sum(weights[:, None] * np.minimum(closest[:, None], sq.sum(axis=2)), axis=0)
    np.testing.assert_allclose(
        results["numpy"], expected, rtol=1e-4 if dtype == np.float32 else 1e-9
    )


def test_numpy_candidate_potentials_share_blocks_between_threads_from_its_threshold(monkeypatch):
    pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(numpy_backend, "_thread_count", lambda: 2)
    used = []

    def potentials_of_rows(shared, lo, hi, block_rows):
        used.append((lo, hi))
        return [np.zeros(1)]

    monkeypatch.setattr(numpy_backend, "_potentials_of_rows", potentials_of_rows)
    minimum = numpy_backend._MIN_ROWS_FOR_POTENTIALS_THREADS
    for n, shared in ((minimum - 1, False), (minimum, True)):
        used.clear()
        numpy_backend.candidate_potentials(
            np.zeros((n, 1), np.float32), np.zeros(1, np.float32), np.zeros(n, np.float32),
            np.zeros((1, 1), np.float32), np.zeros(n), np.ones(n), None, block_rows=n // 8,
            centered_blocks=None, xp=np,
        )  # fmt: skip
        expected = numpy_backend._split_blocks(n, n // 8, row_bytes=12, x_bytes=4 * n)
        assert used == (expected if shared else [(0, n)])
        assert len(used) == (2 if shared else 1)


def test_numpy_kmeans_plusplus_on_threads_picks_the_standard_versions_rows(monkeypatch):
    """A whole k-means++ run with NumPy's pass shared between threads (several blocks each)
    against the standard pass: the same rows."""
    pytest.importorskip("threadpoolctl")
    from kmeans_xp import kmeans_plusplus

    X, _ = blobs(3000, np.random.default_rng(3).normal(scale=4.0, size=(12, 5)), seed=3)
    X = X.astype(np.float32)
    monkeypatch.setattr(numpy_backend, "_thread_count", lambda: 2)
    monkeypatch.setattr(numpy_backend, "_MIN_ROWS_FOR_POTENTIALS_THREADS", 0)
    shared = []
    original = numpy_backend._split_blocks

    def split_blocks(n, block_rows, **sizes):
        shared.append(original(n, block_rows, **sizes))
        return shared[-1]

    monkeypatch.setattr(numpy_backend, "_split_blocks", split_blocks)
    _, fast = kmeans_plusplus(X, 20, random_state=7)
    assert len(shared) == 19  # one pass per center after the first, each on two threads
    assert all(len(parts) == 2 for parts in shared)
    monkeypatch.setattr(init_module, "candidate_potentials_for", lambda xp: None)
    _, standard = kmeans_plusplus(X, 20, random_state=7)
    np.testing.assert_array_equal(fast, standard)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_cpu_tensors_run_numpys_passes_on_their_memory(dtype):
    """CPU tensors get NumPy's own passes (Lloyd, Hamerly's nearest two, k-means++'s potentials)
    through views of their memory: NumPy's results exactly, as tensors, written in place where
    NumPy's pass writes (a previous pass's labels and partials, the trial distances)."""
    torch = pytest.importorskip("torch")
    from kmeans_xp._backends import torch_cpu as torch_backend
    from kmeans_xp._core.primitives import PassBuffers

    with torch_backend.threads_held_to_one():  # as a large fit's engines hold them
        rng = np.random.default_rng(5)
        X = (rng.normal(size=(700, 6)) + 20.0).astype(dtype)
        offset = X.mean(axis=0)
        centers = X[:9] - offset
        w = rng.uniform(size=700).astype(dtype)
        tX, tc, tw, toff = (torch.from_numpy(a.copy()) for a in (X, centers, w, offset))
        txp = get_namespace(tX)

        def unused(*args, **kwargs):
            raise AssertionError("the standard pass ran")

        expected = numpy_backend.assign_and_sum(
            X, centers, w, offset, segment_sum_for(np), block_rows=64, xp=np
        )
        got = torch_backend.cpu_assign_and_sum(
            tX.requires_grad_(dtype == "float64"),
            tc,
            tw,
            toff,
            None,
            block_rows=64,
            xp=txp,
            standard=unused,
        )
        for a, b in zip(got, expected, strict=True):
            assert isinstance(a, torch.Tensor)
            assert a.device.type == "cpu"
            np.testing.assert_array_equal(a.numpy(), b)
        # Into a previous pass's buffers, counting the labels that change.
        out = PassBuffers(got[0], got[1])
        labels_before = got[0].clone()
        again = torch_backend.cpu_assign_and_sum(
            tX, tc + 0.5, tw, toff, None, block_rows=64, xp=txp, standard=unused, out=out
        )
        assert again[0].data_ptr() == got[0].data_ptr()  # overwritten in place
        assert out.n_changed == int((again[0] != labels_before).sum())
        # Hamerly's nearest two, and k-means++'s potentials with their trial distances.
        rows = torch.from_numpy(rng.integers(0, 700, size=50))
        args = (centers, centers.astype(np.float64), offset)
        expected = numpy_backend.nearest_two(X, rows.numpy(), *args, block_rows=16, xp=np)
        got = torch_backend.cpu_nearest_two(
            tX, rows, tc, tc.to(torch.float64), toff, block_rows=16, xp=txp
        )
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a.numpy(), b)
        x_sq = np.sum((X - offset) ** 2, axis=1)
        closest = rng.uniform(size=700)
        trials = np.empty((700, 3), dtype=dtype)
        expected = numpy_backend.candidate_potentials(
            X, offset, x_sq, centers[:3], closest, w, trials,
            block_rows=64, centered_blocks=None, xp=np,
        )  # fmt: skip
        t_trials = torch.empty((700, 3), dtype=tX.dtype)
        got = torch_backend.cpu_candidate_potentials(
            tX, toff, torch.from_numpy(x_sq), tc[:3], torch.from_numpy(closest), tw, t_trials,
            block_rows=64, centered_blocks=None, xp=txp,
        )  # fmt: skip
        np.testing.assert_array_equal(got.numpy(), expected)
        np.testing.assert_array_equal(t_trials.numpy(), trials)
        # predict/score's labels and inertia, and transform's distances.
        raw = X[:9]
        expected = numpy_backend.labels_and_inertia(
            X, raw, centers, w, offset, block_rows=64, xp=np
        )
        got = torch_backend.cpu_labels_and_inertia(
            tX, torch.from_numpy(raw), tc, tw, toff, block_rows=64, xp=txp, standard=unused
        )
        np.testing.assert_array_equal(got[0].numpy(), expected[0])
        assert got[1] == expected[1]
        expected = numpy_backend.distances_to_centers(X, raw, offset=offset, block_rows=64, xp=np)
        got = torch_backend.cpu_distances_to_centers(
            tX, torch.from_numpy(raw), offset=toff, block_rows=64, xp=txp, standard=unused
        )
        assert isinstance(got, torch.Tensor)
        np.testing.assert_array_equal(got.numpy(), expected)
    # Outside a large fit's engines, the standard versions run.
    calls = []

    def standard(*args, **kwargs):
        calls.append(1)

    torch_backend.cpu_assign_and_sum(
        tX, tc, tw, toff, None, block_rows=64, xp=txp, standard=standard
    )  # fmt: skip
    torch_backend.cpu_labels_and_inertia(
        tX, tc, tc, tw, toff, block_rows=64, xp=txp, standard=standard
    )  # fmt: skip
    torch_backend.cpu_distances_to_centers(
        tX, tc, offset=toff, block_rows=64, xp=txp, standard=standard
    )  # fmt: skip
    assert calls == [1, 1, 1]


def test_fit_engines_hold_torchs_threads_to_one_on_cpu_tensors(monkeypatch):
    """While a fit's engines run on CPU tensors, torch's own threads are held to one (NumPy's
    passes and BLAS have the cores); nested holds restore the setting once, at the outermost
    exit, and NumPy input leaves it alone."""
    torch = pytest.importorskip("torch")
    from kmeans_xp._backends import host_threads_held
    from kmeans_xp._backends import torch_cpu as torch_backend

    threads_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        original = numpy_backend.assign_and_sum

        def assign_and_sum(*args, **kwargs):
            seen.append(torch.get_num_threads())
            return original(*args, **kwargs)

        monkeypatch.setattr(numpy_backend, "assign_and_sum", assign_and_sum)
        X = torch.from_numpy(np.random.default_rng(0).normal(size=(300, 3)))
        KMeans(4, algorithm="lloyd", max_iter=3, random_state=0).fit(X)
        assert seen == []  # a small fit: torch's own pass, on torch's threads
        monkeypatch.setattr(numpy_backend, "MIN_SCORES_FOR_THREADS", 300 * 4)
        KMeans(4, algorithm="lloyd", max_iter=3, random_state=0).fit(X)
        assert seen  # NumPy's pass ran, on one torch thread
        assert set(seen) == {1}
        assert torch.get_num_threads() == 2  # restored
        with torch_backend.threads_held_to_one():
            with torch_backend.threads_held_to_one():
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1  # still held by the outer one
        assert torch.get_num_threads() == 2

        @host_threads_held
        def engine(X, centers, *, xp):
            return torch.get_num_threads()

        assert engine(X, 4, xp=get_namespace(X)) == 1  # n·k at the threshold
        assert engine(X, X[:4], xp=get_namespace(X)) == 1
        assert engine(X, 3, xp=get_namespace(X)) == 2  # below it
        assert engine(X.numpy(), 4, xp=get_namespace(X.numpy())) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads_before)


def test_overlapping_fits_in_threads_each_restore_their_own_torch_threads():
    """Fits of large CPU tensors in several threads at once hold torch's threads to one while
    they run; after all of them, every thread has its own count back."""
    torch = pytest.importorskip("torch")
    import threading
    from concurrent.futures import ThreadPoolExecutor

    X = torch.from_numpy(np.random.default_rng(0).normal(size=(300_000, 8)))
    assert X.shape[0] * 64 >= numpy_backend.MIN_SCORES_FOR_THREADS  # NumPy's passes serve it
    start = threading.Barrier(4)

    def fit(seed):
        torch.set_num_threads(2)
        start.wait()  # the four fits overlap
        KMeans(64, algorithm="lloyd", max_iter=2, random_state=seed).fit(X)
        start.wait()  # every fit has ended before any thread looks
        return torch.get_num_threads()

    with ThreadPoolExecutor(4) as pool:
        after = list(pool.map(fit, range(4)))
    assert after == [2, 2, 2, 2]


def test_predict_score_transform_of_large_torch_cpu_inputs_run_numpys_passes(monkeypatch):
    torch = pytest.importorskip("torch")
    seen = []

    def recorded(name):
        original = getattr(numpy_backend, name)

        def run(*args, **kwargs):
            seen.append((name, torch.get_num_threads()))
            return original(*args, **kwargs)

        monkeypatch.setattr(numpy_backend, name, run)

    tX = torch.from_numpy(np.random.default_rng(3).normal(size=(300, 3)))
    model = KMeans(4, random_state=0).fit(tX)
    recorded("labels_and_inertia")
    recorded("distances_to_centers")
    standard = (model.predict(tX), model.score(tX), model.transform(tX))
    assert seen == []  # below the threshold: torch's own operations
    monkeypatch.setattr(numpy_backend, "MIN_SCORES_FOR_THREADS", 300 * 4)
    labels, score, distances = model.predict(tX), model.score(tX), model.transform(tX)
    assert isinstance(labels, torch.Tensor)
    assert isinstance(distances, torch.Tensor)
    np.testing.assert_array_equal(labels.numpy(), standard[0].numpy())
    assert score == pytest.approx(standard[1], rel=1e-12)
    np.testing.assert_allclose(distances.numpy(), standard[2].numpy(), rtol=1e-12)
    torch_calls = [call for call in seen if call[0] == "labels_and_inertia"][:2]
    assert torch_calls == [("labels_and_inertia", 1)] * 2  # held to one torch thread
    assert ("distances_to_centers", 1) in seen


def test_torch_tensors_numpy_cannot_view_take_the_standard_versions(monkeypatch):
    torch = pytest.importorskip("torch")
    from kmeans_xp._backends import torch_cpu as torch_backend

    X = torch.zeros((4, 2), dtype=torch.bfloat16)
    calls = []
    result = torch_backend.cpu_assign_and_sum(
        X, X[:1], X[:, 0], X[0], None, block_rows=2, xp=get_namespace(X),
        standard=lambda *args, **kwargs: calls.append(kwargs["block_rows"]) or "standard",
    )  # fmt: skip
    assert result == "standard"
    assert calls == [2]
    monkeypatch.setattr(torch_backend, "standard_nearest_two", lambda *a, **k: "standard")
    assert (
        torch_backend.cpu_nearest_two(X, None, X[:1], X[:1], X[0], block_rows=2, xp=None)
        == "standard"
    )
    monkeypatch.setattr(torch_backend, "standard_candidate_potentials", lambda *a, **k: "standard")
    got = torch_backend.cpu_candidate_potentials(
        X, X[0], X[:, 0], X[:1], X[:, 0], X[:, 0], None, block_rows=2, centered_blocks=None, xp=None
    )
    assert got == "standard"


@pytest.mark.parametrize(
    ("n", "block_rows", "threads"), [(1000, 64, 2), (1000, 64, 3), (10, 1, 2), (7, 3, 2), (5, 5, 4)]
)
def test_thread_parts_cover_the_rows_in_whole_blocks(monkeypatch, n, block_rows, threads):
    monkeypatch.setattr(numpy_backend, "_thread_count", lambda: threads)
    X = np.empty((n, 1))
    assert numpy_backend._thread_parts(X, block_rows, 10, 8) == [(0, n)]  # too small to share
    monkeypatch.setattr(numpy_backend, "MIN_SCORES_FOR_THREADS", 0)
    parts = numpy_backend._thread_parts(X, block_rows, 10, 8)
    assert parts[0][0] == 0
    assert parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    assert all(lo % block_rows == 0 and lo < hi for lo, hi in parts)
    n_blocks = -(-n // block_rows)
    assert len(parts) == max(1, min(threads, n_blocks // 2))


def test_threads_buffers_together_stay_within_a_quarter_of_x(monkeypatch):
    """Each thread holds a block's buffers, so a pass runs on no more threads than those fit
    a quarter of X (at least 1 MiB) together: found on a 16-core machine, where k-means++ held
    59 bytes a row of a 200 000 × 8 X (28 on 2 cores). Large X keep every core."""
    monkeypatch.setattr(numpy_backend, "_thread_count", lambda: 16)
    split = numpy_backend._split_blocks
    mib = 2**20
    # 64 blocks of 1000 rows; 100 bytes a row is 100 kB a thread
    assert len(split(64_000, 1000, row_bytes=100, x_bytes=64 * mib)) == 16
    assert len(split(64_000, 1000, row_bytes=1000, x_bytes=16_000_000)) == 4  # 4 MB // 1 MB
    assert len(split(64_000, 1000, row_bytes=100, x_bytes=0)) == 10  # 1 MiB // 100 kB
    assert len(split(64_000, 1000, row_bytes=2 * mib, x_bytes=0)) == 1  # one always runs


def test_bounds_rounded_to_float32_stay_bounds(xp):
    """Hamerly keeps float32 bounds of float64 distances: an upper bound must round up, a lower
    bound down, for every magnitude (the nearest float32 is below the value about half the
    time, so a plain cast would break either kind)."""
    rng = np.random.default_rng(0)
    magnitudes = 10.0 ** rng.uniform(-30, 30, size=20_000)
    values = np.concatenate([magnitudes * rng.uniform(0.5, 1.0, 20_000), [0.0, 1.0, np.inf]])
    x64 = xp.asarray(values, dtype=np.float64)
    ns = xp.xp
    upper = xp.to_numpy(as_upper_bound(x64, ns.float32, xp=ns))
    lower = xp.to_numpy(as_lower_bound(x64 - 1e-300, ns.float32, xp=ns))  # a few go below 0
    assert upper.dtype == lower.dtype == np.float32
    assert np.all(upper.astype(np.float64) >= values)
    assert np.all(lower.astype(np.float64) <= values)
    assert np.all(lower >= 0)
    plain = values.astype(np.float32).astype(np.float64)
    assert np.any(plain < values)  # a plain cast would break upper bounds here,
    assert np.any(plain > values)  # and lower bounds here
    # Tight: at most two float32 steps away.
    finite = np.isfinite(values) & (values > 1e-37)
    np.testing.assert_allclose(upper[finite], values[finite], rtol=3 * 2.0**-23)
    np.testing.assert_allclose(lower[finite], values[finite], rtol=3 * 2.0**-23)
    same = xp.asarray(np.array([-1.0, 2.0]), dtype=np.float64)  # same dtype: no cast
    np.testing.assert_array_equal(xp.to_numpy(as_lower_bound(same, ns.float64, xp=ns)), [0, 2])


def test_a_lloyd_iteration_reads_the_host_once(monkeypatch, host_reads):
    """Per iteration the host reads only the empty-cluster count, the center shift and whether
    any label changed, in one transfer, however many blocks a pass has (here 32)."""
    import array_api_strict as xps

    import kmeans_xp._lib.budget as budget

    monkeypatch.setattr(budget, "HOST_BLOCK_BYTES_MIN", 64 * 192)  # 64-row blocks
    rng = np.random.default_rng(0)
    X_host = rng.uniform(size=(2000, 3))  # no clusters: labels keep changing for a while
    X = xps.asarray(X_host)
    C0 = xps.asarray(X_host[[0, 1, 2, 3]])
    counts = {}
    for iters in (2, 5):
        host_reads.clear()
        km = KMeans(4, init=C0, max_iter=iters, tol=0, algorithm="lloyd").fit(X)
        assert km.n_iter_ == iters
        counts[iters] = len(host_reads)
    assert (counts[5] - counts[2]) / 3 == 1, counts


def test_lloyd_holds_one_labels_and_one_partials_array():
    """Each pass overwrites the last pass's labels and partials (counting the labels it changes)
    instead of allocating new ones beside them: on the standard path a 5-iteration fit peaks at
    about 20 bytes per row besides X (measured 20.2; 32.2 when each pass allocated its own)."""
    import tracemalloc

    import array_api_strict as xps

    n = 200_000
    X_host = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    X, C0 = xps.asarray(X_host), xps.asarray(X_host[:16])
    fit = partial(KMeans(16, init=C0, max_iter=5, tol=0, algorithm="lloyd").fit, X)
    fit()  # one-off caches
    tracemalloc.start()
    km = fit()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert km.n_iter_ == 5
    assert peak / n < 24


def test_a_pass_that_fails_midway_is_not_taken_for_convergence(monkeypatch):
    """A pass retried after running out of memory at its last block had already overwritten the
    other blocks' labels, so its count of changed labels is not trusted: the fit is the one it
    would have been (the retry must not read as "no label changed")."""
    import array_api_strict as xps

    import kmeans_xp._algorithms.lloyd as lloyd_module
    import kmeans_xp._lib.budget as budget

    monkeypatch.setattr(budget, "HOST_BLOCK_BYTES_MIN", 64 * 192)  # 64-row blocks
    X_host = np.random.default_rng(0).uniform(size=(2000, 3))  # labels change for a while
    X, C0 = xps.asarray(X_host), xps.asarray(X_host[:6])
    expected = KMeans(6, init=C0, max_iter=50, tol=0, algorithm="lloyd").fit(X)
    assert expected.n_iter_ > 3
    # The pass before the last, which changes few labels (none in its last block, here).
    failing = expected.n_iter_ - 1
    original = lloyd_module.assign_for
    calls = {"passes": 0, "failed": False}

    def failing_assign_for(*args, **kwargs):
        make = original(*args, **kwargs)

        def make_assign(centers):
            calls["passes"] += 1
            assign, this_pass, rows = make(centers), calls["passes"], [0]

            def run(X_block):
                rows[0] += X_block.shape[0]
                if this_pass == failing and rows[0] == X.shape[0] and not calls["failed"]:
                    calls["failed"] = True  # at its last block
                    raise MemoryError("out of memory (test)")
                return assign(X_block)

            return run

        return make_assign

    monkeypatch.setattr(lloyd_module, "assign_for", failing_assign_for)
    got = KMeans(6, init=C0, max_iter=50, tol=0, algorithm="lloyd").fit(X)
    assert calls["failed"]
    assert got.n_iter_ == expected.n_iter_
    np.testing.assert_array_equal(np.asarray(got.labels_), np.asarray(expected.labels_))


@pytest.mark.parametrize("unit_weights", [True, False])
def test_lloyd_on_x_centered_once_equals_centering_per_block(xp, unit_weights, capsys):
    """``lloyd(X − offset, x_centered=True)`` (X centered once for the fit, as CuPy's cuBLAS
    path does) against ``lloyd(X)`` (each pass subtracts the offset per block): the same
    centers, iterations and verbose lines, through an empty cluster's refill (the moved rows'
    sums, or a new pass with weights)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 6)) + 100.0
    offset = X.mean(axis=0)
    C0 = X[:5].copy()
    C0[4] = 1e3  # no row is nearest: refilled at the first iteration
    w = np.ones(300) if unit_weights else rng.uniform(0.5, 2.0, size=300)
    common = {"max_iter": 10, "tol": 0.0, "verbose": True, "block_rows": 64, "xp": xp.xp}
    fits, printed = [], []
    for data, centered in ((X, False), (X - offset, True)):
        data, init, weights = xp.asarray(data), xp.asarray(C0), xp.asarray(w)
        fit = lloyd(data, init, weights, offset=xp.asarray(offset), x_centered=centered, **common)
        fits.append(fit)
        out = capsys.readouterr().out
        printed.append([_rounding_shift_as_zero(line) for line in out.splitlines()])
    (per_block, n_per_block), (once, n_once) = fits
    np.testing.assert_allclose(xp.to_numpy(once), xp.to_numpy(per_block), rtol=1e-12)
    assert n_once == n_per_block
    assert "refilled" in printed[0][0]
    assert printed[1] == printed[0]


def test_read_scalars_reads_the_device_once_and_passes_the_rest(xp, host_reads):
    """The loop's scalars: the namespace's own in one transfer (array-api-strict counts it),
    Python numbers and None as they are, another library's value on its own."""
    from kmeans_xp._algorithms.iterations import read_scalars

    values = [xp.asarray(np.array(3)), xp.asarray(np.array(0.25)), None, 7, np.float64(1.5)]
    values.append(np.array(2.0))  # NumPy's: another library's value except on NumPy
    host_reads.clear()
    got = read_scalars(values, xp=xp.xp, device=xp.device)
    assert got == [3.0, 0.25, None, 7, 1.5, 2.0]
    if xp.name == "array_api_strict":
        assert len(host_reads) == 1


def test_hamerly_switches_to_bounds_only_after_a_pass_that_changed_few_labels(monkeypatch):
    """An empty cluster at iteration 1 is refilled by moving a row; that one row is not what
    the iteration changed (every label was new), so the bounds do not start at iteration 2."""
    X = overlapping_blobs(0, n=600)
    calls = []
    iteration = [0]
    original = hamerly_module._nearest_two

    def nearest_two(*args, **kwargs):
        calls.append(iteration[0] + 1)  # the iteration running
        return original(*args, **kwargs)

    monkeypatch.setattr(hamerly_module, "_nearest_two", nearest_two)
    init = np.concatenate([X[:5], X[:1]])  # two equal centers: one empty cluster at first
    offset = np.mean(X, axis=0)
    xp = get_namespace(X)
    _, n_iter = hamerly_module.hamerly(
        X, init, np.ones(len(X)), offset=offset, max_iter=30, tol=0.0, verbose=False,
        block_rows=64, xp=xp, on_iteration=lambda i: iteration.__setitem__(0, i),
    )  # fmt: skip
    assert n_iter > 4
    # The switch (the one _nearest_two of every row) follows iteration 2 at the earliest:
    # iteration 2's changes are the first known.
    assert calls
    assert calls[0] >= 3


def test_hamerly_drops_bounds_that_prune_little_and_retries_after_doubling_waits(monkeypatch):
    """Unstructured data: the centers stay close for the points' spread, so nearly every row
    fails its bound test. The bounds are dropped for plain passes (a row-by-row check costs
    several), tried again after 2, 4, 8... plain passes, and the fit stays Lloyd's."""
    X = np.random.default_rng(0).normal(size=(3000, 24))
    init = X[:12].copy()
    tests = []  # (iteration, share of rows failing their bound test)
    iteration = [0]
    original = hamerly_module._rows_to_check

    def rows_to_check(labels, *args, **kwargs):
        count = original(labels, *args, **kwargs)
        tests.append((iteration[0] + 1, count / labels.shape[0]))
        return count

    monkeypatch.setattr(hamerly_module, "_rows_to_check", rows_to_check)
    offset = np.mean(X, axis=0)
    xp = get_namespace(X)
    centers, n_iter = hamerly_module.hamerly(
        X, init, np.ones(len(X)), offset=offset, max_iter=60, tol=0.0, verbose=False,
        block_rows=256, xp=xp, on_iteration=lambda i: iteration.__setitem__(0, i),
    )  # fmt: skip
    reference, reference_iter = lloyd(
        X, init, np.ones(len(X)), offset=offset, max_iter=60, tol=0.0, verbose=False,
        block_rows=256, xp=xp,
    )  # fmt: skip
    assert n_iter == reference_iter
    np.testing.assert_allclose(centers, reference, rtol=1e-10, atol=1e-12)
    dropped = [i for i, share in tests if share > hamerly_module._FALLBACK_FRACTION]
    assert len(dropped) >= 2, tests
    # Each retry waits twice as many plain passes as the one before (plus the switch pass).
    waits = [b - a for a, b in itertools.pairwise(dropped)]
    assert all(later > earlier for earlier, later in itertools.pairwise(waits)), dropped
