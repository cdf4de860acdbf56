"""The estimator protocol: clone, Pipeline, GridSearchCV, params, repr (scikit-learn optional)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import blobs

from kmeans_xp import KMeans

X, _ = blobs(30, [[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]], seed=0)


def test_importing_kmeans_xp_does_not_import_scikit_learn():
    import subprocess

    code = "import sys, kmeans_xp; kmeans_xp.KMeans(3); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_get_and_set_params():
    km = KMeans(n_clusters=4, tol=1e-3)
    params = km.get_params()
    assert params == {
        "n_clusters": 4,
        "init": "k-means++",
        "n_init": "auto",
        "max_iter": 300,
        "tol": 1e-3,
        "verbose": 0,
        "random_state": None,
        "algorithm": "auto",
        "oversampling_factor": 2.0,
        "n_rounds": 5,
        "matmul_precision": "auto",
        "device": None,
        "max_device_bytes": None,
    }
    assert km.set_params(n_clusters=5, random_state=1) is km
    assert (km.n_clusters, km.random_state) == (5, 1)
    with pytest.raises(ValueError, match=r"Invalid parameter 'k' for estimator KMeans"):
        km.set_params(k=3)


def test_repr_shows_changed_parameters():
    assert repr(KMeans()) == "KMeans()"
    assert repr(KMeans(n_clusters=3, init="random")) == "KMeans(init='random', n_clusters=3)"
    assert "init=array(" in repr(KMeans(init=np.zeros((8, 2))))


def test_clone():
    base = pytest.importorskip("sklearn.base")
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    copy = base.clone(km)
    assert copy.get_params() == km.get_params()
    assert not hasattr(copy, "cluster_centers_")


def test_pipeline():
    pipeline = pytest.importorskip("sklearn.pipeline")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    pipe = pipeline.make_pipeline(
        preprocessing.StandardScaler(), KMeans(n_clusters=3, random_state=0)
    )
    labels = pipe.fit_predict(X)
    assert labels.shape == (90,)
    assert len(np.unique(labels)) == 3
    assert pipe.transform(X).shape == (90, 3)  # distances to the 3 centers


def test_grid_search_prefers_more_clusters_by_score():
    model_selection = pytest.importorskip("sklearn.model_selection")
    search = model_selection.GridSearchCV(
        KMeans(random_state=0), {"n_clusters": [1, 2, 3]}, cv=3
    ).fit(X)
    assert search.best_params_ == {"n_clusters": 3}


def test_check_is_fitted_and_tags():
    validation = pytest.importorskip("sklearn.utils.validation")
    utils = pytest.importorskip("sklearn.utils")
    exceptions = pytest.importorskip("sklearn.exceptions")
    with pytest.raises(exceptions.NotFittedError):
        validation.check_is_fitted(KMeans())
    validation.check_is_fitted(KMeans(n_clusters=2).fit(X))
    assert utils.get_tags(KMeans()).estimator_type == "clusterer"
    base = pytest.importorskip("sklearn.base")
    assert base.is_clusterer(KMeans())
