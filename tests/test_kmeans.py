"""The fit on every backend, against float64 brute force and against itself on other backends."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import assert_labels_are_argmin, blobs, inertia64, nearest64, same_partition

import kmeans_xp
import kmeans_xp._algorithms.fit as fit_module
import kmeans_xp._algorithms.init as init_module
import kmeans_xp._algorithms.prepare as prepare_module
from kmeans_xp import ConvergenceWarning, KMeans, kmeans
from kmeans_xp._estimators.params import resolve_n_init
from kmeans_xp._lib.compat import get_namespace, library_name, to_numpy

THREE_CENTERS = [[0.0, 0.0], [5.0, 5.0], [10.0, 10.0]]


def test_tutorial_three_blobs_are_recovered(xp):
    from kmeans_xp._tools.demo import tutorial_blobs

    X = tutorial_blobs()
    truth = np.repeat([0, 1, 2], 50)
    km = KMeans(n_clusters=3, random_state=0).fit(xp.asarray(X))
    assert same_partition(xp.to_numpy(km.labels_), truth)
    centers = np.sort(xp.to_numpy(km.cluster_centers_), axis=0)
    np.testing.assert_allclose(centers, [[0, 0], [5, 5], [10, 10]], atol=0.35)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_labels_centers_and_inertia_agree_with_brute_force(xp, dtype, init):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4)).astype(dtype) + np.array([0, 100, -50, 3], dtype=dtype)
    km = KMeans(n_clusters=6, init=init, random_state=2, max_iter=50).fit(xp.asarray(X))
    C = xp.to_numpy(km.cluster_centers_)
    labels = xp.to_numpy(km.labels_)
    assert C.dtype == dtype
    assert C.shape == (6, 4)
    assert labels.shape == (300,)
    assert labels.dtype == np.int64
    assert_labels_are_argmin(X, C, labels)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert km.inertia_ == pytest.approx(inertia64(X, C, labels), rel=rtol)
    assert isinstance(km.inertia_, float)
    assert isinstance(km.n_iter_, int)
    assert km.n_features_in_ == 4
    # After convergence each center is the mean of its points.
    if km.n_iter_ < 50:
        for j in np.unique(labels):
            np.testing.assert_allclose(C[j], X[labels == j].mean(axis=0), rtol=1e-4, atol=1e-4)


def test_fitted_arrays_are_of_the_input_library_and_device(xp):
    X, _ = blobs(20, THREE_CENTERS)
    Xd = xp.asarray(X)
    km = KMeans(n_clusters=3, random_state=0).fit(Xd)
    for arr in (km.cluster_centers_, km.labels_, km.predict(Xd), km.transform(Xd)):
        assert type(arr) is type(Xd)
        assert library_name(arr) == library_name(Xd)
    if xp.name.startswith("torch") or xp.name == "cupy":
        assert km.cluster_centers_.device == Xd.device
        assert km.labels_.device == Xd.device


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_is_preserved(xp, dtype):
    X, _ = blobs(10, THREE_CENTERS, dtype=dtype)
    km = KMeans(n_clusters=3, random_state=0).fit(xp.asarray(X))
    assert km.cluster_centers_.dtype == xp.asarray(X).dtype
    assert km.transform(xp.asarray(X)).dtype == xp.asarray(X).dtype


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16])
def test_integer_and_half_input_become_the_default_float(xp, dtype):
    if xp.name == "array_api_strict" and dtype == np.float16:
        pytest.skip("array_api_strict has no float16")
    X = np.array([[0, 0], [0, 1], [10, 10], [10, 11]], dtype=dtype)
    km = KMeans(n_clusters=2, random_state=0).fit(xp.asarray(X))
    default = xp.xp.__array_namespace_info__().default_dtypes(device=xp.device)["real floating"]
    assert km.cluster_centers_.dtype == default
    assert km.inertia_ == pytest.approx(1.0)


def test_same_seed_same_result_on_every_backend(xp):
    X, _ = blobs(40, [[0, 0, 0], [6, 0, 0], [0, 6, 0], [0, 0, 6], [6, 6, 6]], seed=3)
    reference = KMeans(n_clusters=5, random_state=7).fit(X)
    km = KMeans(n_clusters=5, random_state=7).fit(xp.asarray(X))
    np.testing.assert_array_equal(xp.to_numpy(km.labels_), reference.labels_)
    np.testing.assert_allclose(
        xp.to_numpy(km.cluster_centers_), reference.cluster_centers_, rtol=1e-10
    )
    assert km.n_iter_ == reference.n_iter_
    assert km.inertia_ == pytest.approx(reference.inertia_, rel=1e-10)


@pytest.mark.parametrize("unit_weights", [True, False])
def test_lloyd_through_the_gemm_path_with_a_refill_matches_numpy(
    use_options, xp, monkeypatch, unit_weights
):
    """A Lloyd fit through the GEMM path (the fused small-k·d pass switched off), from an init
    whose last center takes no row: on a GPU this runs CuPy's kernels on X centered once per
    fit, blocks sized by CuPy's own count, and the refill's moved sums (unit weights) or a new
    pass; the result equals NumPy's from the same init."""

    use_options(small_pass=False)
    X, _ = blobs(60, [[0, 0, 0], [6, 0, 0], [0, 6, 0], [0, 0, 6]], seed=8)
    X = X + 50.0  # far from the origin: centering matters
    init = np.concatenate([X[[0, 60, 120]], [[500.0, 500.0, 500.0]]])
    w = None if unit_weights else np.random.default_rng(3).uniform(0.5, 2.0, size=len(X))
    reference = KMeans(4, init=init, algorithm="lloyd").fit(X, sample_weight=w)
    km = KMeans(4, init=init, algorithm="lloyd").fit(
        xp.asarray(X), sample_weight=None if w is None else xp.asarray(w)
    )
    np.testing.assert_array_equal(xp.to_numpy(km.labels_), reference.labels_)
    np.testing.assert_allclose(
        xp.to_numpy(km.cluster_centers_), reference.cluster_centers_, rtol=1e-10
    )
    assert km.n_iter_ == reference.n_iter_
    assert len(np.unique(reference.labels_)) == 4  # the far center was refilled


def test_float32_agrees_with_float64(xp):
    X, _ = blobs(50, THREE_CENTERS, seed=4)
    a = KMeans(n_clusters=3, random_state=1).fit(xp.asarray(X.astype(np.float32)))
    b = KMeans(n_clusters=3, random_state=1).fit(X)
    np.testing.assert_array_equal(xp.to_numpy(a.labels_), b.labels_)
    np.testing.assert_allclose(xp.to_numpy(a.cluster_centers_), b.cluster_centers_, atol=1e-5)


def test_sample_weight_equals_repeating_rows(xp):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 3))
    repeats = rng.integers(0, 4, size=60)
    repeats[0] = 1  # at least one row with positive weight
    init = X[[0, 10, 20, 30]] + 0.01
    X_rep = np.repeat(X, repeats, axis=0)
    weighted = KMeans(n_clusters=4, init=init, tol=0).fit(
        xp.asarray(X), sample_weight=xp.asarray(repeats.astype(np.float64))
    )
    repeated = KMeans(n_clusters=4, init=init, tol=0).fit(xp.asarray(X_rep))
    np.testing.assert_allclose(
        xp.to_numpy(weighted.cluster_centers_), xp.to_numpy(repeated.cluster_centers_), rtol=1e-9
    )
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-9)


def test_sample_weight_in_inertia(xp):
    X = np.array([[0.0], [1.0], [10.0], [12.0]])
    w = np.array([3.0, 1.0, 1.0, 1.0])
    km = KMeans(n_clusters=2, init=np.array([[0.0], [11.0]])).fit(
        xp.asarray(X), sample_weight=xp.asarray(w)
    )
    np.testing.assert_allclose(np.sort(xp.to_numpy(km.cluster_centers_)[:, 0]), [0.25, 11.0])
    # 3 * 0.25² + 0.75² + 1 + 1
    assert km.inertia_ == pytest.approx(3 * 0.0625 + 0.5625 + 2.0)


def test_zero_weight_points_do_not_move_centers(xp):
    X = np.array([[0.0, 0.0], [0.0, 2.0], [100.0, 100.0], [10.0, 0.0], [10.0, 2.0]])
    w = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    km = KMeans(n_clusters=2, random_state=0, n_init=3).fit(
        xp.asarray(X), sample_weight=xp.asarray(w)
    )
    centers = np.sort(xp.to_numpy(km.cluster_centers_), axis=0)
    np.testing.assert_allclose(centers, [[0.0, 1.0], [10.0, 1.0]])


def test_empty_cluster_is_refilled_not_nan(xp):
    X, _ = blobs(30, THREE_CENTERS, seed=6)
    # The third initial center is so far away that no point is nearest to it.
    init = np.array([[0.0, 0.0], [10.0, 10.0], [1000.0, 1000.0]])
    km = KMeans(n_clusters=3, init=init, max_iter=100).fit(xp.asarray(X))
    C = xp.to_numpy(km.cluster_centers_)
    labels = xp.to_numpy(km.labels_)
    assert np.isfinite(C).all()
    assert np.all(np.bincount(labels, minlength=3) > 0)
    assert np.abs(C).max() < 20
    assert_labels_are_argmin(X, C, labels)


def test_empty_cluster_repair_is_deterministic(xp):
    X, _ = blobs(30, THREE_CENTERS, seed=6)
    init = np.array([[0.0, 0.0], [10.0, 10.0], [1000.0, 1000.0]])
    one = KMeans(n_clusters=3, init=init, max_iter=1).fit(xp.asarray(X))
    two = KMeans(n_clusters=3, init=init, max_iter=1).fit(xp.asarray(X))
    # After one iteration the empty cluster took the point farthest from its center.
    d0 = ((X - init[0]) ** 2).sum(1)
    d2 = ((X - init[1]) ** 2).sum(1)
    dist = np.where(d0 <= d2, d0, d2)
    farthest = X[np.argmax(dist)]
    C = xp.to_numpy(one.cluster_centers_)
    np.testing.assert_allclose(C[2], farthest)
    # Same choice every time; GPU atomics may change the last bit of the other centers' sums.
    np.testing.assert_allclose(C, xp.to_numpy(two.cluster_centers_), rtol=1e-13)


def test_fewer_distinct_points_than_clusters_warns(xp):
    X = np.array([[0.0, 0.0]] * 5 + [[1.0, 1.0]] * 5)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(2\).*n_clusters \(3\)"):
        km = KMeans(n_clusters=3, random_state=0).fit(xp.asarray(X))
    assert np.isfinite(xp.to_numpy(km.cluster_centers_)).all()
    assert km.inertia_ == pytest.approx(0.0)


def test_n_clusters_one_and_n_clusters_equal_to_n_samples(xp):
    X, _ = blobs(5, THREE_CENTERS, seed=7)
    one = KMeans(n_clusters=1).fit(xp.asarray(X))
    np.testing.assert_allclose(xp.to_numpy(one.cluster_centers_)[0], X.mean(axis=0))
    assert one.inertia_ == pytest.approx(((X - X.mean(axis=0)) ** 2).sum())
    every = KMeans(n_clusters=15, random_state=0).fit(xp.asarray(X))
    assert every.inertia_ == pytest.approx(0.0, abs=1e-12)
    assert len(np.unique(xp.to_numpy(every.labels_))) == 15


def test_single_feature(xp):
    X = np.array([[0.0], [0.5], [1.0], [20.0], [20.5], [21.0]])
    km = KMeans(n_clusters=2, random_state=0).fit(xp.asarray(X))
    np.testing.assert_allclose(np.sort(xp.to_numpy(km.cluster_centers_)[:, 0]), [0.5, 20.5])


def test_results_do_not_depend_on_the_block_size(xp, monkeypatch):
    X, _ = blobs(100, [*THREE_CENTERS, [0.0, 10.0]], seed=8)
    whole = KMeans(n_clusters=4, random_state=3, tol=0).fit(xp.asarray(X))
    monkeypatch.setattr(prepare_module, "block_rows_for", lambda *a, **k: 7)
    monkeypatch.setattr(init_module, "block_rows_for", lambda *a, **k: 7)
    blocked = KMeans(n_clusters=4, random_state=3, tol=0).fit(xp.asarray(X))
    np.testing.assert_array_equal(xp.to_numpy(blocked.labels_), xp.to_numpy(whole.labels_))
    np.testing.assert_allclose(
        xp.to_numpy(blocked.cluster_centers_), xp.to_numpy(whole.cluster_centers_), rtol=1e-12
    )
    assert blocked.inertia_ == pytest.approx(whole.inertia_, rel=1e-12)
    np.testing.assert_array_equal(
        xp.to_numpy(blocked.predict(xp.asarray(X))), xp.to_numpy(whole.labels_)
    )


def test_data_far_from_the_origin_in_float32(xp):
    """Centering keeps the GEMM form exact enough where raw float32 distances would cancel."""
    X, _ = blobs(100, [[0.0, 0.0], [3.0, 0.0]], sd=0.5, seed=9)
    X = (X + 1e4).astype(np.float32)
    km = KMeans(n_clusters=2, random_state=0).fit(xp.asarray(X))
    C = xp.to_numpy(km.cluster_centers_)
    assert_labels_are_argmin(X, C, xp.to_numpy(km.labels_))
    assert km.inertia_ == pytest.approx(inertia64(X, C, xp.to_numpy(km.labels_)), rel=1e-5)


# ---- convergence rules -------------------------------------------------------------------------


def test_strict_convergence_stops_when_labels_stop_changing(xp):
    X, _ = blobs(30, THREE_CENTERS, seed=10)
    init = np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 10.0]])
    km = KMeans(n_clusters=3, init=init, tol=0.0, max_iter=300).fit(xp.asarray(X))
    # With tol=0 only unchanged labels can stop it early; well-separated blobs settle at once.
    assert km.n_iter_ == 2


def test_large_tol_stops_after_one_iteration(xp):
    X, _ = blobs(30, THREE_CENTERS, seed=10)
    init = X[:3]
    km = KMeans(n_clusters=3, init=init, tol=1e6).fit(xp.asarray(X))
    assert km.n_iter_ == 1
    # Labels are recomputed for the returned centers after a non-strict stop.
    assert_labels_are_argmin(X, xp.to_numpy(km.cluster_centers_), xp.to_numpy(km.labels_))


def test_tol_is_relative_to_the_data_variance(xp):
    X, _ = blobs(30, THREE_CENTERS, seed=11)
    init = X[[0, 1, 2]]
    small = KMeans(n_clusters=3, init=init, tol=1e-4).fit(xp.asarray(X))
    scaled = KMeans(n_clusters=3, init=init * 1000, tol=1e-4).fit(xp.asarray(X * 1000))
    assert small.n_iter_ == scaled.n_iter_
    np.testing.assert_array_equal(xp.to_numpy(small.labels_), xp.to_numpy(scaled.labels_))


def test_max_iter_is_respected(xp):
    rng = np.random.default_rng(12)
    X = rng.normal(size=(500, 2))
    km = KMeans(n_clusters=20, init="random", n_init=1, max_iter=3, tol=0, random_state=0)
    km.fit(xp.asarray(X))
    assert km.n_iter_ == 3
    assert_labels_are_argmin(X, xp.to_numpy(km.cluster_centers_), xp.to_numpy(km.labels_))


def test_n_init_keeps_the_best_run(xp):
    rng = np.random.default_rng(13)
    X = rng.normal(size=(200, 2))
    best_of_5 = KMeans(n_clusters=8, init="random", n_init=5, random_state=0).fit(xp.asarray(X))
    rng_state = np.random.default_rng(0)
    singles = [
        KMeans(n_clusters=8, init="random", n_init=1, random_state=rng_state).fit(X).inertia_
        for _ in range(5)
    ]
    assert best_of_5.inertia_ == pytest.approx(min(singles), rel=1e-9)


def test_n_init_auto():
    assert resolve_n_init("auto", "k-means++") == 1
    assert resolve_n_init("auto", "random") == 10
    assert resolve_n_init("auto", np.zeros((2, 2))) == 1
    assert resolve_n_init("auto", lambda X, k, rs: X[:k]) == 10


def test_explicit_init_with_n_init_warns_and_runs_once(xp):
    X, _ = blobs(10, THREE_CENTERS)
    with pytest.warns(RuntimeWarning, match="only one init"):
        KMeans(n_clusters=3, init=X[:3], n_init=4).fit(xp.asarray(X))


def test_callable_init_receives_the_data_and_a_generator(xp):
    X, _ = blobs(10, THREE_CENTERS)
    seen = {}

    def first_rows(data, n_clusters, random_state):
        seen["args"] = (data.shape, n_clusters, type(random_state))
        return data[:n_clusters, :]

    km = KMeans(n_clusters=3, init=first_rows, n_init=1).fit(xp.asarray(X))
    assert seen["args"] == ((30, 2), 3, np.random.Generator)
    assert km.n_iter_ >= 1


def test_init_may_be_numpy_or_a_list_with_any_backend(xp):
    X, _ = blobs(10, THREE_CENTERS)
    a = KMeans(n_clusters=3, init=THREE_CENTERS).fit(xp.asarray(X))
    b = KMeans(n_clusters=3, init=np.array(THREE_CENTERS)).fit(xp.asarray(X))
    c = KMeans(n_clusters=3, init=xp.asarray(np.array(THREE_CENTERS))).fit(xp.asarray(X))
    for m in (b, c):
        np.testing.assert_array_equal(xp.to_numpy(m.labels_), xp.to_numpy(a.labels_))


def test_verbose_prints_iterations_and_the_stop_reason(xp, capsys):
    X, _ = blobs(20, THREE_CENTERS)
    KMeans(n_clusters=3, random_state=0, verbose=1).fit(xp.asarray(X))
    out = capsys.readouterr().out
    assert "Iteration 1: inertia" in out
    assert "center shift" in out
    assert "Converged at iteration" in out
    KMeans(n_clusters=3, init="random", n_init=1, random_state=0, verbose=True, max_iter=1).fit(
        xp.asarray(X)
    )
    assert "Stopped after max_iter=1" in capsys.readouterr().out


# ---- the fitted model --------------------------------------------------------------------------


def test_predict_transform_score_fit_predict(xp):
    X, _ = blobs(20, THREE_CENTERS, seed=14)
    Xd = xp.asarray(X)
    km = KMeans(n_clusters=3, random_state=0).fit(Xd)
    C = xp.to_numpy(km.cluster_centers_)
    np.testing.assert_array_equal(xp.to_numpy(km.predict(Xd)), xp.to_numpy(km.labels_))
    new = np.array([[0.2, -0.1], [9.0, 11.0], [4.0, 6.0]])
    np.testing.assert_array_equal(xp.to_numpy(km.predict(xp.asarray(new))), nearest64(new, C))
    distances = xp.to_numpy(km.transform(xp.asarray(new)))
    np.testing.assert_allclose(
        distances, np.sqrt(((new[:, None, :] - C[None]) ** 2).sum(-1)), rtol=1e-10
    )
    assert km.score(Xd) == pytest.approx(-km.inertia_)
    assert km.score(xp.asarray(new)) == pytest.approx(-inertia64(new, C, nearest64(new, C)))
    labels = KMeans(n_clusters=3, random_state=0).fit_predict(Xd)
    np.testing.assert_array_equal(xp.to_numpy(labels), xp.to_numpy(km.labels_))
    dist = KMeans(n_clusters=3, random_state=0).fit_transform(Xd)
    np.testing.assert_allclose(xp.to_numpy(dist), xp.to_numpy(km.transform(Xd)), rtol=1e-12)


def test_predict_accepts_other_libraries_and_caches_the_centers(xp):
    X, _ = blobs(20, THREE_CENTERS, seed=15)
    km = KMeans(n_clusters=3, random_state=0).fit(xp.asarray(X))
    expected = xp.to_numpy(km.labels_)
    from_numpy = km.predict(X)
    assert isinstance(from_numpy, np.ndarray)
    np.testing.assert_array_equal(from_numpy, expected)
    np.testing.assert_array_equal(km.predict(X.tolist()), expected)  # lists go through NumPy
    assert len(km._fitted_cache) >= 1
    cached = dict(km._fitted_cache)
    km.predict(X)
    assert km._fitted_cache.keys() == cached.keys()
    torch = pytest.importorskip("torch")
    from_torch = km.predict(torch.asarray(X))
    assert isinstance(from_torch, torch.Tensor)
    np.testing.assert_array_equal(from_torch.numpy(), expected)


def test_kmeans_function_matches_the_estimator(xp):
    X, _ = blobs(20, THREE_CENTERS, seed=16)
    result = kmeans(xp.asarray(X), 3, random_state=0)
    centers, labels, inertia, n_iter = result
    km = KMeans(n_clusters=3, random_state=0).fit(xp.asarray(X))
    np.testing.assert_array_equal(xp.to_numpy(labels), xp.to_numpy(km.labels_))
    np.testing.assert_allclose(xp.to_numpy(centers), xp.to_numpy(km.cluster_centers_))
    assert (inertia, n_iter) == (km.inertia_, km.n_iter_)
    assert result.inertia == inertia


def test_matches_scikit_learn_from_the_same_init(xp):
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(17)
    X = rng.normal(size=(400, 5))
    init = X[:7]
    w = rng.uniform(0.5, 2.0, size=400)
    ours = KMeans(n_clusters=7, init=init, max_iter=100).fit(
        xp.asarray(X), sample_weight=xp.asarray(w)
    )
    theirs = sklearn_cluster.KMeans(n_clusters=7, init=init, n_init=1, max_iter=100).fit(
        X, sample_weight=w
    )
    np.testing.assert_array_equal(xp.to_numpy(ours.labels_), theirs.labels_)
    np.testing.assert_allclose(
        xp.to_numpy(ours.cluster_centers_), theirs.cluster_centers_, rtol=1e-8
    )
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-10)
    assert ours.n_iter_ == theirs.n_iter_


def test_no_warnings_on_a_clean_fit(xp):
    X, _ = blobs(20, THREE_CENTERS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeans(n_clusters=3, random_state=0).fit(xp.asarray(X)).predict(xp.asarray(X))


@pytest.mark.parametrize("name", ["torch", "torch_cuda"])
def test_tensors_that_require_grad_are_fitted_as_values(backend_named, name):
    """Tensors recording autograd are detached at the door: no result requires grad or carries a
    graph, nothing warns, the results are those of the detached tensors, and the caller's tensors
    keep requires_grad."""
    backend = backend_named(name)
    torch = backend.module
    X_np, _ = blobs(20, THREE_CENTERS, seed=3)
    X = torch.asarray(X_np, device=backend.device).requires_grad_(True)
    w = torch.full((X.shape[0],), 2.0, dtype=X.dtype, device=backend.device, requires_grad=True)
    init = X[:3] * 1.0  # not a leaf: carries X's graph
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        km = KMeans(n_clusters=3, init=init).fit(X, sample_weight=w)
        plain = KMeans(n_clusters=3, init=init.detach()).fit(X.detach(), sample_weight=w.detach())
        results = {
            "cluster_centers_": km.cluster_centers_,
            "predict": km.predict(X),
            "transform": km.transform(X),
            "fit_transform": KMeans(n_clusters=3, random_state=0).fit_transform(X),
            "MiniBatchKMeans": kmeans_xp.MiniBatchKMeans(3, random_state=0).fit(X).cluster_centers_,
            "kmeans_plusplus": kmeans_xp.kmeans_plusplus(X, 3, random_state=0)[0],
            "silhouette_samples": kmeans_xp.silhouette_samples(X, km.labels_),
        }
        score = km.score(X, sample_weight=w)
    for what, result in results.items():
        assert not result.requires_grad, what
        assert result.grad_fn is None, what
    np.testing.assert_array_equal(to_numpy(km.cluster_centers_), to_numpy(plain.cluster_centers_))
    np.testing.assert_array_equal(to_numpy(km.labels_), to_numpy(plain.labels_))
    assert km.inertia_ == plain.inertia_
    assert score == plain.score(X.detach(), sample_weight=w.detach())
    assert X.requires_grad
    assert w.requires_grad
    assert X.grad is None


def test_runs_with_equal_inertia_keep_the_first(xp, monkeypatch):
    """Two runs finding the same partition tie; rounding must not pick the later one."""
    X, _ = blobs(20, THREE_CENTERS, seed=18)
    calls = []
    real = fit_module.labels_and_inertia

    def last_run_a_hair_lower(*args, **kwargs):
        labels, inertia = real(*args, **kwargs)
        calls.append(inertia)
        return labels, inertia * (1 - 1e-13 * len(calls))

    monkeypatch.setattr(fit_module, "labels_and_inertia", last_run_a_hair_lower)
    km = KMeans(n_clusters=3, init="random", n_init=3, random_state=0).fit(xp.asarray(X))
    first_alone = KMeans(n_clusters=3, init="random", n_init=1, random_state=0).fit(xp.asarray(X))
    np.testing.assert_array_equal(xp.to_numpy(km.labels_), xp.to_numpy(first_alone.labels_))


@pytest.mark.parametrize("labels", [[], [3], [0, 0, 0], [2, 0, 2, 1, 0, 4, 4, 2, 1]])
def test_distinct_labels_are_counted_chunk_by_chunk(xp, labels, monkeypatch):
    """Chunks of 2 labels (a value seen in several chunks counts once) give the count of one
    ``unique``; the fit's fewer-clusters warning reads it without copying all labels."""
    monkeypatch.setattr(fit_module, "_DISTINCT_CHUNK_ROWS", 2)
    array = xp.asarray(np.asarray(labels, dtype=np.int64))
    assert fit_module.count_distinct_labels(array, get_namespace(array)) == len(set(labels))


def test_fewer_clusters_warning_counts_over_chunks(xp, monkeypatch):
    """Two distinct rows, three clusters asked, labels read three rows at a time."""
    monkeypatch.setattr(fit_module, "_DISTINCT_CHUNK_ROWS", 3)
    X = np.array([[0.0, 0.0]] * 5 + [[1.0, 1.0]] * 5)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(2\)"):
        KMeans(3, random_state=0).fit(xp.asarray(X))
