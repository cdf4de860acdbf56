"""What a fitted estimator does with its centers: predict, transform, score (in memory and on
Dask), save, and the one place that sets the fitted attributes."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._algorithms.dask import (
    is_dask_collection,
    predict_dask,
    score_dask,
    transform_dask,
)
from .._algorithms.fit import KMeansResult
from .._algorithms.lloyd import (
    distances_to_centers,
    labels_and_inertia,
)
from .._backends import resolve_precision
from .._core.certified import check_precision
from .._lib.budget import (
    block_rows_for,
)
from .._lib.compat import (
    Array,
    array_device,
    itemsize,
    library_name,
    move_to,
    to_numpy,
)
from .._lib.validation import (
    check_data,
    check_sample_weight,
    check_values,
)
from .._lib.version import __version__
from .base import (
    FeatureNamesMixin,
)
from .state import FORMAT_NAME, FORMAT_VERSION, jsonable_params, write_model_file


class FittedCentersMixin(FeatureNamesMixin):
    """predict, transform, score and save from ``cluster_centers_`` and the training mean
    ``_offset``, shared by the estimators (their fit sets both, ``n_features_in_`` and the
    feature names)."""

    def __getstate__(self) -> dict[str, Any]:
        # The per-library copies of the centers are a cache: rebuilt on demand, never pickled.
        state = self.__dict__.copy()
        if "_fitted_cache" in state:
            state["_fitted_cache"] = {}
        return state

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` as an ``.npz`` file (no pickle); see :func:`load`.

        The file holds the centers, the training labels, the training mean and JSON metadata
        (format version, parameters, n_features, the feature names when fitted on named
        columns, dtype, inertia, n_iter, kmeans_xp version, a SHA-256 checksum). Arrays are
        saved from any library; ``load(path, like=...)`` puts them back in any library and
        device. A ``MiniBatchKMeans`` file also holds what ``partial_fit`` goes on from: the
        centers' running sums, the step count and the random generator's state, so a loaded
        model takes the next batches exactly as the saved one would have.

        A callable ``init`` cannot be saved (a model file never holds code): a ``TypeError``
        says so. A ``random_state`` that is a Generator or RandomState is stored as None (a
        MiniBatchKMeans's own generator state is kept, as said). A ``device`` that is a
        ``torch.device`` or ``cupy.cuda.Device`` is stored by name, and loads as such where its
        library is installed, else as that name.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> from kmeans_xp import KMeans, load
        >>> km = KMeans(n_clusters=2, random_state=0).fit(np.array([[0.0], [1.0], [9.0], [10.0]]))
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> km.save(path)
        >>> load(path).predict(np.array([[0.2], [9.5]])).tolist() == km.predict(
        ...     np.array([[0.2], [9.5]])).tolist()
        True
        """
        self._check_is_fitted()
        write_model_file(path, *self._model_state())

    def _model_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted model as a model file's metadata and arrays (NumPy), for ``save``."""
        params, init_array = jsonable_params(self)
        centers = to_numpy(self.cluster_centers_)
        arrays = {
            "cluster_centers": centers,
            "offset": to_numpy(self._offset).astype(centers.dtype, copy=False),
        }
        labels = getattr(self, "labels_", None)  # a MiniBatchKMeans may have none
        if labels is not None:
            if is_dask_collection(labels):  # a Dask fit's labels live on the workers
                labels = labels.compute()
            arrays["labels"] = to_numpy(labels).astype(np.int64, copy=False)
        if init_array is not None:
            arrays["init"] = init_array
        inertia, n_iter = getattr(self, "inertia_", None), getattr(self, "n_iter_", None)
        metadata = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "kmeans_xp_version": __version__,
            "params": params,
            "n_clusters": int(centers.shape[0]),
            "n_features_in": int(self.n_features_in_),
            "dtype": str(centers.dtype),
            "inertia": None if inertia is None else float(inertia),
            "n_iter": None if n_iter is None else int(n_iter),
            "fitted_with": library_name(self.cluster_centers_),
        }
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            metadata["feature_names_in"] = [str(name) for name in names]
        return metadata, arrays

    def _restore_model_state(
        self, metadata: dict[str, Any], arrays: dict[str, np.ndarray], *, xp: Any, device: Any
    ) -> None:
        """The fitted attributes from a checked model file's metadata and arrays (``load``),
        the arrays moved to namespace ``xp`` on ``device``."""
        labels = arrays.get("labels")
        result = KMeansResult(
            move_to(arrays["cluster_centers"], xp, device),
            None if labels is None else move_to(labels, xp, device),
            metadata["inertia"],
            metadata["n_iter"],
        )
        offset = move_to(arrays["offset"], xp, device)
        self._set_fitted(result, n_features=metadata["n_features_in"], offset=offset)
        if "feature_names_in" in metadata:
            self.feature_names_in_ = np.asarray(metadata["feature_names_in"], dtype=object)

    def _set_fitted(self, result: KMeansResult, *, n_features: int, offset: Array) -> None:
        """The fitted attributes, set in this one place by every fit and by ``load``: the
        centers, the labels, inertia and iterations where ``result`` has them (not None), the
        feature count, and the training mean ``_offset`` that predict centers data by."""
        self.cluster_centers_ = result.centers
        if result.labels is not None:
            self.labels_ = result.labels
        if result.inertia is not None:
            self.inertia_ = float(result.inertia)
        if result.n_iter is not None:
            self.n_iter_ = int(result.n_iter)
        self.n_features_in_ = int(n_features)
        self._offset = offset
        self._fitted_cache: dict[tuple, tuple[Array, Array, float]] = {}

    # ---- using the fitted centers ------------------------------------------------------------

    def _fitted_like(self, X: Any, name: str = "X") -> tuple[Array, Array, Array, Any, int, float]:
        """Validated X, the centers and offset as arrays of X's library, device and dtype, the
        namespace, the block rows, and the largest absolute value of X, centers and offset."""
        self._check_is_fitted()
        self._check_feature_names(X)
        X, xp, device = check_data(X, name)
        if X.shape[1] != self.n_features_in_:
            msg = (
                f"{name} has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
            raise ValueError(msg)
        key = (library_name(X), str(device), str(X.dtype))
        if key not in self._fitted_cache:
            centers = xp.astype(move_to(self.cluster_centers_, xp, device), X.dtype)
            offset = xp.astype(move_to(self._offset, xp, device), X.dtype)
            # Distances are to the fitted centers, whose values (and the centering offset's)
            # may exceed X's: bounds on weighted sums take the largest of the three.
            fitted_largest = max(float(xp.max(xp.abs(a))) for a in (centers, offset))
            self._fitted_cache[key] = (centers, offset, fitted_largest)
        centers, offset, fitted_largest = self._fitted_cache[key]
        block_rows = block_rows_for(
            X.shape[0], X.shape[1], centers.shape[0], itemsize(X, xp), xp=xp, device=device
        )
        largest = check_values(X, name, xp=xp, block_rows=block_rows)
        return X, centers, offset, xp, block_rows, max(largest, fitted_largest)

    def predict(self, X: Any) -> Array:
        """Index of the nearest center of each row of X (an int64 array of X's library; for a
        Dask array or DataFrame, a lazy Dask array)."""
        if is_dask_collection(X):
            centers, offset, name = self._fitted_on_host(X)
            return predict_dask(X, centers, offset, estimator=name)
        X, centers, offset, xp, block_rows, _ = self._fitted_like(X)
        labels, _ = labels_and_inertia(
            X,
            centers,
            None,
            offset=offset,
            block_rows=block_rows,
            xp=xp,
            precision=self._matmul_precision(X, centers.shape[0], xp),
        )
        return labels

    def _fitted_on_host(self, X: Any) -> tuple[np.ndarray, np.ndarray, str]:
        """For a Dask X: the fitted centers and offset as NumPy arrays, after the checks."""
        self._check_is_fitted()
        self._check_feature_names(X, stacklevel=4)
        return to_numpy(self.cluster_centers_), to_numpy(self._offset), type(self).__name__

    def transform(self, X: Any) -> Array:
        """Euclidean distances from each row of X to each center, shape (n_samples, n_clusters)
        (a DataFrame after ``set_output(transform="pandas")`` for NumPy results; for a Dask array
        or DataFrame, a lazy Dask array)."""
        if is_dask_collection(X):
            centers, offset, name = self._fitted_on_host(X)
            return transform_dask(X, centers, offset, estimator=name)
        X_given = X
        X, centers, offset, xp, block_rows, _ = self._fitted_like(X)
        distances = distances_to_centers(X, centers, offset=offset, block_rows=block_rows, xp=xp)
        return self._wrap_transform_output(distances, X_given)

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> Array:
        """Fit, then return ``transform(X)``."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the inertia of X for the fitted centers (higher is better; for a Dask
        array or DataFrame, computed now)."""
        if is_dask_collection(X):
            centers, offset, name = self._fitted_on_host(X)
            return score_dask(X, sample_weight, centers, offset, estimator=name)
        X, centers, offset, xp, block_rows, largest = self._fitted_like(X)
        weights = check_sample_weight(
            sample_weight,
            X,
            xp=xp,
            device=array_device(X),
            block_rows=block_rows,
            x_largest=largest,
        )
        _, inertia = labels_and_inertia(
            X,
            centers,
            weights,
            offset=offset,
            block_rows=block_rows,
            xp=xp,
            precision=self._matmul_precision(X, centers.shape[0], xp),
        )
        return -inertia

    def _matmul_precision(self, X: Array, n_clusters: int, xp: Any) -> str:
        """The mode of the estimator's ``matmul_precision`` ("highest" for those without one)
        for a pass over X (``_backends.resolve_precision``)."""
        precision = check_precision(getattr(self, "matmul_precision", "highest"))
        return resolve_precision(precision, X, n_clusters, xp=xp)
