"""Bad input: every case raises ValueError/TypeError naming the argument and showing the value."""

from __future__ import annotations

import numpy as np
import pytest

from kmeans_xp import KMeans, NotFittedError, kmeans, kmeans_plusplus

X_OK = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.0, 6.0]])


def fit(X=X_OK, **params):
    sample_weight = params.pop("sample_weight", None)
    return KMeans(**{"n_clusters": 2, "random_state": 0, **params}).fit(
        X, sample_weight=sample_weight
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x(xp, bad):
    X = X_OK.copy()
    X[1, 1] = bad
    with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite value"):
        fit(xp.asarray(X))


def test_non_finite_sample_weight_and_init(xp):
    with pytest.raises(ValueError, match="sample_weight contains 1 NaN"):
        fit(xp.asarray(X_OK), sample_weight=xp.asarray(np.array([1.0, np.nan, 1.0, 1.0])))
    with pytest.raises(ValueError, match="init contains 2 NaN"):
        fit(xp.asarray(X_OK), init=np.array([[np.nan, 0.0], [np.inf, 1.0]]))


@pytest.mark.parametrize(
    ("X", "pattern"),
    [
        (np.zeros(4), r"X must be a 2-D array .* 1 dimension\(s\) and shape \(4,\)"),
        (np.zeros((2, 2, 2)), r"X must be a 2-D array .* shape \(2, 2, 2\)"),
        (np.zeros((0, 3)), r"at least one sample and one feature, got shape \(0, 3\)"),
        (np.zeros((3, 0)), r"at least one sample and one feature, got shape \(3, 0\)"),
    ],
)
def test_bad_shapes(xp, X, pattern):
    with pytest.raises(ValueError, match=pattern):
        fit(xp.asarray(X))


def test_fewer_samples_than_clusters(xp):
    with pytest.raises(ValueError, match=r"n_samples=4 should be >= n_clusters=5"):
        fit(xp.asarray(X_OK), n_clusters=5)


@pytest.mark.parametrize(
    ("params", "exc", "pattern"),
    [
        ({"n_clusters": 0}, ValueError, r"n_clusters must be >= 1, got n_clusters=0"),
        ({"n_clusters": -3}, ValueError, r"n_clusters=-3"),
        ({"n_clusters": 2.5}, TypeError, r"n_clusters must be an integer, got 2.5"),
        ({"n_clusters": "3"}, TypeError, r"n_clusters must be an integer, got '3'"),
        ({"n_clusters": True}, TypeError, r"n_clusters must be an integer, got True"),
        ({"max_iter": 0}, ValueError, r"max_iter must be >= 1, got max_iter=0"),
        ({"max_iter": 1.5}, TypeError, r"max_iter must be an integer"),
        ({"tol": -1e-3}, ValueError, r"tol must be a finite number >= 0, got tol=-0.001"),
        ({"tol": float("nan")}, ValueError, r"tol=nan"),
        ({"tol": "small"}, TypeError, r"tol must be a real number, got 'small'"),
        ({"init": "kmeans++"}, ValueError, r"init must be .* got init='kmeans\+\+'"),
        ({"init": None}, TypeError, r"init must be .* got None"),
        ({"n_init": 0}, ValueError, r"n_init must be >= 1, got n_init=0"),
        (
            {"n_init": "twice"},
            ValueError,
            r"n_init must be 'auto' or an integer >= 1, got n_init='twice'",
        ),
        ({"verbose": -1}, ValueError, r"verbose must be >= 0"),
        ({"random_state": "seed"}, TypeError, r"random_state must be None, an int.*got 'seed'"),
        ({"random_state": -1}, ValueError, r"random_state must be a non-negative integer"),
    ],
)
def test_bad_parameters(xp, params, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fit(xp.asarray(X_OK), **params)


@pytest.mark.parametrize(
    ("init", "pattern"),
    [
        (
            np.zeros((3, 2)),
            r"init must have shape \(n_clusters, n_features\) = \(2, 2\), got shape \(3, 2\)",
        ),
        (np.zeros((2, 3)), r"got shape \(2, 3\)"),
        (np.zeros(2), r"got shape \(2,\)"),
    ],
)
def test_init_of_the_wrong_shape(xp, init, pattern):
    with pytest.raises(ValueError, match=pattern):
        fit(xp.asarray(X_OK), init=init)


def test_callable_init_returning_the_wrong_shape(xp):
    with pytest.raises(ValueError, match=r"init must have shape .* got shape \(1, 2\)"):
        fit(xp.asarray(X_OK), init=lambda X, k, rs: X[:1, :])


@pytest.mark.parametrize(
    ("weights", "exc", "pattern"),
    [
        (np.ones(3), ValueError, r"sample_weight must have shape \(4,\) .* got shape \(3,\)"),
        (np.ones((4, 1)), ValueError, r"got shape \(4, 1\)"),
        (np.array([1.0, -1.0, 1.0, 1.0]), ValueError, r"non-negative, got 1 negative"),
        (np.zeros(4), ValueError, r"sample_weight must not be all zero"),
        (np.array([True, False, True, True]), TypeError, r"sample_weight must hold numbers"),
    ],
)
def test_bad_sample_weight(xp, weights, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fit(xp.asarray(X_OK), sample_weight=weights)


def test_scalar_sample_weight_is_broadcast(xp):
    a = fit(xp.asarray(X_OK), sample_weight=2.0)
    b = fit(xp.asarray(X_OK))
    assert a.inertia_ == pytest.approx(2 * b.inertia_)


@pytest.mark.parametrize(
    ("X", "exc", "pattern"),
    [
        (np.array([[1 + 1j, 2], [3, 4]]), TypeError, r"X must be real, got complex dtype"),
        (np.array([[True, False], [False, True]]), TypeError, r"X must hold numbers, got boolean"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, r"X must hold numbers, got dtype <U1"),
        (np.array([[object(), 1]], dtype=object), TypeError, r"got dtype object"),
    ],
)
def test_bad_dtypes(X, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fit(X, n_clusters=1)


def test_bad_dtypes_on_other_backends(xp):
    with pytest.raises(TypeError, match=r"X must hold numbers, got boolean"):
        fit(xp.asarray(np.array([[True], [False]])), n_clusters=1)


def test_ragged_lists_are_a_clear_value_error():
    with pytest.raises(ValueError, match=r"X could not be converted to an array"):
        fit([[1.0, 2.0], [3.0]], n_clusters=1)


def test_a_foreign_device_library_in_sample_weight_is_refused(backend_named):
    torch = backend_named("torch").module
    with pytest.raises(TypeError, match=r"sample_weight is a torch array but X is a numpy array"):
        fit(X_OK, sample_weight=torch.ones(4))
    with pytest.raises(TypeError, match=r"init is a torch array but X is a numpy array"):
        fit(X_OK, init=torch.zeros((2, 2), dtype=torch.float64))


def test_predict_before_fit():
    km = KMeans(n_clusters=2)
    for method in (km.predict, km.transform, km.score):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            method(X_OK)
    assert issubclass(NotFittedError, AttributeError)
    assert issubclass(NotFittedError, ValueError)


def test_predict_with_a_different_number_of_features(xp):
    km = fit(xp.asarray(X_OK))
    with pytest.raises(ValueError, match=r"X has 3 features, but KMeans is expecting 2"):
        km.predict(xp.asarray(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"X has 3 features"):
        km.transform(xp.asarray(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"X contains 1 NaN"):
        km.predict(xp.asarray(np.array([[0.0, np.nan]])))


def test_functions_validate_too(xp):
    with pytest.raises(ValueError, match=r"n_clusters must be >= 1"):
        kmeans(xp.asarray(X_OK), 0)
    with pytest.raises(ValueError, match=r"n_samples=4 should be >= n_clusters=9"):
        kmeans_plusplus(xp.asarray(X_OK), 9)
    with pytest.raises(ValueError, match=r"n_local_trials must be >= 1"):
        kmeans_plusplus(xp.asarray(X_OK), 2, n_local_trials=0)


def test_dask_arrays_are_refused_clearly_where_not_supported():
    da = pytest.importorskip("dask.array")
    dX = da.from_array(X_OK)
    model = fit()
    for call in (
        lambda: kmeans(dX, 2),
        lambda: kmeans_plusplus(dX, 2),
        lambda: model.transform(dX),
    ):
        with pytest.raises(TypeError, match=r"dask arrays are taken by KMeans.fit and"):
            call()
