"""MiniBatchKMeans: scikit-learn's names and stopping rules, on every backend; partial_fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import blobs, inertia64, nearest64

from kmeans_xp import ConvergenceWarning, KMeans, MiniBatchKMeans
from kmeans_xp._tools.demo import tutorial_blobs


def mixture(n, k, d=4, seed=0, scale=6.0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=scale, size=(k, d))
    return means[rng.integers(0, k, size=n)] + rng.normal(size=(n, d))


def test_fit_finds_separated_blobs_and_its_attributes_agree(xp):
    X, _ = blobs(200, [[0, 0], [20, 0], [0, 20], [20, 20]], sd=1.0, seed=1)
    mbk = MiniBatchKMeans(4, batch_size=64, random_state=0).fit(xp.asarray(X))
    C = xp.to_numpy(mbk.cluster_centers_)
    labels = xp.to_numpy(mbk.labels_)
    np.testing.assert_allclose(np.sort(C, axis=0), [[0, 0], [0, 0], [20, 20], [20, 20]], atol=0.4)
    np.testing.assert_array_equal(labels, nearest64(X, C))
    np.testing.assert_array_equal(xp.to_numpy(mbk.predict(xp.asarray(X))), labels)
    assert mbk.inertia_ == pytest.approx(inertia64(X, C, labels), rel=1e-9)
    assert type(mbk.cluster_centers_) is type(xp.asarray(X))
    assert 1 <= mbk.n_steps_ <= 100 * 800 // 64
    assert mbk.n_iter_ == -(-(mbk.n_steps_ * 64) // 800)
    assert mbk._counts.shape == (4,)
    assert float(xp.to_numpy(mbk._counts).sum()) == pytest.approx(64 * mbk.n_steps_)


def test_same_seed_same_centers_on_every_backend(xp):
    X = mixture(3000, 6, seed=2)
    kwargs = {"batch_size": 256, "max_iter": 2, "random_state": 5}
    expected = MiniBatchKMeans(6, **kwargs).fit(X).cluster_centers_
    got = MiniBatchKMeans(6, **kwargs).fit(xp.asarray(X)).cluster_centers_
    np.testing.assert_allclose(xp.to_numpy(got), expected, rtol=1e-9, atol=1e-9)


def test_partial_fit_on_the_tutorial_reaches_lloyds_inertia(xp):
    X = tutorial_blobs()
    full = KMeans(3, random_state=0).fit(X).inertia_
    rng = np.random.default_rng(0)
    mbk = MiniBatchKMeans(3, random_state=0)
    for _ in range(20):  # a stream of batches of 30 points
        mbk.partial_fit(xp.asarray(X[rng.permutation(len(X))[:30]]))
    assert mbk.n_steps_ == 20
    assert -mbk.score(xp.asarray(X)) <= 1.05 * full
    assert xp.to_numpy(mbk.labels_).shape == (30,)  # labels of the last batch


def test_partial_fit_over_a_generator_of_a_large_mixture():
    X = mixture(200_000, 10, d=8, seed=3)
    full = KMeans(10, random_state=0).fit(X).inertia_
    mbk = MiniBatchKMeans(10, random_state=0)
    batches = (X[i : i + 2048] for i in range(0, len(X), 2048))
    for batch in batches:
        mbk.partial_fit(batch)
    assert -mbk.score(X) <= 1.05 * full
    fitted = MiniBatchKMeans(10, random_state=0).fit(X)
    assert fitted.inertia_ <= 1.05 * full


def test_partial_fit_goes_on_from_fit_and_from_itself():
    X = mixture(2000, 4, seed=4)
    mbk = MiniBatchKMeans(4, batch_size=100, random_state=0, max_iter=1).fit(X)
    steps, before = mbk.n_steps_, mbk.cluster_centers_.copy()
    mbk.partial_fit(X[:100])
    assert mbk.n_steps_ == steps + 1
    assert not np.array_equal(mbk.cluster_centers_, before)
    assert np.abs(mbk.cluster_centers_ - before).max() < 1.0  # a small step, not a restart


def test_max_no_improvement_and_tol_stop_early():
    X = mixture(20_000, 5, seed=5)
    long = MiniBatchKMeans(5, batch_size=100, max_no_improvement=None, random_state=0).fit(X)
    assert long.n_steps_ == 100 * 20_000 // 100
    early = MiniBatchKMeans(5, batch_size=100, max_no_improvement=5, random_state=0).fit(X)
    assert early.n_steps_ < long.n_steps_
    tol = MiniBatchKMeans(5, batch_size=100, tol=1e-2, max_no_improvement=None, random_state=0)
    assert tol.fit(X).n_steps_ < long.n_steps_


def test_weightless_center_is_reassigned():
    X, _ = blobs(100, [[0, 0], [10, 0], [0, 10]], sd=0.5, seed=6)
    init = np.array([[0.0, 0.0], [10.0, 0.0], [1000.0, 1000.0]])  # one center no row is near
    kwargs = {"init": init, "batch_size": 50, "max_iter": 5, "random_state": 0}
    moved = MiniBatchKMeans(3, **kwargs).fit(X)
    assert np.abs(moved.cluster_centers_).max() < 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        stuck = MiniBatchKMeans(3, reassignment_ratio=0.0, **kwargs).fit(X)
    assert np.abs(stuck.cluster_centers_).max() == 1000.0


def test_zero_weight_rows_do_not_pull_centers():
    X, _ = blobs(100, [[0, 0], [10, 0]], sd=0.5, seed=7)
    X = np.vstack([X, [[500.0, 500.0]] * 50])
    w = np.r_[np.ones(200), np.zeros(50)]
    mbk = MiniBatchKMeans(2, batch_size=64, random_state=0).fit(X, sample_weight=w)
    assert np.abs(mbk.cluster_centers_).max() < 15


def test_compute_labels_false():
    X = mixture(5000, 3, seed=8)
    mbk = MiniBatchKMeans(3, compute_labels=False, random_state=0).fit(X)
    assert not hasattr(mbk, "labels_")
    assert mbk.inertia_ == pytest.approx(-mbk.score(X), rel=0.3)  # smoothed batch inertia
    assert mbk.predict(X).shape == (5000,)


def test_params_are_scikit_learns():
    params = MiniBatchKMeans().get_params()
    assert params == {
        "n_clusters": 8, "init": "k-means++", "max_iter": 100, "batch_size": 1024,
        "verbose": 0, "compute_labels": True, "random_state": None, "tol": 0.0,
        "max_no_improvement": 10, "init_size": None, "n_init": "auto",
        "reassignment_ratio": 0.01,
    }  # fmt: skip
    sklearn = pytest.importorskip("sklearn.cluster")
    assert set(params) == set(sklearn.MiniBatchKMeans().get_params())


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, r"batch_size"),
        ({"max_iter": 0}, ValueError, r"max_iter"),
        ({"max_no_improvement": -1}, ValueError, r"max_no_improvement"),
        ({"init_size": 0}, ValueError, r"init_size"),
        ({"reassignment_ratio": -0.1}, ValueError, r"reassignment_ratio=-0.1"),
        ({"reassignment_ratio": "a"}, TypeError, r"reassignment_ratio must be a real number"),
        ({"compute_labels": "yes"}, TypeError, r"compute_labels must be True or False"),
        ({"n_init": "x"}, ValueError, r"n_init must be 'auto'"),
        ({"init": "nope"}, ValueError, r"init must be"),
        ({"tol": -1.0}, ValueError, r"tol"),
    ],
)
def test_bad_parameters(params, error, match):
    X = mixture(100, 2, seed=9)
    with pytest.raises(error, match=match):
        MiniBatchKMeans(2, **params).fit(X)


def test_bad_batches_for_partial_fit(xp):
    X = mixture(100, 2, seed=10)
    with pytest.raises(ValueError, match=r"n_samples=1 should be >= n_clusters=2"):
        MiniBatchKMeans(2).partial_fit(xp.asarray(X[:1]))
    mbk = MiniBatchKMeans(2, random_state=0).partial_fit(xp.asarray(X))
    with pytest.raises(ValueError, match=r"X has 3 features, but MiniBatchKMeans is expecting 4"):
        mbk.partial_fit(xp.asarray(X[:, :3]))
    with pytest.raises(ValueError, match=r"NaN"):
        mbk.partial_fit(xp.asarray(np.full((5, 4), np.nan)))
    if xp.name != "numpy":
        with pytest.raises(TypeError, match=r"partial_fit got a batch of numpy"):
            mbk.partial_fit(X)


def test_init_size_smaller_than_k_warns():
    X = mixture(500, 5, seed=11)
    with pytest.warns(RuntimeWarning, match=r"init_size=3 should be larger than n_clusters=5"):
        MiniBatchKMeans(5, init_size=3, random_state=0).fit(X)


def test_each_step_moves_centers_to_the_running_weighted_mean(xp):
    """c ← (c·W + Σ w·x) / (W + Σ w), W the weight the center has absorbed (a float64 check)."""
    rng = np.random.default_rng(12)
    init = np.array([[0.0, 0.0], [10.0, 10.0]])
    batches = [rng.normal(size=(40, 2)) + init[rng.integers(0, 2, 40)] for _ in range(3)]
    weights = [rng.uniform(0.5, 2.0, 40) for _ in range(3)]
    mbk = MiniBatchKMeans(2, init=init, reassignment_ratio=0.0, random_state=0)
    C, W = init.copy(), np.zeros(2)
    for B, w in zip(batches, weights, strict=True):
        mbk.partial_fit(xp.asarray(B), sample_weight=xp.asarray(w))
        labels = nearest64(B, C)
        for j in range(2):
            mask = labels == j
            total = W[j] + w[mask].sum()
            C[j] = (C[j] * W[j] + (w[mask, None] * B[mask]).sum(axis=0)) / total
            W[j] = total
        np.testing.assert_allclose(xp.to_numpy(mbk.cluster_centers_), C, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(xp.to_numpy(mbk._counts), W, rtol=1e-12)


def test_explicit_init_may_be_a_list_and_one_step_fits():
    X = mixture(300, 2, d=2, seed=13)
    mbk = MiniBatchKMeans(2, init=[[0.0, 0.0], [1.0, 1.0]], max_iter=1, batch_size=300)
    mbk.set_params(compute_labels=False).fit(X)
    assert mbk.n_steps_ == 1
    assert np.isfinite(mbk.inertia_)


def test_pickles_and_goes_on_after_unpickling(xp):
    import pickle

    X = mixture(600, 3, seed=14)
    mbk = MiniBatchKMeans(3, batch_size=100, random_state=0).fit(xp.asarray(X))
    again = pickle.loads(pickle.dumps(mbk))
    np.testing.assert_array_equal(
        xp.to_numpy(again.predict(xp.asarray(X))), xp.to_numpy(mbk.predict(xp.asarray(X)))
    )
    again.partial_fit(xp.asarray(X[:100]))
    mbk.partial_fit(xp.asarray(X[:100]))
    np.testing.assert_array_equal(
        xp.to_numpy(again.cluster_centers_), xp.to_numpy(mbk.cluster_centers_)
    )
