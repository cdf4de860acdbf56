"""Model files: a fitted ``KMeans`` as an ``.npz`` of arrays plus JSON metadata, never a pickle.

Loading a file cannot run code: arrays are read with ``allow_pickle=False`` and the metadata is
JSON. Every field is checked on load (format, version, shapes, dtypes, finite values, label range)
and a SHA-256 digest over the arrays and the metadata detects a file changed after saving, so a
damaged or edited file raises ``ModelFileError`` instead of giving wrong predictions.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import zipfile
from typing import Any

import numpy as np

from ._array_api import (
    array_device,
    as_supported_array,
    get_namespace,
    is_supported_array,
    library_name,
    move_to,
    to_numpy,
)
from ._dask import is_dask_collection
from .exceptions import ModelFileError

FORMAT_NAME = "kmeans_xp.KMeans"
FORMAT_VERSION = 1
_ARRAYS = ("cluster_centers", "labels", "offset")  # always present; "init" when init is an array


def _digest(arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    h.update(json.dumps(metadata, sort_keys=True).encode())
    return h.hexdigest()


def _jsonable_params(model: Any) -> tuple[dict[str, Any], np.ndarray | None]:
    """The model's parameters as JSON values, and an explicit init array (saved beside them)."""
    params = model.get_params()
    init_array = None
    init = params["init"]
    if callable(init):
        msg = (
            "init is a callable, and a model file never stores code; set init to 'k-means++', "
            "'k-means||', 'random' or an array (e.g. model.set_params(init='k-means++')) before "
            "saving."
        )
        raise TypeError(msg)
    if not isinstance(init, str):
        init_array = to_numpy(as_supported_array(init, "init"))
        params["init"] = None
    random_state = params["random_state"]
    if not (
        random_state is None
        or (isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool))
    ):
        random_state = None  # a Generator's state is not kept (documented in KMeans.save)
    params["random_state"] = None if random_state is None else int(random_state)
    for name in ("n_clusters", "max_iter", "verbose", "n_rounds"):
        params[name] = int(params[name])
    for name in ("tol", "oversampling_factor"):
        params[name] = float(params[name])
    if not isinstance(params["n_init"], str):
        params["n_init"] = int(params["n_init"])
    return params, init_array


def save_model(model: Any, path: str | os.PathLike) -> None:
    """Write a fitted model to ``path`` (exactly that name; ``.npz`` is the usual suffix)."""
    from . import __version__

    model._check_is_fitted()
    params, init_array = _jsonable_params(model)
    centers = to_numpy(model.cluster_centers_)
    labels = model.labels_
    if is_dask_collection(labels):  # a Dask fit's labels live on the workers
        labels = labels.compute()
    arrays = {
        "cluster_centers": centers,
        "labels": to_numpy(labels).astype(np.int64, copy=False),
        "offset": to_numpy(model._offset).astype(centers.dtype, copy=False),
    }
    if init_array is not None:
        arrays["init"] = init_array
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kmeans_xp_version": __version__,
        "params": params,
        "n_clusters": int(centers.shape[0]),
        "n_features_in": int(model.n_features_in_),
        "dtype": str(centers.dtype),
        "inertia": float(model.inertia_),
        "n_iter": int(model.n_iter_),
        "fitted_with": library_name(model.cluster_centers_),
    }
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        metadata["feature_names_in"] = [str(name) for name in names]
    metadata["sha256"] = _digest(arrays, metadata)
    with open(path, "wb") as f:
        np.savez(f, metadata=np.asarray(json.dumps(metadata, sort_keys=True)), **arrays)


def _bad(path: Any, why: str) -> ModelFileError:
    return ModelFileError(f"{os.fspath(path)!s} is not a valid kmeans_xp model file: {why}")


def _read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise _bad(path, "it is not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise _bad(path, "it holds a single array, not an .npz archive")
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise
    except ModelFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise _bad(path, f"it could not be read as an .npz archive ({exc})") from None
    raw = arrays.pop("metadata", None)
    if raw is None or raw.shape != () or raw.dtype.kind != "U":
        raise _bad(path, "it has no metadata entry")
    try:
        metadata = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise _bad(path, f"its metadata is not JSON ({exc})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise _bad(path, f"its metadata does not name the format {FORMAT_NAME!r}")
    return metadata, arrays


def _check(path: Any, metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    version = metadata.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise _bad(path, f"format_version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        raise _bad(
            path,
            f"it was written by a newer kmeans_xp (format version {version}; this version "
            f"reads up to {FORMAT_VERSION}). Upgrade kmeans_xp to load it.",
        )
    expected = set(_ARRAYS) | ({"init"} if "init" in arrays else set())
    if set(arrays) != expected:
        raise _bad(path, f"it holds arrays {sorted(arrays)}, expected {sorted(expected)}")
    stored_digest = metadata.pop("sha256", None)
    if stored_digest != _digest(arrays, metadata):
        raise _bad(path, "its checksum does not match: the file was modified after it was saved")
    centers, labels, offset = arrays["cluster_centers"], arrays["labels"], arrays["offset"]
    k, d = metadata.get("n_clusters"), metadata.get("n_features_in")
    if centers.dtype not in (np.float32, np.float64) or centers.shape != (k, d):
        raise _bad(path, f"cluster_centers has dtype {centers.dtype} and shape {centers.shape}")
    if offset.dtype != centers.dtype or offset.shape != (d,):
        raise _bad(path, f"offset has dtype {offset.dtype} and shape {offset.shape}")
    if not (np.all(np.isfinite(centers)) and np.all(np.isfinite(offset))):
        raise _bad(path, "cluster_centers or offset hold NaN or infinite values")
    if labels.dtype != np.int64 or labels.ndim != 1 or labels.size < k:
        raise _bad(path, f"labels has dtype {labels.dtype} and shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise _bad(path, f"labels fall outside 0..{k - 1}")
    if "init" in arrays and arrays["init"].shape != (k, d):
        raise _bad(path, f"init has shape {arrays['init'].shape}, expected {(k, d)}")
    inertia, n_iter = metadata.get("inertia"), metadata.get("n_iter")
    if not isinstance(inertia, (int, float)) or not np.isfinite(inertia) or inertia < 0:
        raise _bad(path, f"inertia {inertia!r} is not a finite non-negative number")
    if not isinstance(n_iter, int) or n_iter < 0:
        raise _bad(path, f"n_iter {n_iter!r} is not a non-negative integer")
    params = metadata.get("params")
    if not isinstance(params, dict) or params.get("n_clusters") != k:
        raise _bad(path, f"its parameters {params!r} do not match {k} cluster centers")
    names = metadata.get("feature_names_in", [""] * d)
    if not (isinstance(names, list) and len(names) == d and all(isinstance(n, str) for n in names)):
        raise _bad(path, f"feature_names_in {names!r} is not a list of {d} strings")


def load(path: str | os.PathLike, *, like: Any = None) -> Any:
    """Load a model written by :meth:`KMeans.save`.

    Parameters
    ----------
    path : str or path-like
    like : array, optional
        Put the fitted arrays in this array's library, on its device (e.g. a CuPy array, or a
        torch tensor on ``cuda:1``). Default: NumPy, so a model fitted on a GPU loads on any
        machine.

    Returns
    -------
    KMeans
        Fitted, with ``cluster_centers_``, ``labels_``, ``inertia_``, ``n_iter_``,
        ``n_features_in_`` and ``feature_names_in_`` (when fitted on named columns) as saved.

    Raises
    ------
    ModelFileError
        The file is not a kmeans_xp model, is damaged, was modified after saving, or comes from
        a newer format version.
    FileNotFoundError
        No file at ``path``.

    Notes
    -----
    Loading never unpickles: it cannot run code from the file.
    """
    from ._kmeans import KMeans

    if like is None:
        xp, device = get_namespace(np.empty(0)), "cpu"
    else:
        if not is_supported_array(like):
            msg = (
                "like must be an array (NumPy, CuPy, PyTorch or array-api-strict) whose library "
                f"and device the model should use, got {type(like).__name__}."
            )
            raise TypeError(msg)
        xp, device = get_namespace(like), array_device(like)
    metadata, arrays = _read(path)
    _check(path, metadata, arrays)
    params = dict(metadata["params"])
    if "init" in arrays:
        params["init"] = move_to(arrays["init"], xp, device)
    try:
        model = KMeans(**params)
    except TypeError as exc:
        raise _bad(path, f"its parameters do not fit KMeans ({exc})") from None
    model.cluster_centers_ = move_to(arrays["cluster_centers"], xp, device)
    model.labels_ = move_to(arrays["labels"], xp, device)
    model.inertia_ = float(metadata["inertia"])
    model.n_iter_ = int(metadata["n_iter"])
    model.n_features_in_ = int(metadata["n_features_in"])
    if "feature_names_in" in metadata:
        model.feature_names_in_ = np.asarray(metadata["feature_names_in"], dtype=object)
    model._offset = move_to(arrays["offset"], xp, device)
    model._fitted_cache = {}
    return model
