"""Cluster scores: against brute-force float64 definitions, scikit-learn, and across backends."""

from __future__ import annotations

import numpy as np
import pytest

import kmeans_xp._tools.metrics as metrics_module
from kmeans_xp import (
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_samples,
    silhouette_score,
)
from kmeans_xp._lib.compat import library_name

SCORES = [calinski_harabasz_score, davies_bouldin_score, silhouette_score]


def labelled_data(seed=0, n=300, d=4, k=4, offset=0.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    X = rng.normal(size=(n, d)) + 3.0 * labels[:, None] + offset
    return X, labels


def silhouette_reference(X, labels) -> np.ndarray:
    """The definition, by explicit differences in float64 (no GEMM shortcut)."""
    X = np.asarray(X, dtype=np.float64)
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2))
    values = np.unique(labels)
    s = np.zeros(len(X))
    for i in range(len(X)):
        own = labels == labels[i]
        if own.sum() == 1:
            continue
        a = D[i, own].sum() / (own.sum() - 1)
        b = min(D[i, labels == v].mean() for v in values if v != labels[i])
        s[i] = (b - a) / max(a, b) if max(a, b) > 0 else 0.0
    return s


def test_silhouette_samples_match_the_definition():
    X, labels = labelled_data(n=200)
    labels[0] = 9  # a singleton cluster: its silhouette is 0
    got = silhouette_samples(X, labels)
    np.testing.assert_allclose(got, silhouette_reference(X, labels), rtol=0, atol=1e-12)
    assert got[0] == 0.0


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_scores_match_scikit_learn(offset):
    sk_metrics = pytest.importorskip("sklearn.metrics")
    X, labels = labelled_data(offset=offset)
    np.testing.assert_allclose(
        silhouette_samples(X, labels), sk_metrics.silhouette_samples(X, labels), atol=1e-6
    )
    for ours, theirs in [
        (silhouette_score, sk_metrics.silhouette_score),
        (calinski_harabasz_score, sk_metrics.calinski_harabasz_score),
        (davies_bouldin_score, sk_metrics.davies_bouldin_score),
    ]:
        assert ours(X, labels) == pytest.approx(theirs(X, labels), rel=1e-6, abs=1e-6)


def test_sample_size_scores_the_same_rows_as_scikit_learn():
    sk_metrics = pytest.importorskip("sklearn.metrics")
    X, labels = labelled_data(n=400)
    for seed in (0, 7):
        ours = silhouette_score(X, labels, sample_size=120, random_state=seed)
        theirs = sk_metrics.silhouette_score(X, labels, sample_size=120, random_state=seed)
        assert ours == pytest.approx(theirs, abs=1e-9)
    assert silhouette_score(X, labels, sample_size=120, random_state=0) != pytest.approx(
        silhouette_score(X, labels), abs=1e-9
    )


def test_labels_may_be_strings_or_any_integers():
    X, labels = labelled_data()
    names = np.array(["a", "b", "c", "d"])[labels]
    sparse_ids = labels * 100 - 7
    for score in SCORES:
        expected = score(X, labels)
        assert score(X, names) == pytest.approx(expected, rel=1e-12)
        assert score(X, sparse_ids) == pytest.approx(expected, rel=1e-12)


def test_degenerate_cases_follow_scikit_learn():
    # Every point on its centroid: Calinski-Harabasz is 1.0 and Davies-Bouldin 0.0 by convention.
    X = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [5.0, 5.0]])
    labels = [0, 0, 1, 1]
    assert calinski_harabasz_score(X, labels) == 1.0
    assert davies_bouldin_score(X, labels) == 0.0
    assert silhouette_score(X, labels) == pytest.approx(1.0)
    # All points equal: silhouettes are 0, not NaN.
    same = np.ones((4, 2))
    assert silhouette_score(same, labels) == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_backend_agrees_with_numpy(xp, dtype):
    X, labels = labelled_data(n=250)
    X = X.astype(dtype)
    Xd = xp.asarray(X)
    tol = 1e-10 if dtype == np.float64 else 1e-5
    for score in SCORES:
        assert score(Xd, xp.asarray(labels)) == pytest.approx(score(X, labels), rel=tol)
    samples = silhouette_samples(Xd, labels)
    assert library_name(samples) == library_name(Xd)
    if xp.name.startswith("torch") or xp.name == "cupy":
        assert samples.device == Xd.device
    np.testing.assert_allclose(xp.to_numpy(samples), silhouette_reference(X, labels), atol=tol)


def test_silhouette_in_blocks_equals_one_block(xp, monkeypatch):
    X, labels = labelled_data(n=240)
    Xd = xp.asarray(X)
    whole = xp.to_numpy(silhouette_samples(Xd, labels))
    # A budget of a few rows per block: 240 rows need many blocks.
    monkeypatch.setattr(metrics_module, "_HOST_SILHOUETTE_BYTES", 8 * 2 * 240 * 7)
    assert metrics_module._silhouette_block_rows(240, 4, np, "cpu") < 240
    blocked = xp.to_numpy(silhouette_samples(Xd, labels))
    np.testing.assert_allclose(blocked, whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("score", SCORES)
def test_bad_labels_are_refused_with_a_clear_message(score):
    X, labels = labelled_data(n=50)
    with pytest.raises(ValueError, match="Number of labels is 1"):
        score(X, np.zeros(50, dtype=int))
    with pytest.raises(ValueError, match="Number of labels is 50"):
        score(X, np.arange(50))
    with pytest.raises(ValueError, match="one entry per sample: X has 50 samples, labels has 49"):
        score(X, labels[:49])
    with pytest.raises(ValueError, match="labels must be 1-D"):
        score(X, labels[:, None])
    with pytest.raises(ValueError, match="labels contains NaN"):
        score(X, np.where(labels == 0, np.nan, labels))
    bad_X = X.copy()
    bad_X[3, 1] = np.nan
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        score(bad_X, labels)
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        score(X[:, 0], labels)


def test_bad_sample_size_is_refused():
    X, labels = labelled_data(n=50)
    with pytest.raises(ValueError, match=r"sample_size must be >= 2 .* got 1"):
        silhouette_score(X, labels, sample_size=1)
    # More rows than there are: every row, as scikit-learn does.
    assert silhouette_score(X, labels, sample_size=51, random_state=0) == pytest.approx(
        silhouette_score(X, labels), abs=1e-12
    )
    with pytest.raises(TypeError, match=r"sample_size must be None or an integer, got 0\.5"):
        silhouette_score(X, labels, sample_size=0.5)
    with pytest.raises(ValueError, match="random_state must be a non-negative integer"):
        silhouette_score(X, labels, sample_size=10, random_state=-1)


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(metrics_module)
    assert result.attempted >= 1
    assert result.failed == 0


def test_silhouette_takes_scikit_learns_metric_argument_for_euclidean_only():
    X, labels = labelled_data()
    assert silhouette_score(X, labels, metric="euclidean") == silhouette_score(X, labels)
    np.testing.assert_array_equal(
        silhouette_samples(X, labels, metric="euclidean"), silhouette_samples(X, labels)
    )
    for score in (silhouette_score, silhouette_samples):
        with pytest.raises(ValueError, match=r"metric must be 'euclidean' .* got metric='cosine'"):
            score(X, labels, metric="cosine")
