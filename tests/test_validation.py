"""Bad input: every case raises ValueError/TypeError naming the argument and showing the value."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from helpers import assert_labels_are_argmin, blobs, same_partition

from kmeans_xp import KMeans, NotFittedError, kmeans, kmeans_plusplus, silhouette_samples
from kmeans_xp._lib.compat import array_device
from kmeans_xp._lib.validation import check_sample_weight, largest_magnitude

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
        (
            np.zeros(4),
            r"X must be a 2-D array .* 1 dimension\(s\) and shape \(4,\)\. Reshape your data: "
            r"X\.reshape\(-1, 1\) if it is one feature, X\.reshape\(1, -1\) if it is one sample",
        ),
        (np.zeros((2, 2, 2)), r"X must be a 2-D array .* shape \(2, 2, 2\)\.$"),
        (np.zeros((0, 3)), r"X has 0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1 is"),
        (np.zeros((3, 0)), r"X has 0 feature\(s\) \(shape=\(3, 0\)\) while a minimum of 1 is"),
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
        (np.ones(4, dtype=complex), ValueError, r"Complex data not supported: sample_weight"),
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
        (
            np.array([[1 + 1j, 2], [3, 4]]),
            ValueError,
            r"Complex data not supported: X has complex dtype complex128",
        ),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, r"X must hold numbers, got dtype <U1"),
        (
            np.array([[object(), 1]], dtype=object),
            TypeError,
            r"X has dtype object, and not every value is a number: float\(\) argument must be",
        ),
        (
            np.array([["1.5", "x"]], dtype=object),
            ValueError,
            r"X has dtype object, and not every value is a number: could not convert string",
        ),
        (np.array([[None, 1.0]], dtype=object), ValueError, r"X contains 1 NaN"),  # None: NaN
    ],
)
def test_bad_dtypes(X, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fit(X, n_clusters=1)


def test_string_weights_are_a_clear_type_error():
    with pytest.raises(TypeError, match=r"sample_weight must hold numbers, got dtype <U1"):
        fit(sample_weight=np.array(["1", "1", "1", "1"]))


def test_booleans_are_clustered_as_zeros_and_ones(xp):
    """As scikit-learn reads them: binary features, and 0/1 weights that leave samples out."""
    rng = np.random.default_rng(0)
    X = np.r_[rng.random((30, 6)) < 0.1, rng.random((30, 6)) < 0.9]
    keep = np.r_[np.ones(40, dtype=bool), np.zeros(20, dtype=bool)]
    model = fit(xp.asarray(X), sample_weight=xp.asarray(keep))
    assert xp.xp.isdtype(model.cluster_centers_.dtype, "real floating")
    centers = xp.to_numpy(model.cluster_centers_).astype(np.float64)
    assert_labels_are_argmin(X.astype(np.float64), centers, xp.to_numpy(model.labels_))
    for j in range(2):  # each center is the mean of the rows it holds, weighted by keep
        members = (xp.to_numpy(model.labels_) == j) & keep
        np.testing.assert_allclose(centers[j], X[members].mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(
        xp.to_numpy(model.predict(xp.asarray(X))), xp.to_numpy(model.labels_)
    )


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
        lambda: silhouette_samples(dX, model.labels_),
    ):
        with pytest.raises(TypeError, match=r"DataFrames are taken by KMeans's fit"):
            call()


def _limits(dtype, n_samples: int, n_features: int) -> tuple[float, float]:
    """check_magnitude's largest and smallest accepted |value|, recomputed from its docstring."""
    finfo = np.finfo(dtype)
    f64_max = float(np.finfo(np.float64).max)
    highest = np.sqrt(min(float(finfo.max), f64_max / n_samples) / (16 * n_features))
    lowest = np.sqrt(n_features * float(finfo.smallest_normal) / float(finfo.eps))
    return float(highest), float(lowest)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("side", ["too large", "too small"])
def test_values_whose_squared_distances_overflow_or_underflow_are_refused(xp, dtype, side):
    X, _ = blobs(20, [[0.0, 0.0], [5.0, 5.0], [10.0, 10.0]], seed=4)
    X /= np.abs(X).max()  # largest |value| 1
    highest, lowest = _limits(dtype, *X.shape)
    scale = 4 * highest if side == "too large" else lowest / 4
    bad = xp.asarray((X * scale).astype(dtype))
    pattern = rf"X's largest absolute value, .*, is {side} for K-Means in .*{np.dtype(dtype)}"
    with pytest.raises(ValueError, match=pattern):
        KMeans(n_clusters=3, random_state=0).fit(bad)
    model = KMeans(n_clusters=3, random_state=0).fit(xp.asarray(X.astype(dtype)))
    for method in (model.predict, model.transform, model.score):
        with pytest.raises(ValueError, match=pattern):
            method(bad)
    with pytest.raises(ValueError, match=pattern):
        silhouette_samples(bad, np.arange(X.shape[0]) % 3)
    init_pattern = pattern.replace("X's", "init's")
    init = xp.to_numpy(bad)[[np.abs(X).max(axis=1).argmax(), 0, 1]]  # holds the largest
    with pytest.raises(ValueError, match=init_pattern):
        KMeans(n_clusters=3, init=init).fit(xp.asarray(X.astype(dtype)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("side", ["large", "small"])
def test_values_just_inside_the_limits_are_clustered_exactly(xp, dtype, side):
    """The limits are not too loose: at half the largest (twice the smallest) accepted value the
    fit's centers are finite and its labels the float64 argmin, as for the unscaled data."""
    X, groups = blobs(20, [[0.0, 0.0], [5.0, 5.0], [10.0, 10.0]], seed=4)
    X /= np.abs(X).max()
    highest, lowest = _limits(dtype, *X.shape)
    X = (X * (highest / 2 if side == "large" else 2 * lowest)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        km = KMeans(n_clusters=3, random_state=0).fit(xp.asarray(X))
    centers = xp.to_numpy(km.cluster_centers_).astype(np.float64)
    assert np.isfinite(centers).all()
    assert np.isfinite(km.inertia_)
    assert same_partition(xp.to_numpy(km.labels_), groups)
    assert_labels_are_argmin(X.astype(np.float64), centers, xp.to_numpy(km.labels_))


def test_non_finite_values_are_found_in_any_block(xp):
    """The largest |value| is reduced over the blocks; a NaN or infinity in any one block wins."""
    A = np.arange(12.0).reshape(6, 2) - 5.0  # largest |value| 6, in the last block
    assert largest_magnitude(xp.asarray(A), "A", xp=xp.xp, block_rows=1) == 6.0
    for row in range(6):
        for bad in (np.nan, np.inf, -np.inf):
            B = A.copy()
            B[row, 1] = bad
            with pytest.raises(ValueError, match=r"A contains 1 NaN or infinite value\(s\)"):
                largest_magnitude(xp.asarray(B), "A", xp=xp.xp, block_rows=1)


def test_sparse_matrices_are_refused_with_how_to_densify(backend_named):
    sparse = pytest.importorskip("scipy.sparse")
    for matrix in (sparse.csr_matrix(X_OK), sparse.csr_array(X_OK), sparse.coo_matrix(X_OK)):
        with pytest.raises(TypeError, match=r"X is a sparse .* pass X\.toarray\(\)"):
            fit(matrix)
    with pytest.raises(TypeError, match=r"sample_weight is a sparse .*sample_weight\.toarray\(\)"):
        fit(sample_weight=sparse.csr_matrix(np.ones((1, 4))))
    torch = backend_named("torch").module
    with pytest.raises(TypeError, match=r"X is a sparse Tensor \(torch\).* pass X\.to_dense\(\)"):
        fit(torch.asarray(X_OK).to_sparse())


def test_masked_arrays_with_masked_values_are_refused():
    X = np.ma.masked_array(X_OK, mask=[[0, 0], [0, 1], [0, 0], [1, 1]])
    with pytest.raises(TypeError, match=r"X is a NumPy masked array with 3 masked value\(s\)"):
        fit(X)
    with pytest.raises(TypeError, match=r"X is a NumPy masked array"):
        fit().predict(X)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize(
    "wrap",
    [np.asmatrix, np.ma.masked_array, lambda X: np.ma.masked_array(X, mask=np.zeros_like(X))],
)
def test_matrices_and_unmasked_arrays_are_clustered_as_plain_arrays(wrap):
    plain = fit()
    km = fit(wrap(X_OK))
    assert type(km.labels_) is np.ndarray
    assert type(km.cluster_centers_) is np.ndarray
    np.testing.assert_array_equal(km.labels_, plain.labels_)
    np.testing.assert_array_equal(km.cluster_centers_, plain.cluster_centers_)
    assert type(km.predict(wrap(X_OK))) is np.ndarray


def test_large_float32_weights_are_summed_without_overflow(xp):
    X = xp.asarray(np.zeros((300, 2), dtype=np.float32))
    w = xp.asarray(np.full(300, 1e37, dtype=np.float32))  # sum 3e39: beyond float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checked = check_sample_weight(
            w, X, xp=xp.xp, device=array_device(X), block_rows=64, x_largest=0.0
        )
    np.testing.assert_array_equal(xp.to_numpy(checked), xp.to_numpy(w))


def test_weights_whose_weighted_sums_overflow_are_refused(xp):
    X = xp.asarray(X_OK * 1e100)  # squared distances up to 16 · 2 · 6e200
    limit = np.finfo(np.float64).max / (16 * 2 * 6e100**2) / 4  # total weight at the bound
    with pytest.raises(ValueError, match=r"sample_weight is too large for X: its values sum to"):
        fit(X, sample_weight=xp.asarray(np.full(4, 1.01 * limit)))
    model = fit(X, sample_weight=xp.asarray(np.full(4, 0.5 * limit)))  # half the bound: fitted
    assert math.isfinite(float(model.inertia_))
    centers = xp.to_numpy(model.cluster_centers_)
    assert np.all(np.isfinite(centers))
    np.testing.assert_allclose(np.sort(centers[:, 1]), [0.5e100, 5.5e100])
    with pytest.raises(ValueError, match=r"sample_weight is too large for X"):
        model.score(X, sample_weight=xp.asarray(np.full(4, 1.01 * limit)))
    with pytest.raises(ValueError, match=r"sample_weight is too large for X"):
        fit(xp.asarray(X_OK), sample_weight=xp.asarray(np.full(4, 1e308)))


def test_weights_beyond_the_range_of_float32_x_are_refused_before_the_cast(xp):
    X = xp.asarray(X_OK.astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 'overflow encountered in cast'
        with pytest.raises(ValueError, match=r"largest value, 1e\+300, does not fit X's dtype"):
            fit(X, sample_weight=np.full(4, 1e300))
        with pytest.raises(ValueError, match=r"largest value, 1e-320, is zero in X's dtype"):
            fit(X, sample_weight=np.full(4, 1e-320))
    # Within float32's range, weights far beyond the data's scale are fitted (sums in float64).
    model = fit(X, sample_weight=np.full(4, 1e38))
    np.testing.assert_array_equal(xp.to_numpy(model.labels_), xp.to_numpy(fit(X).labels_))


def test_object_arrays_of_numbers_are_read_as_float64():
    """As scikit-learn reads them (e.g. a DataFrame whose columns have different dtypes)."""
    model = fit(X_OK.astype(object))
    assert model.cluster_centers_.dtype == np.float64
    np.testing.assert_array_equal(model.labels_, fit().labels_)
    model = fit(X_OK, sample_weight=np.ones(4, dtype=object), init=X_OK[:2].astype(object))
    np.testing.assert_array_equal(model.labels_, fit(X_OK, init=X_OK[:2]).labels_)


@pytest.mark.parametrize("library", ["pandas", "polars"])
def test_dataframe_columns_that_are_not_numbers_are_refused_by_name(library):
    """Text once failed with a bare conversion error; dates were clustered as nanosecond
    counts, silently."""
    pd = pytest.importorskip("pandas")
    frame_library = pytest.importorskip(library)
    columns = {"x": X_OK[:, 0], "y": X_OK[:, 1]}
    with_text = frame_library.DataFrame({**columns, "name": ["a", "b", "c", "d"]})
    with pytest.raises(TypeError, match=r"X must hold numbers, but its column\(s\) 'name' \("):
        fit(with_text)
    dates = pd.date_range("2020-01-01", periods=4)
    with_dates = frame_library.DataFrame({**columns, "when": dates})
    with pytest.raises(TypeError, match=r"column\(s\) 'when' \(.*\) do not; encode or drop"):
        fit(with_dates)
    flags = frame_library.DataFrame({**columns, "flag": [True, False, True, False]})
    model = fit(flags)  # booleans are numbers (0 and 1), as scikit-learn reads them
    assert model.feature_names_in_.tolist() == ["x", "y", "flag"]
    if library == "pandas":
        with pytest.raises(ValueError, match=r"Complex data not supported: X has complex column"):
            fit(pd.DataFrame({"z": X_OK[:, 0] + 1j, "y": X_OK[:, 1]}))
        with pytest.raises(TypeError, match=r"column\(s\) 'kind' \(category\)"):
            fit(pd.DataFrame({**columns, "kind": pd.Categorical(["u", "v", "u", "v"])}))
    model = fit(frame_library.DataFrame(columns))
    with pytest.raises(TypeError, match=r"column\(s\) 'y' \("):
        model.predict(frame_library.DataFrame({"x": X_OK[:, 0], "y": ["a", "b", "c", "d"]}))


def test_pandas_nullable_columns_are_read_and_missing_values_reported():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X_OK, columns=["a", "b"]).astype({"a": "Float64", "b": "Int64"})
    np.testing.assert_array_equal(fit(frame).labels_, fit().labels_)
    frame.loc[1, "a"] = pd.NA
    with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite value\(s\)"):
        fit(frame)
