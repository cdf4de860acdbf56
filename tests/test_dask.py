"""Dask arrays as X, on a real dask.distributed LocalCluster (2 worker processes, loopback)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import blobs, nearest64

from kmeans_xp import ConvergenceWarning, KMeans, silhouette_score

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cluster's own start-up chatter
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None,
        )  # fmt: skip
    with cluster, distributed.Client(cluster) as c:
        yield c


def mixture(n=6000, k=8, d=5, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d))
    return means[rng.integers(0, k, n)] + rng.normal(size=(n, d))


def test_dask_fit_equals_the_in_memory_fit_from_the_same_centers(client):
    X = mixture()
    C0 = X[np.random.default_rng(1).choice(len(X), 8, replace=False)]
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(X))
    dX = da.from_array(X, chunks=(1000, 5))
    local = KMeans(8, init=C0, algorithm="lloyd").fit(X, sample_weight=w)
    distributed_fit = KMeans(8, init=C0).fit(dX, sample_weight=da.from_array(w, chunks=700))
    np.testing.assert_allclose(distributed_fit.cluster_centers_, local.cluster_centers_, rtol=1e-6)
    assert distributed_fit.n_iter_ == local.n_iter_
    assert distributed_fit.inertia_ == pytest.approx(local.inertia_, rel=1e-9)
    assert isinstance(distributed_fit.labels_, da.Array)
    np.testing.assert_array_equal(distributed_fit.labels_.compute(), local.labels_)
    lazy = distributed_fit.predict(dX)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), nearest64(X, distributed_fit.cluster_centers_))


def test_dask_empty_cluster_repair_equals_the_in_memory_one(client):
    X = mixture(seed=3)
    C0 = X[:8].copy()
    C0[7] = 1e3  # no row is nearest to it: refilled by the farthest row, as in memory
    dX = da.from_array(X, chunks=(1500, 2))  # column chunks are joined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        local = KMeans(8, init=C0, algorithm="lloyd", max_iter=3, tol=0).fit(X)
        remote = KMeans(8, init=C0, max_iter=3, tol=0).fit(dX)
    assert np.abs(remote.cluster_centers_).max() < 100
    np.testing.assert_allclose(remote.cluster_centers_, local.cluster_centers_, rtol=1e-6)


def test_dask_kmeans_parallel_finds_separated_blobs(client):
    centers = [[0, 0], [30, 0], [0, 30], [30, 30], [15, 60]]
    X, _ = blobs(300, centers, sd=1.0, seed=4)
    dX = da.from_array(X[np.random.default_rng(0).permutation(len(X))], chunks=400)
    km = KMeans(5, init="k-means||", random_state=0).fit(dX)
    np.testing.assert_allclose(
        np.sort(km.cluster_centers_, axis=0), np.sort(centers, axis=0), atol=0.3
    )
    random = KMeans(5, init="random", random_state=0, n_init=1).fit(dX)
    assert random.cluster_centers_.shape == (5, 2)


def test_dask_float32_stays_float32(client):
    X = mixture(seed=5).astype(np.float32)
    km = KMeans(8, init="k-means||", random_state=0).fit(da.from_array(X, chunks=2000))
    assert km.cluster_centers_.dtype == np.float32
    assert km.labels_.dtype == np.int64


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "match"),
    [
        (lambda X: X, {"init": "k-means++"}, ValueError, r"init='k-means\|\|'"),
        (lambda X: X, {"init": "random", "n_init": 3}, ValueError, r"n_init=3"),
        (lambda X: X[:, 0], {"init": "random"}, ValueError, r"2-D"),
        (lambda X: da.where(X > 5, np.nan, X), {"init": "random"}, ValueError, r"NaN"),
        (lambda X: X * 1e160, {"init": "random"}, ValueError, r"too large for K-Means in float64"),
        (lambda X: X[:3], {"init": "random"}, ValueError, r"n_samples=3 should be >= n_clusters=8"),
        (lambda X: X, {"matmul_precision": "high"}, ValueError, r"apply to in-memory X"),
        (lambda X: X, {"device": "cuda"}, ValueError, r"device='cuda' apply to in-memory X"),
        (lambda X: X, {"matmul_precision": "tf32"}, ValueError, r"matmul_precision must be"),
    ],
)
def test_dask_bad_input(client, make, kwargs, error, match):
    dX = da.from_array(mixture(seed=6), chunks=1000)
    with pytest.raises(error, match=match):
        KMeans(8, random_state=0, **kwargs).fit(make(dX))


@pytest.mark.parametrize(
    ("weights", "error", "match"),
    [
        (np.r_[np.nan, np.ones(5999)], ValueError, r"sample_weight contains 1 NaN"),
        (np.r_[np.inf, np.ones(5999)], ValueError, r"sample_weight contains 1 NaN or infinite"),
        (-np.ones(6000), ValueError, r"sample_weight must be non-negative, got 6000 negative"),
        (np.zeros(6000), ValueError, r"sample_weight must not be all zero"),
        (np.full(6000, 1e305), ValueError, r"sample_weight is too large for X: its values sum"),
        (np.ones(6000, dtype=complex), TypeError, r"sample_weight must hold real numbers"),
    ],
)
def test_dask_bad_sample_weight(client, weights, error, match):
    dX = da.from_array(mixture(seed=6), chunks=1000)
    with pytest.raises(error, match=match):
        KMeans(8, init="random", random_state=0).fit(dX, sample_weight=da.from_array(weights))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"algorithm": "bogus"}, r"algorithm must be one of 'auto', 'lloyd', 'hamerly', 'elkan'"),
        ({"verbose": -1}, r"verbose must be"),
        ({"n_init": "always"}, r"n_init must be 'auto' or an integer"),
        ({"init": "kmeans"}, r"init must be 'k-means\+\+', 'k-means\|\|', 'random'"),
    ],
)
def test_dask_fit_refuses_the_parameters_an_in_memory_fit_refuses(client, params, match):
    """One validator: what an in-memory fit refuses, a Dask fit refuses with the same message."""
    X = mixture(seed=6)
    with pytest.raises(ValueError, match=match):
        KMeans(8, random_state=0, **params).fit(X)
    with pytest.raises(ValueError, match=match):
        KMeans(8, random_state=0, **params).fit(da.from_array(X, chunks=1000))


def test_dask_verbose_lines_are_the_in_memory_ones(client, capsys):
    """One driver prints every loop's lines: a Dask fit's iterations and stop reason read as the
    in-memory fit's from the same centers (without the inertia, which would cost a pass)."""
    X = mixture(seed=4)
    C0 = X[:8].copy()
    KMeans(8, init=C0, algorithm="lloyd", verbose=1).fit(X)
    local = capsys.readouterr().out.splitlines()
    KMeans(8, init=C0, verbose=1).fit(da.from_array(X, chunks=(1000, 5)))
    remote = capsys.readouterr().out.splitlines()
    iterations = [line for line in local if line.startswith("Iteration ")]
    assert len(iterations) == sum(line.startswith("Iteration ") for line in remote) > 1
    assert remote[-1] == local[-1]  # the same stop rule, iteration and shift
    assert remote[-1].startswith("Converged at iteration")
    for mine, theirs in zip(remote[-3:-1], local[-3:-1], strict=True):
        assert mine.split(": ")[0] == theirs.split(": ")[0]
        assert "center shift" in mine
        assert "inertia" not in mine


@pytest.mark.parametrize("weighted", [False, True])
def test_dask_random_init_picks_the_rows_an_in_memory_fit_picks(client, weighted):
    """Same seed, same initial rows: one iteration from init='random' gives the in-memory
    centers, for every seed, with and without weights."""
    X = mixture(seed=7)
    w = np.random.default_rng(8).uniform(0.5, 2.0, len(X)) if weighted else None
    dX = da.from_array(X, chunks=(900, 5))
    dw = None if w is None else da.from_array(w, chunks=900)
    for seed in range(5):
        params = {"init": "random", "n_init": 1, "max_iter": 1, "random_state": seed}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            local = KMeans(8, algorithm="lloyd", **params).fit(X, sample_weight=w)
            remote = KMeans(8, **params).fit(dX, sample_weight=dw)
        np.testing.assert_allclose(remote.cluster_centers_, local.cluster_centers_, rtol=1e-9)


def test_dask_float64_weights_beyond_float32_x_are_refused_before_the_cast(client):
    dX = da.from_array(mixture(seed=6).astype(np.float32), chunks=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 'overflow encountered in cast'
        with pytest.raises(ValueError, match=r"largest value, 1e\+300, does not fit X's dtype"):
            KMeans(8, init="random").fit(dX, sample_weight=da.full(6000, 1e300, chunks=1000))


def test_each_chunk_is_passed_once_per_iteration(monkeypatch):
    """Labels kept on the workers and stats fetched must come from one run of each task."""
    import dask

    import kmeans_xp._algorithms.dask as dask_module

    calls = []
    original = dask_module._chunk_pass

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(dask_module, "_chunk_pass", counting)
    X = mixture(seed=7)
    with dask.config.set(scheduler="synchronous"):
        KMeans(8, init=X[:8], max_iter=2, tol=0).fit(da.from_array(X, chunks=2000))
    assert len(calls) == 2 * 3  # 2 iterations × 3 chunks


def test_a_dask_fit_saves_and_loads(client, tmp_path):
    from kmeans_xp import load

    X = mixture(seed=8)
    km = KMeans(8, init="k-means||", random_state=0).fit(da.from_array(X, chunks=2000))
    km.save(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.cluster_centers_, km.cluster_centers_)
    np.testing.assert_array_equal(loaded.labels_, km.labels_.compute())
    np.testing.assert_array_equal(loaded.predict(X), km.labels_.compute())


# ---- CuPy chunks: on a GPU with CuPy (and dask-cuda for the cluster), skipped elsewhere --------


def _cupy_dask_problem(cupy, dtype=np.float64):
    X = mixture(n=20000, d=6, seed=9).astype(dtype)
    C0 = X[np.random.default_rng(1).choice(len(X), 8, replace=False)]
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(X))
    dX = da.from_array(X, chunks=(5000, 6)).map_blocks(cupy.asarray)
    local = KMeans(8, init=C0, algorithm="lloyd")
    local.fit(cupy.asarray(X), sample_weight=cupy.asarray(w))
    return X, C0, w, dX, local


def _assert_cupy_dask_fit_matches(cupy, remote, local, X):
    np.testing.assert_allclose(remote.cluster_centers_, local.cluster_centers_.get(), rtol=1e-6)
    assert remote.n_iter_ == local.n_iter_
    assert remote.inertia_ == pytest.approx(local.inertia_, rel=1e-9)
    assert isinstance(remote.labels_, da.Array)
    assert isinstance(remote.labels_._meta, cupy.ndarray)
    labels = remote.labels_.compute()
    assert isinstance(labels, cupy.ndarray)
    np.testing.assert_array_equal(labels.get(), local.labels_.get())
    np.testing.assert_array_equal(labels.get(), nearest64(X, remote.cluster_centers_))


def test_dask_with_cupy_chunks_equals_the_in_memory_cupy_fit(backend_named):
    """Threads on one GPU: every task meets CuPy chunks; weights given as NumPy follow X."""
    cupy = backend_named("cupy").module
    import dask

    X, C0, w, dX, local = _cupy_dask_problem(cupy)
    with dask.config.set(scheduler="threads"):
        remote = KMeans(8, init=C0).fit(dX, sample_weight=w)
        _assert_cupy_dask_fit_matches(cupy, remote, local, X)
        lazy = remote.predict(dX)
        assert isinstance(lazy, da.Array)
        assert isinstance(lazy._meta, cupy.ndarray)
        np.testing.assert_array_equal(lazy.compute().get(), local.labels_.get())
        distances = remote.transform(dX)
        assert isinstance(distances._meta, cupy.ndarray)
        np.testing.assert_allclose(
            distances.compute().get(), local.transform(cupy.asarray(X)).get(), rtol=1e-6
        )
        assert remote.score(dX, sample_weight=w) == pytest.approx(-local.inertia_, rel=1e-9)
        unweighted = KMeans(8, init=C0, max_iter=5).fit(dX)  # weights of ones, CuPy chunks
        assert unweighted.cluster_centers_.dtype == np.float64


@pytest.mark.parametrize("init", ["k-means||", "random"])
def test_dask_with_cupy_chunks_initialises_on_the_chunks(backend_named, init):
    cupy = backend_named("cupy").module
    import dask

    centers = [[0, 0], [30, 0], [0, 30], [30, 30], [15, 60]]
    X, _ = blobs(300, centers, sd=1.0, seed=4, dtype=np.float32)
    X = X[np.random.default_rng(0).permutation(len(X))]
    dX = da.from_array(X, chunks=400).map_blocks(cupy.asarray)
    with dask.config.set(scheduler="threads"):
        km = KMeans(5, init=init, random_state=0, n_init=1).fit(dX)
    assert km.cluster_centers_.dtype == np.float32
    assert np.all(np.isfinite(km.cluster_centers_))
    if init == "k-means||":  # one seed per blob on data this well separated
        np.testing.assert_allclose(
            np.sort(km.cluster_centers_, axis=0), np.sort(centers, axis=0), atol=0.3
        )


def test_dask_cuda_local_cluster_fit_equals_the_in_memory_cupy_fit(backend_named):
    """dask-cuda's LocalCUDACluster, one worker process on this GPU, as README.md shows."""
    cupy = backend_named("cupy").module
    dask_cuda = pytest.importorskip("dask_cuda")

    X, C0, w, dX, local = _cupy_dask_problem(cupy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cluster's own start-up chatter
        cluster = dask_cuda.LocalCUDACluster(
            n_workers=1, CUDA_VISIBLE_DEVICES="0", dashboard_address=None
        )
    with cluster, distributed.Client(cluster):
        remote = KMeans(8, init=C0).fit(dX, sample_weight=da.from_array(w, chunks=5000))
        _assert_cupy_dask_fit_matches(cupy, remote, local, X)
        assert isinstance(remote.predict(dX).compute(), cupy.ndarray)


def test_a_dask_dataframe_is_fitted_on_the_cluster_with_its_column_names(client):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X = mixture(seed=7)
    C0 = X[:8].copy()
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    dframe = dd.from_pandas(frame, npartitions=3)
    local = KMeans(8, init=C0, algorithm="lloyd").fit(X)
    remote = KMeans(8, init=C0).fit(dframe)
    np.testing.assert_allclose(remote.cluster_centers_, local.cluster_centers_, rtol=1e-6)
    assert isinstance(remote.labels_, da.Array)
    assert remote.feature_names_in_.tolist() == list(frame.columns)
    lazy = remote.predict(dframe)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), local.labels_)
    with pytest.raises(ValueError, match=r"feature names should match"):
        remote.predict(dframe[list(frame.columns[::-1])])
    np.testing.assert_allclose(remote.transform(dframe).compute(), local.transform(X), rtol=1e-6)
    with pytest.raises(TypeError, match=r"X is a dask collection; dask arrays and DataFrames"):
        silhouette_score(dframe, local.labels_)


def test_dask_transform_and_score_equal_the_in_memory_ones(client):
    X = mixture(seed=10)
    w = np.random.default_rng(10).uniform(0.5, 2.0, X.shape[0])
    model = KMeans(8, random_state=0, n_init=1).fit(X)
    dX = da.from_array(X, chunks=1000)
    lazy = model.transform(dX)
    assert isinstance(lazy, da.Array)
    assert lazy.shape == (X.shape[0], 8)
    np.testing.assert_allclose(lazy.compute(), model.transform(X), rtol=1e-7, atol=1e-9)
    reference = ((X - model.cluster_centers_[model.predict(X)]) ** 2).sum(axis=1)
    assert model.score(dX) == pytest.approx(-reference.sum(), rel=1e-9)
    weighted = model.score(dX, sample_weight=da.from_array(w, chunks=1000))
    assert weighted == pytest.approx(-(w * reference).sum(), rel=1e-9)
    assert model.score(dX, sample_weight=w) == pytest.approx(weighted, rel=1e-12)
    np.testing.assert_allclose(
        KMeans(8, init=X[:8]).fit_transform(dX).compute(),
        KMeans(8, init=X[:8], algorithm="lloyd").fit_transform(X),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match=r"X has 4 features, but KMeans is expecting 5"):
        model.transform(dX[:, :4])
    with pytest.raises(ValueError, match=r"X contains 5 NaN"):
        model.score(da.from_array(np.r_[X[:-1], [[np.nan] * 5]], chunks=1000))
    with pytest.raises(ValueError, match=r"sample_weight is too large for X"):
        model.score(dX, sample_weight=np.full(X.shape[0], 1e305))
    with_nan = X.copy()
    with_nan[2500, 0] = np.inf
    with pytest.raises(ValueError, match=r"X \(a chunk\) contains 1 NaN or infinite"):
        model.transform(da.from_array(with_nan, chunks=1000)).compute()


def test_dask_predict_reads_numbers_as_in_memory_and_checks_what_it_is_given(client):
    X = mixture(seed=8)
    model = KMeans(8, random_state=0, n_init=1).fit(X)
    whole = np.round(X).astype(np.int64)  # integers are read as float64, as in memory
    lazy = model.predict(da.from_array(whole, chunks=1000))
    np.testing.assert_array_equal(lazy.compute(), model.predict(whole))
    with pytest.raises(ValueError, match=r"X has 4 features, but KMeans is expecting 5 features"):
        model.predict(da.from_array(X[:, :4], chunks=1000))
    with pytest.raises(ValueError, match=r"Complex data not supported: X has complex dtype"):
        model.predict(da.from_array(X.astype(complex), chunks=1000))
    with pytest.raises(TypeError, match=r"X must hold numbers, got dtype <U"):
        model.predict(da.from_array(X.astype(str), chunks=1000))
    with_nan = X.copy()
    with_nan[1500, 2] = np.nan
    lazy = model.predict(da.from_array(with_nan, chunks=1000))  # lazy: checked in the task
    with pytest.raises(ValueError, match=r"X \(a chunk\) contains 1 NaN or infinite value"):
        lazy.compute()


def test_dask_dataframe_columns_are_checked_before_any_task_runs(client):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X = mixture(seed=9)
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    with_text = frame.assign(name="x")
    with pytest.raises(TypeError, match=r"column\(s\) 'name' \(.*\) do not; encode or drop"):
        KMeans(8, init="random").fit(dd.from_pandas(with_text, npartitions=3))
    with pytest.raises(ValueError, match=r"Complex data not supported: X has complex column"):
        KMeans(8, init="random").fit(dd.from_pandas(frame.astype(complex), npartitions=3))
    # pandas' nullable types and mixed columns are read as float64, missing values as NaN.
    nullable = frame.astype("Float64")
    model = KMeans(8, init=X[:8]).fit(dd.from_pandas(nullable, npartitions=3))
    local = KMeans(8, init=X[:8], algorithm="lloyd").fit(X)
    np.testing.assert_allclose(model.cluster_centers_, local.cluster_centers_, rtol=1e-6)
    flags = frame.assign(flag=X[:, 0] > 0)  # bool beside floats: objects in to_dask_array
    model = KMeans(8, init=np.c_[X[:8], X[:8, 0] > 0]).fit(dd.from_pandas(flags, npartitions=3))
    assert model.cluster_centers_.dtype == np.float64
    nullable.loc[10, "f1"] = pd.NA
    with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite value"):
        KMeans(8, init="random").fit(dd.from_pandas(nullable, npartitions=3))


def test_elbow_on_a_dask_array_fits_each_k_on_the_cluster(client):
    from kmeans_xp import elbow
    from kmeans_xp._tools.metrics import subsample_rows

    rng = np.random.default_rng(11)
    corners = [(0, 0), (10, 0), (0, 10), (10, 10)]
    X = np.concatenate([rng.normal(size=(500, 2)) + c for c in corners])
    dX = da.from_array(X, chunks=700)
    options = {"init": "k-means||", "random_state": 0}
    result = elbow(dX, range(1, 7), silhouette=True, silhouette_sample_size=300, **options)
    assert result.suggested_k == 4
    rows = subsample_rows(len(X), 300, 0)  # the rows an in-memory elbow scores
    for k, inertia, score in zip(result.ks, result.inertias, result.silhouettes, strict=True):
        model = KMeans(k, **options).fit(dX)
        assert inertia == pytest.approx(model.inertia_, rel=1e-12)
        if k == 1:
            assert np.isnan(score)
        else:
            labels = model.labels_.compute()[rows]
            assert score == pytest.approx(silhouette_score(X[rows], labels), rel=1e-12)
    with pytest.raises(ValueError, match=r"silhouette=True on a Dask array needs silhouette_sa"):
        elbow(dX, range(1, 3), silhouette=True, **options)
    with pytest.raises(ValueError, match=r"use init='k-means\|\|'"):
        elbow(dX, range(1, 3))
    with pytest.raises(ValueError, match=r"X has unknown chunk sizes; call X.compute_chunk_siz"):
        elbow(dX[dX[:, 0] > 5], range(1, 3), **options)


def test_dask_keeps_duplicate_initial_centers_as_in_memory(client):
    """The empty-cluster rule is the in-memory one: no row at distance 0 is moved."""
    X = np.array([[0, 0], [1, 1], [1, 1], [1, 0], [0, 1]], dtype=np.float64)
    with pytest.warns(ConvergenceWarning):
        local = KMeans(5, init=X, n_init=1).fit(X)
    remote = KMeans(5, init=X, n_init=1).fit(da.from_array(X, chunks=2))
    assert remote.n_iter_ == local.n_iter_ == 1
    np.testing.assert_array_equal(remote.cluster_centers_, local.cluster_centers_)
