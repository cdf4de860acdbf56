"""The estimator protocol: clone, Pipeline, GridSearchCV, params, repr (scikit-learn optional)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from helpers import blobs

from kmeans_xp import KMeans, MiniBatchKMeans, NotFittedError

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
        "copy_x": True,
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


# ---- feature names, set_output, copy_x -------------------------------------------------------


def _frame(columns=("a", "b")):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(X, columns=list(columns), index=np.arange(100, 100 + len(X)))


@pytest.mark.parametrize("estimator", [KMeans, MiniBatchKMeans])
def test_feature_names_are_kept_and_checked_like_scikit_learns(estimator):
    frame = _frame()
    model = estimator(n_clusters=3, random_state=0).fit(frame)
    assert model.feature_names_in_.tolist() == ["a", "b"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = model.predict(frame)
    np.testing.assert_array_equal(labels, model.labels_)
    with pytest.raises(ValueError, match=r"the same names in another order"):
        model.predict(frame[["b", "a"]])
    with pytest.raises(ValueError, match=r"not seen at fit: \['c'\]; .* missing: \['b'\]"):
        model.transform(frame.rename(columns={"b": "c"}))
    with pytest.warns(UserWarning, match=r"X does not have valid feature names, but"):
        model.score(X)
    model.fit(X)  # refitted on an array: the names go
    assert not hasattr(model, "feature_names_in_")
    with pytest.warns(UserWarning, match=r"X has feature names, but .* fitted without"):
        model.predict(frame)
    unnamed = estimator(n_clusters=3, random_state=0).fit(_frame(columns=(0, 1)))
    assert not hasattr(unnamed, "feature_names_in_")
    with pytest.raises(TypeError, match=r"X's column names mix strings with other types"):
        estimator(n_clusters=3).fit(_frame(columns=("a", 1)))


def test_partial_fit_keeps_the_first_batchs_names_and_checks_the_rest():
    frame = _frame()
    model = MiniBatchKMeans(n_clusters=3, random_state=0).partial_fit(frame)
    model.partial_fit(frame)
    assert model.feature_names_in_.tolist() == ["a", "b"]
    with pytest.raises(ValueError, match=r"another order"):
        model.partial_fit(frame[["b", "a"]])


def test_get_feature_names_out():
    km = KMeans(n_clusters=3, random_state=0)
    with pytest.raises(NotFittedError):
        km.get_feature_names_out()
    km.fit(X)
    assert km.get_feature_names_out().tolist() == ["kmeans0", "kmeans1", "kmeans2"]
    assert km.get_feature_names_out(["x0", "x1"]).tolist() == ["kmeans0", "kmeans1", "kmeans2"]
    with pytest.raises(ValueError, match=r"input_features should have 2 names .* got 3"):
        km.get_feature_names_out(["x0", "x1", "x2"])
    mb = MiniBatchKMeans(n_clusters=2, random_state=0).fit(_frame())
    assert mb.get_feature_names_out().tolist() == ["minibatchkmeans0", "minibatchkmeans1"]
    with pytest.raises(ValueError, match=r"input_features should equal feature_names_in_"):
        mb.get_feature_names_out(["b", "a"])


@pytest.mark.parametrize("estimator", [KMeans, MiniBatchKMeans])
def test_set_output_pandas_wraps_transform_and_fit_transform(estimator):
    frame = _frame()
    plain = estimator(n_clusters=3, random_state=0).fit_transform(frame)
    model = estimator(n_clusters=3, random_state=0).set_output(transform="pandas")
    with pytest.warns(UserWarning, match=r"X does not have valid feature names"):
        unnamed = model.fit(frame).transform(X)
    for out in (model.fit_transform(frame), model.transform(frame), unnamed):
        assert list(out.columns) == [f"{estimator.__name__.lower()}{i}" for i in range(3)]
        np.testing.assert_array_equal(out.to_numpy(), plain)
    assert model.transform(frame).index.tolist() == frame.index.tolist()
    assert unnamed.index.tolist() == list(range(len(X)))
    assert type(model.set_output(transform="default").transform(frame)) is np.ndarray
    assert model.set_output(transform=None) is model  # None: unchanged
    assert type(model.transform(frame)) is np.ndarray
    with pytest.raises(ValueError, match=r"transform must be one of .* got transform='arrow'"):
        model.set_output(transform="arrow")


def test_set_output_in_a_pipeline_and_scikit_learns_global_config():
    pytest.importorskip("pandas")
    sklearn = pytest.importorskip("sklearn")
    pipeline = pytest.importorskip("sklearn.pipeline")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    base = pytest.importorskip("sklearn.base")
    pipe = pipeline.make_pipeline(preprocessing.StandardScaler(), KMeans(3, random_state=0))
    out = pipe.set_output(transform="pandas").fit_transform(_frame())
    assert list(out.columns) == ["kmeans0", "kmeans1", "kmeans2"]
    assert pipe.get_feature_names_out().tolist() == ["kmeans0", "kmeans1", "kmeans2"]
    km = KMeans(3, random_state=0).fit(X)
    with sklearn.config_context(transform_output="pandas"):
        assert list(km.transform(X).columns) == ["kmeans0", "kmeans1", "kmeans2"]
        assert type(km.set_output(transform="default").transform(X)) is np.ndarray  # wins
    assert type(KMeans(3, random_state=0).fit(X).transform(X)) is np.ndarray
    cloned = base.clone(KMeans(3, random_state=0).set_output(transform="pandas"))
    assert list(cloned.fit_transform(X).columns) == ["kmeans0", "kmeans1", "kmeans2"]


def test_set_output_polars():
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"a": X[:, 0], "b": X[:, 1]})
    km = KMeans(3, random_state=0).set_output(transform="polars")
    out = km.fit_transform(frame)
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["kmeans0", "kmeans1", "kmeans2"]
    # polars hands NumPy its columns (Fortran order), so the products may round differently.
    expected = KMeans(3, random_state=0).fit_transform(X)
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-12)
    assert km.feature_names_in_.tolist() == ["a", "b"]


def test_set_output_leaves_other_libraries_results_in_their_library(backend_named):
    pytest.importorskip("pandas")
    torch = backend_named("torch").module
    km = KMeans(3, random_state=0).set_output(transform="pandas").fit(torch.asarray(X))
    assert isinstance(km.transform(torch.asarray(X)), torch.Tensor)


def test_copy_x_is_accepted_and_x_is_never_modified():
    X_before = X.copy()
    results = [KMeans(3, random_state=0, copy_x=copy_x).fit(X) for copy_x in (True, False)]
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(results[0].cluster_centers_, results[1].cluster_centers_)
    with pytest.raises(TypeError, match=r"copy_x must be True or False, got copy_x='no'"):
        KMeans(3, copy_x="no").fit(X)


def test_metadata_routing_passes_sample_weight_only_where_requested():
    sklearn = pytest.importorskip("sklearn")
    pipeline = pytest.importorskip("sklearn.pipeline")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    base = pytest.importorskip("sklearn.base")
    exceptions = pytest.importorskip("sklearn.exceptions")
    w = np.random.default_rng(1).uniform(0.1, 3.0, size=len(X))
    scaled = preprocessing.StandardScaler().fit_transform(X)
    weighted = KMeans(3, random_state=0).fit(scaled, sample_weight=w).cluster_centers_
    unweighted = KMeans(3, random_state=0).fit(scaled).cluster_centers_
    assert not np.allclose(weighted, unweighted)  # the weights matter on these data

    def fitted(request, scaler_request=False, **metadata):
        scaler = preprocessing.StandardScaler().set_fit_request(sample_weight=scaler_request)
        km = KMeans(3, random_state=0).set_fit_request(sample_weight=request)
        return pipeline.make_pipeline(scaler, km).fit(X, **metadata)[-1].cluster_centers_

    with sklearn.config_context(enable_metadata_routing=True):
        np.testing.assert_allclose(fitted(True, sample_weight=w), weighted, rtol=1e-12)
        np.testing.assert_allclose(fitted("km_weights", km_weights=w), weighted, rtol=1e-12)
        # Refused by KMeans, taken by the scaler: KMeans fits the weighted scaling unweighted.
        scaled_w = preprocessing.StandardScaler().fit(X, sample_weight=w).transform(X)
        expected = KMeans(3, random_state=0).fit(scaled_w).cluster_centers_
        if_weighted = KMeans(3, random_state=0).fit(scaled_w, sample_weight=w).cluster_centers_
        assert not np.allclose(expected, if_weighted)
        np.testing.assert_allclose(fitted(False, True, sample_weight=w), expected, rtol=1e-12)
        with pytest.raises(exceptions.UnsetMetadataPassedError, match=r"KMeans\.fit"):
            fitted(None, sample_weight=w)  # not requested either way: an error, not ignored
        cloned = base.clone(KMeans(3).set_fit_request(sample_weight="km_weights"))
        assert cloned.get_metadata_routing().fit.requests == {"sample_weight": "km_weights"}
    km = KMeans(3).set_fit_request(sample_weight=True).set_fit_request()  # unchanged
    assert km.get_metadata_routing().fit.requests == {"sample_weight": True}
    with pytest.raises(ValueError, match=r"sample_weight must be True, False, None or a"):
        km.set_score_request(sample_weight=3)
    with pytest.raises(ValueError, match=r"alias must be a Python identifier, got 'a b'"):
        km.set_fit_request(sample_weight="a b")
    mb = MiniBatchKMeans(3).set_partial_fit_request(sample_weight=True)
    routing = mb.get_metadata_routing()
    assert routing.partial_fit.requests == {"sample_weight": True}
    assert routing.fit.requests == {"sample_weight": None}


def test_errors_and_warnings_are_also_scikit_learns_once_it_is_imported():
    import pickle
    import subprocess

    exceptions = pytest.importorskip("sklearn.exceptions")
    from kmeans_xp import ConvergenceWarning

    with pytest.raises(exceptions.NotFittedError) as caught:
        KMeans(3).predict(X)
    assert isinstance(caught.value, NotFittedError)
    assert type(pickle.loads(pickle.dumps(caught.value))) is type(caught.value)
    with pytest.warns(exceptions.ConvergenceWarning) as record:
        KMeans(3, random_state=0).fit(np.zeros((10, 2)))
    assert issubclass(record[0].category, ConvergenceWarning)
    # Without scikit-learn the classes are kmeans_xp's own, and nothing imports scikit-learn; an
    # error pickled where scikit-learn was imported unpickles in a fresh process.
    code = (
        "import pickle, sys; import numpy as np; from kmeans_xp import KMeans, NotFittedError\n"
        "try:\n    KMeans(3).predict(np.zeros((3, 2)))\n"
        "except NotFittedError as e:\n"
        "    print(type(e) is NotFittedError, 'sklearn' in sys.modules)\n"
        "e = pickle.loads(bytes.fromhex(sys.argv[1])); print(type(e).__mro__[2].__module__)"
    )
    blob = pickle.dumps(caught.value).hex()
    run = subprocess.run([sys.executable, "-c", code, blob], capture_output=True, text=True)
    assert run.stdout.split() == ["True", "False", "sklearn.exceptions"], run.stderr


# ---- where scikit-learn users expect scikit-learn's answer -----------------------------------


def test_k_means_takes_scikit_learns_signature_and_returns_its_tuple():
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    from kmeans_xp import k_means

    X = np.random.default_rng(0).normal(size=(300, 4))
    C0 = X[:5].copy()
    ours = k_means(X, 5, init=C0, n_init=1, copy_x=True, return_n_iter=True)
    theirs = sklearn_cluster.k_means(X, 5, init=C0, n_init=1, copy_x=True, return_n_iter=True)
    assert len(ours) == len(theirs) == 4
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-10)
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert ours[2] == pytest.approx(theirs[2], rel=1e-10)
    assert ours[3] == theirs[3]
    assert len(k_means(X, 5, init=C0, n_init=1)) == 3
    with pytest.raises(
        TypeError, match="return_n_iter must be True or False, got return_n_iter='yes'"
    ):
        k_means(X, 5, return_n_iter="yes")
    with pytest.raises(TypeError, match="copy_x must be True or False"):
        k_means(X, 5, copy_x=None)


@pytest.mark.parametrize(("batch_size", "k"), [(5, 10), (2, 10), (1024, 8), (100, 400)])
def test_minibatch_default_init_size_is_scikit_learns(batch_size, k):
    """3·batch_size, and 3·k only where 3·batch_size would be fewer than k rows (batch_size=5,
    k=10: 15 rows, as scikit-learn; it was 30)."""
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    X = np.random.default_rng(0).normal(size=(2000, 2))
    theirs = sklearn_cluster.MiniBatchKMeans(k, batch_size=batch_size, n_init=1, max_iter=1)
    theirs.fit(X)
    ours = MiniBatchKMeans(k, batch_size=batch_size)
    assert ours._resolved_init_size(min(batch_size, len(X)), len(X)) == theirs._init_size


def test_duplicate_initial_centers_stay_as_scikit_learns_do(xp):
    """Five rows, two of them equal, as their own initial centers: every row sits on a center,
    so refilling the empty duplicate would only move a row off its own center. Like
    scikit-learn, the fit keeps the centers and stops after one iteration (it used to move a
    row onto [0, 0] and take two), and warns of four distinct clusters."""
    from kmeans_xp import ConvergenceWarning

    X = np.array([[0, 0], [1, 1], [1, 1], [1, 0], [0, 1]], dtype=np.float64)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(4\)"):
        km = KMeans(n_clusters=5, init=xp.asarray(X), n_init=1).fit(xp.asarray(X))
    assert km.n_iter_ == 1
    np.testing.assert_array_equal(xp.to_numpy(km.cluster_centers_), X)
    assert km.inertia_ == 0.0
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    with pytest.warns(Warning, match="distinct clusters"):
        theirs = sklearn_cluster.KMeans(n_clusters=5, init=X, n_init=1).fit(X)
    assert theirs.n_iter_ == km.n_iter_
    np.testing.assert_array_equal(theirs.cluster_centers_, X)
