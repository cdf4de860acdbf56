"""Choosing K: the elbow curve, its knee, and silhouettes per K."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

import kmeans_xp._tools.elbow as elbow_module
from kmeans_xp import ElbowResult, KMeans, elbow, knee_point, silhouette_score
from kmeans_xp._tools.demo import tutorial_blobs


def test_knee_of_the_tutorial_data_is_three_on_every_backend(xp):
    X = xp.asarray(tutorial_blobs())
    result = elbow(X, range(1, 11), random_state=0)
    assert result.suggested_k == 3
    assert result.ks == list(range(1, 11))
    assert all(a >= b for a, b in itertools.pairwise(result.inertias))
    assert len(result.fit_times) == 10
    assert all(t >= 0 for t in result.fit_times)
    assert all(isinstance(n, int) and n >= 1 for n in result.n_iters)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_knee_is_three_for_any_seed(seed):
    assert elbow(tutorial_blobs(), range(1, 10), random_state=seed).suggested_k == 3


def test_inertias_are_true_sums_of_squares_of_each_fit(xp):
    X = tutorial_blobs()
    result = elbow(xp.asarray(X), [1, 2, 4], random_state=3, n_init=2)
    for k, inertia in zip(result.ks, result.inertias, strict=True):
        model = KMeans(n_clusters=k, random_state=3, n_init=2).fit(X)
        centers = model.cluster_centers_
        direct = ((X[:, None, :] - centers[None]) ** 2).sum(axis=2).min(axis=1).sum()
        assert inertia == pytest.approx(direct, rel=1e-9)
    # K=1: the total sum of squares about the mean (not the tutorial's unsquared distances).
    assert result.inertias[0] == pytest.approx(((X - X.mean(axis=0)) ** 2).sum(), rel=1e-12)


def test_silhouettes_per_k(xp):
    X = tutorial_blobs()
    result = elbow(xp.asarray(X), range(1, 6), silhouette=True, random_state=0)
    assert math.isnan(result.silhouettes[0])  # undefined for K=1
    for k, s in zip(result.ks[1:], result.silhouettes[1:], strict=True):
        labels = KMeans(n_clusters=k, random_state=0).fit(X).labels_
        assert s == pytest.approx(silhouette_score(X, labels), abs=1e-9)
    assert int(np.nanargmax(result.silhouettes)) + 1 == 3
    assert elbow(X, [2, 3], random_state=0).silhouettes is None
    assert result.as_dict()["silhouettes"][0] is None  # JSON has no NaN


def test_silhouette_sample_size_scores_fewer_rows():
    X = tutorial_blobs()
    full = elbow(X, [2, 3, 4], silhouette=True, random_state=0)
    sampled = elbow(X, [2, 3, 4], silhouette=True, silhouette_sample_size=60, random_state=0)
    assert sampled.silhouettes != full.silhouettes
    assert sampled.silhouettes == pytest.approx(full.silhouettes, abs=0.1)


def test_as_dict_is_plain_python():
    result = elbow(tutorial_blobs(), [1, 2, 3], random_state=0)
    data = result.as_dict()
    assert data["ks"] == [1, 2, 3]
    assert data["suggested_k"] == 2  # on 1..3 alone, the middle point is the knee
    assert json.loads(json.dumps(data)) == data
    assert isinstance(result, ElbowResult)


def test_verbose_prints_one_line_per_k(capsys):
    elbow(tutorial_blobs(), [1, 2, 3], verbose=True, random_state=0)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("K=2: inertia ")
    assert lines[2].endswith("(3 of 3)")


@pytest.mark.parametrize(
    ("ks", "inertias", "expected"),
    [
        ([1, 2, 3, 4, 5, 6], [100.0, 40.0, 10.0, 8.0, 7.0, 6.5], 3),
        ([2, 4, 6, 8], [50.0, 10.0, 8.0, 7.0], 4),
        ([1, 2], [10.0, 1.0], None),  # too few points
        ([1, 2, 3], [5.0, 5.0, 5.0], None),  # flat
        ([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0], None),  # a straight line has no knee
        ([1, 2, 3, 4], [4.0, 3.9, 3.8, 0.0], None),  # concave: every point above the chord
    ],
)
def test_knee_point(ks, inertias, expected):
    assert knee_point(ks, inertias) == expected


def test_knee_point_lengths_must_match():
    with pytest.raises(ValueError, match="differ in length: 3 and 2"):
        knee_point([1, 2, 3], [1.0, 2.0])


@pytest.mark.parametrize(
    ("k_range", "error", "message"),
    [
        ([], ValueError, "at least one K"),
        ([3, 2], ValueError, "strictly increasing"),
        ([1, 1, 2], ValueError, "strictly increasing"),
        ([0, 1], ValueError, r"within 1..n_samples=150, got 0..1"),
        (range(140, 152), ValueError, r"within 1..n_samples=150, got 140..151"),
        ([1, 2.5], TypeError, "k_range must hold integers, got 2.5"),
        (5, TypeError, "iterable of integers"),
    ],
)
def test_bad_k_range_is_refused(k_range, error, message):
    with pytest.raises(error, match=message):
        elbow(tutorial_blobs(), k_range)


def test_options_elbow_sets_itself_are_refused():
    X = tutorial_blobs()
    with pytest.raises(TypeError, match="elbow\\(\\) chooses n_clusters itself"):
        elbow(X, [1, 2], n_clusters=3)
    with pytest.raises(TypeError, match=r"Unknown KMeans option\(s\) for elbow\(\): \['colour'\]"):
        elbow(X, [1, 2], colour="red")


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(elbow_module)
    assert result.attempted >= 2
    assert result.failed == 0
