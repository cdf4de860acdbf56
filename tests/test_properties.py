"""Property tests (hypothesis): invariants of Lloyd's algorithm on random data."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_labels_are_argmin

from kmeans_xp import KMeans, kmeans

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

problems = st.tuples(
    st.integers(0, 2**32 - 1),  # seed of the data
    st.integers(2, 60),  # n
    st.integers(1, 5),  # d
    st.integers(1, 6),  # k
).filter(lambda t: t[3] <= t[1])

SETTINGS = hypothesis.settings(max_examples=40, deadline=None)


def _data(seed, n, d):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * rng.uniform(0.1, 10) + rng.uniform(-100, 100)


@SETTINGS
@hypothesis.given(problems)
def test_inertia_never_increases_across_lloyd_steps(problem):
    seed, n, d, k = problem
    X = _data(seed, n, d)
    centers = X[:k]
    previous = np.inf
    for _ in range(6):
        centers, _labels, inertia, _ = kmeans(X, k, init=centers, max_iter=1, tol=0)
        assert inertia <= previous * (1 + 1e-12) + 1e-12
        assert np.isfinite(centers).all()
        previous = inertia


@SETTINGS
@hypothesis.given(problems, st.randoms(use_true_random=False))
def test_permuting_rows_permutes_labels(problem, rnd):
    seed, n, d, k = problem
    X = _data(seed, n, d)
    perm = np.array(rnd.sample(range(n), n))
    init = X[:k]
    a = KMeans(n_clusters=k, init=init, tol=0).fit(X)
    b = KMeans(n_clusters=k, init=init, tol=0).fit(X[perm])
    np.testing.assert_array_equal(b.labels_, a.labels_[perm])
    np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_, rtol=1e-9, atol=1e-9)


@SETTINGS
@hypothesis.given(problems)
def test_labels_are_always_the_argmin_of_the_returned_centers(problem):
    seed, n, d, k = problem
    X = _data(seed, n, d).astype(np.float32)
    km = KMeans(n_clusters=k, random_state=seed % 1000, max_iter=5).fit(X)
    assert_labels_are_argmin(X, km.cluster_centers_, km.labels_)
    assert np.isfinite(km.cluster_centers_).all()
    assert km.inertia_ >= 0
