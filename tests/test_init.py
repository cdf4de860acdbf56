"""Initialisation: k-means++ (its probabilities, its greed, its weights) and random choice."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import blobs

from kmeans_xp import KMeans, kmeans_plusplus
from kmeans_xp._init import default_local_trials, random_indices


def test_default_local_trials():
    assert [default_local_trials(k) for k in (1, 2, 3, 8, 1000)] == [2, 2, 3, 4, 8]


def test_kmeans_plusplus_returns_rows_of_x_and_their_indices(xp):
    X, _ = blobs(30, [[0, 0], [5, 5], [10, 0], [0, 10]], seed=1)
    centers, indices = kmeans_plusplus(xp.asarray(X), 4, random_state=0)
    idx = xp.to_numpy(indices)
    assert idx.dtype == np.int64
    assert idx.shape == (4,)
    assert len(set(idx.tolist())) == 4
    np.testing.assert_array_equal(xp.to_numpy(centers), X[idx])
    assert type(centers) is type(xp.asarray(X))


def test_kmeans_plusplus_picks_one_point_per_separated_blob(xp):
    X, y = blobs(25, [[0, 0], [50, 0], [0, 50], [50, 50], [25, 100]], sd=0.5, seed=2)
    for seed in range(5):
        _, indices = kmeans_plusplus(xp.asarray(X), 5, random_state=seed)
        assert sorted(y[xp.to_numpy(indices)].tolist()) == [0, 1, 2, 3, 4]


def test_same_seed_same_indices_on_every_backend(xp):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 6))
    w = rng.uniform(0.1, 3.0, size=500)
    _, expected = kmeans_plusplus(X, 12, sample_weight=w, random_state=42)
    _, got = kmeans_plusplus(xp.asarray(X), 12, sample_weight=xp.asarray(w), random_state=42)
    np.testing.assert_array_equal(xp.to_numpy(got), expected)


def test_random_state_kinds_give_reproducible_results():
    X, _ = blobs(30, [[0, 0], [5, 5], [10, 0]], seed=4)
    a = kmeans_plusplus(X, 3, random_state=np.random.default_rng(7))[1]
    b = kmeans_plusplus(X, 3, random_state=np.random.default_rng(7))[1]
    c = kmeans_plusplus(X, 3, random_state=np.random.RandomState(7))[1]
    d = kmeans_plusplus(X, 3, random_state=np.random.RandomState(7))[1]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(c, d)


def test_zero_weight_points_are_never_chosen(xp):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 2))
    w = np.zeros(60)
    w[::3] = 1.0
    for seed in range(10):
        _, indices = kmeans_plusplus(
            xp.asarray(X), 5, sample_weight=xp.asarray(w), random_state=seed
        )
        assert np.all(w[xp.to_numpy(indices)] > 0)


def _pair_frequencies(X, w, n_draws, **kwargs):
    rng = np.random.default_rng(0)
    counts = {}
    for _ in range(n_draws):
        _, idx = kmeans_plusplus(X, 2, sample_weight=w, random_state=rng, **kwargs)
        key = tuple(idx.tolist())
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_plusplus_samples_with_d2_probabilities(weighted):
    """With one local trial, P(first=i, second=j) = w_i/W · w_j·d_ij² / Σ_l w_l·d_il²."""
    chi2 = pytest.importorskip("scipy.stats").chi2
    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    w = np.array([1.0, 2.0, 0.5, 1.0]) if weighted else np.ones(4)
    n_draws = 4000
    counts = _pair_frequencies(X, w, n_draws, n_local_trials=1)
    d2 = (X - X.T) ** 2
    expected = {}
    for i in range(4):
        for j in range(4):
            if i != j:
                expected[(i, j)] = w[i] / w.sum() * w[j] * d2[i, j] / (w * d2[i]).sum()
    assert set(counts) <= set(expected)  # never the same point twice
    observed = np.array([counts.get(key, 0) for key in expected])
    predicted = np.array([expected[key] for key in expected]) * n_draws
    statistic = ((observed - predicted) ** 2 / predicted).sum()
    assert statistic < chi2.ppf(0.999, df=len(expected) - 1)


def test_greedy_trials_lower_the_potential():
    """The greedy variant (several trials) ends with a lower mean potential than plain D²."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(400, 2))

    def potential(indices):
        C = X[indices]
        return ((X[:, None, :] - C[None]) ** 2).sum(-1).min(1).sum()

    plain = np.mean(
        [potential(kmeans_plusplus(X, 8, random_state=s, n_local_trials=1)[1]) for s in range(30)]
    )
    greedy = np.mean([potential(kmeans_plusplus(X, 8, random_state=s)[1]) for s in range(30)])
    assert greedy < plain


def test_random_init_chooses_distinct_rows():
    rng = np.random.default_rng(7)
    rows = random_indices(50, 10, None, rng, uniform_weights=True)
    assert len(set(rows.tolist())) == 10
    assert rows.max() < 50
    w = np.zeros(50)
    w[[3, 7, 11]] = 1.0
    weighted = random_indices(50, 3, w, rng, uniform_weights=False)
    assert sorted(weighted.tolist()) == [3, 7, 11]
    few = random_indices(50, 5, w, rng, uniform_weights=False)
    assert {3, 7, 11} <= set(few.tolist())
    assert len(set(few.tolist())) == 5


def test_random_init_is_reproducible_across_backends(xp):
    X, _ = blobs(30, [[0, 0], [5, 5], [10, 0]], seed=8)
    a = KMeans(n_clusters=3, init="random", n_init=2, random_state=3).fit(X)
    b = KMeans(n_clusters=3, init="random", n_init=2, random_state=3).fit(xp.asarray(X))
    np.testing.assert_array_equal(xp.to_numpy(b.labels_), a.labels_)
