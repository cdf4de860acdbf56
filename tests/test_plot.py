"""kmeans_xp.plot: drawn from any backend, the right colours, not blank, never shown."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from kmeans_xp import KMeans, NotFittedError, elbow, silhouette_score
from kmeans_xp._tools.demo import tutorial_blobs
from kmeans_xp._tools.plots import project_2d
from kmeans_xp.plot import plot_clusters, plot_elbow, plot_silhouette

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    def refuse_show(*args, **kwargs):
        raise AssertionError("a kmeans_xp plot function called plt.show()")

    monkeypatch.setattr(plt, "show", refuse_show)
    yield
    plt.close("all")


def scatter_colours(ax) -> set[tuple]:
    """Distinct face colours of the scatter layers, one per cluster (centroids excluded)."""
    colours = set()
    for collection in ax.collections:
        if isinstance(collection, PathCollection) and collection.get_label() != "Centroids":
            for rgba in collection.get_facecolors():
                colours.add(tuple(np.round(rgba, 4)))
    return colours


def assert_not_blank(ax, path):
    ax.figure.savefig(path, dpi=60)
    image = plt.imread(path)
    pixels = image.reshape(-1, image.shape[-1])
    assert len(np.unique(pixels, axis=0)) > 20  # more than a background and a frame


def test_plot_clusters_from_a_model_on_every_backend(xp, tmp_path):
    X = xp.asarray(tutorial_blobs())
    model = KMeans(n_clusters=3, random_state=0).fit(X)
    ax = plot_clusters(X, model)
    assert len(scatter_colours(ax)) == 3
    centroids = [c for c in ax.collections if c.get_label() == "Centroids"]
    assert len(centroids) == 1
    np.testing.assert_allclose(
        centroids[0].get_offsets(), xp.to_numpy(model.cluster_centers_), rtol=1e-12
    )
    points = np.concatenate([c.get_offsets() for c in ax.collections if c not in centroids])
    assert points.shape == (150, 2)
    assert_not_blank(ax, tmp_path / "clusters.png")


def test_plot_clusters_with_labels_and_many_clusters():
    X = np.random.default_rng(0).normal(size=(500, 2))
    labels = np.arange(500) % 25
    ax = plot_clusters(X, labels)
    assert len(scatter_colours(ax)) == 25
    assert ax.get_legend() is None  # too many entries to be useful
    assert "25 clusters" in ax.get_title()


def test_high_dimensional_data_is_projected_on_principal_components(xp):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    X = X @ np.linalg.qr(rng.normal(size=(6, 6)))[0]  # rotate: the axes are not the features
    Xd = xp.asarray(X)
    points, _, names = project_2d(Xd, None, xp=xp.xp)
    points = xp.to_numpy(points)
    # Reference: SVD of the centered data in float64; components agree up to sign.
    centered = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    expected = centered @ vt[:2].T
    for j in range(2):
        assert np.allclose(points[:, j], expected[:, j], atol=1e-8) or np.allclose(
            points[:, j], -expected[:, j], atol=1e-8
        )
    assert names[0].startswith("PC1 (")
    model = KMeans(n_clusters=3, random_state=0).fit(Xd)
    ax = plot_clusters(Xd, model)
    assert ax.get_xlabel().startswith("PC1")
    assert len(scatter_colours(ax)) == 3


def test_projection_sign_is_the_same_on_every_backend(xp):
    X = np.random.default_rng(2).normal(size=(200, 4)) * np.array([4.0, 2.0, 1.0, 0.5])
    ours, _, _ = project_2d(xp.asarray(X), None, xp=xp.xp)
    reference, _, _ = project_2d(X, None, xp=np)
    np.testing.assert_allclose(xp.to_numpy(ours), xp.to_numpy(reference), atol=1e-8)


def test_large_data_are_subsampled_and_the_title_says_so():
    X = np.random.default_rng(3).normal(size=(3000, 2))
    labels = (X[:, 0] > 0).astype(int)
    ax = plot_clusters(X, labels, max_points=500)
    drawn = sum(len(c.get_offsets()) for c in ax.collections)
    assert drawn == 500
    assert "showing 500 of 3,000 points" in ax.get_title()
    full = plot_clusters(X, labels)
    assert "showing" not in full.get_title()


def test_one_feature_is_drawn_on_a_line():
    X = np.concatenate([np.zeros(10), np.ones(10) * 5])[:, None]
    ax = plot_clusters(X, [0] * 10 + [1] * 10, centers=np.array([[0.0], [5.0]]))
    assert len(scatter_colours(ax)) == 2


def test_plot_clusters_draws_on_the_given_axes():
    fig, ax = plt.subplots()
    returned = plot_clusters(tutorial_blobs(), np.repeat([0, 1, 2], 50), ax=ax)
    assert returned is ax
    assert len(fig.axes) == 1


def test_plot_elbow_marks_the_suggested_k(tmp_path):
    result = elbow(tutorial_blobs(), range(1, 9), silhouette=True, random_state=0)
    ax = plot_elbow(result)
    inertia_line = ax.get_lines()[0]
    np.testing.assert_allclose(inertia_line.get_ydata(), result.inertias)
    marks = [line for line in ax.get_lines() if list(line.get_xdata()) == [3, 3]]
    assert marks  # the vertical line at the suggested K
    assert any("suggested K = 3" in t.get_text() for t in ax.get_legend().get_texts())
    twin = [other for other in ax.figure.axes if other is not ax]
    assert len(twin) == 1  # the silhouette curve
    assert_not_blank(ax, tmp_path / "elbow.png")


def test_plot_elbow_needs_an_elbow_result():
    with pytest.raises(TypeError, match=r"ElbowResult from kmeans_xp\.elbow\(\), got list"):
        plot_elbow([1, 2, 3])


def test_plot_silhouette_draws_one_band_per_cluster_and_the_mean(xp, tmp_path):
    X = tutorial_blobs()
    labels = KMeans(n_clusters=3, random_state=0).fit(X).labels_
    ax = plot_silhouette(xp.asarray(X), xp.asarray(labels))
    bands = [c for c in ax.collections if not isinstance(c, PathCollection)]
    assert len(bands) == 3
    mean_line = ax.get_lines()[0]
    assert mean_line.get_xdata()[0] == pytest.approx(silhouette_score(X, labels), abs=1e-9)
    assert_not_blank(ax, tmp_path / "silhouette.png")


def test_plot_silhouette_subsample_title():
    X = tutorial_blobs()
    ax = plot_silhouette(X, np.repeat([0, 1, 2], 50), sample_size=60)
    assert "60 of 150 points" in ax.get_title()
    with pytest.raises(ValueError, match="sample_size must be >= 2"):
        plot_silhouette(X, np.repeat([0, 1, 2], 50), sample_size=1)
    every_row = plot_silhouette(X, np.repeat([0, 1, 2], 50), sample_size=1000)
    assert "of 150 points" not in every_row.get_title()


def test_bad_input_is_refused():
    X = tutorial_blobs()
    with pytest.raises(ValueError, match=r"labels must have shape \(150,\)"):
        plot_clusters(X, [0, 1])
    with pytest.raises(ValueError, match=r"centers must have shape \(n_clusters, 2\)"):
        plot_clusters(X, np.zeros(150, dtype=int), centers=np.zeros((3, 5)))
    with pytest.raises(ValueError, match="max_points must be a positive integer, got 0"):
        plot_clusters(X, np.zeros(150, dtype=int), max_points=0)
    with pytest.raises(NotFittedError, match=r"This KMeans instance is not fitted yet"):
        plot_clusters(X, KMeans(3))


def test_without_matplotlib_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install \"kmeans-xp\[plot\]\""):
        plot_clusters(tutorial_blobs(), np.zeros(150, dtype=int))
    with pytest.raises(ImportError, match="plot_elbow needs matplotlib"):
        plot_elbow(elbow(tutorial_blobs(), [1, 2, 3], random_state=0))


def test_plot_clusters_of_a_dataframe_names_its_axes_and_warns_nothing():
    pd = pytest.importorskip("pandas")
    import warnings

    frame = pd.DataFrame(tutorial_blobs(), columns=["width", "height"])
    km = KMeans(3, random_state=0).fit(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the model's feature-name check sees the frame
        ax = plot_clusters(frame, km)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("width", "height")
    one = frame[["width"]]
    ax = plot_clusters(one, KMeans(3, random_state=0).fit(one))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("width", "")
    wide = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 3)), columns=["a", "b", "c"])
    ax = plot_clusters(wide, KMeans(2, random_state=0).fit(wide))
    assert ax.get_xlabel().startswith("PC1")  # projected: components, not columns
