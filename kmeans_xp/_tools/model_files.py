"""Model files: ``load`` reads a fitted ``KMeans`` or ``MiniBatchKMeans`` back from the
``.npz`` of arrays plus JSON metadata that their ``save`` writes (``_estimators.state``), never
a pickle.

Loading a file cannot run code: arrays are read with ``allow_pickle=False`` and the metadata is
JSON. Every field is checked on load (format, version, shapes, dtypes, finite values, label range)
and a SHA-256 digest over the arrays and the metadata detects a file changed after saving, so a
damaged or edited file raises ``ModelFileError`` instead of giving wrong predictions.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from .._estimators.kmeans import KMeans
from .._estimators.minibatch import MiniBatchKMeans
from .._estimators.state import (
    BASE_ARRAYS,
    FORMAT_NAME,
    FORMAT_VERSION,
    MINIBATCH_ARRAYS,
    MINIBATCH_FORMAT_NAME,
    device_from_json,
    digest,
    rng_from_json,
)
from .._lib.compat import array_device, get_namespace, is_supported_array, move_to
from ..exceptions import ModelFileError
from .npz_reader import Expected, bad_file, open_regular_file, read_arrays, read_metadata


def _read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata and arrays of a model file, each checked before it is read (``npz_reader``)."""
    with open_regular_file(path) as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise bad_file(path, "it is not an .npz archive")
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as archive:
                metadata = read_metadata(path, archive)
                formats = (FORMAT_NAME, MINIBATCH_FORMAT_NAME)
                if metadata.get("format") not in formats:
                    named = f"{FORMAT_NAME!r} or {formats[1]!r}"
                    raise bad_file(path, f"its metadata does not name the format {named}")
                _check_version(path, metadata)
                arrays = read_arrays(path, archive, _expected_arrays(path, metadata))
        except ModelFileError:
            raise
        except Exception as exc:  # anything a damaged archive makes zipfile or numpy raise
            raise bad_file(path, f"it could not be read as an .npz archive ({exc!r})") from None
    return metadata, arrays


def _expected_arrays(path: Any, metadata: dict[str, Any]) -> Expected:
    """The arrays a file with this metadata may hold, with their shapes and dtypes."""
    k, d = metadata.get("n_clusters"), metadata.get("n_features_in")
    if not (_is_count(k) and _is_count(d)):
        raise bad_file(path, f"n_clusters {k!r} and n_features_in {d!r} must be positive integers")

    def floating(dtype: np.dtype) -> bool:
        return dtype.kind == "f" and dtype.itemsize in (4, 8)

    def numbers(dtype: np.dtype) -> bool:
        return dtype.kind in "biuf"

    expected: Expected = {
        "cluster_centers": ((k, d), floating),
        "offset": ((d,), floating),
        "labels": ((None,), lambda dtype: dtype == np.int64),
        "init": ((k, d), numbers),
    }
    if metadata["format"] == MINIBATCH_FORMAT_NAME:
        expected["step_centers"] = ((k, d), floating)
        expected["step_weight_sums"] = ((k,), floating)
    return expected


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 2**40


def _check_version(path: Any, metadata: dict[str, Any]) -> None:
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad_file(path, f"format_version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        raise bad_file(
            path,
            f"it was written by a newer kmeans_xp (format version {version}; this version "
            f"reads up to {FORMAT_VERSION}). Upgrade kmeans_xp to load it.",
        )


def _check(path: Any, metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    minibatch = metadata["format"] == MINIBATCH_FORMAT_NAME
    optional = {"init"} | ({"labels"} if minibatch else set())
    expected = set(BASE_ARRAYS) | (set(MINIBATCH_ARRAYS) if minibatch else set())
    expected = (expected - optional) | (optional & set(arrays))
    if set(arrays) != expected:
        raise bad_file(path, f"it holds arrays {sorted(arrays)}, expected {sorted(expected)}")
    stored_digest = metadata.pop("sha256", None)
    if stored_digest != digest(arrays, metadata):
        why = "its checksum does not match: the file was modified after it was saved"
        raise bad_file(path, why)
    centers, offset = arrays["cluster_centers"], arrays["offset"]
    k, d = metadata.get("n_clusters"), metadata.get("n_features_in")
    if centers.dtype not in (np.float32, np.float64) or centers.shape != (k, d):
        raise bad_file(path, f"cluster_centers has dtype {centers.dtype} and shape {centers.shape}")
    if metadata.get("dtype") != str(centers.dtype):
        raise bad_file(path, f"dtype {metadata.get('dtype')!r} is not the centers' {centers.dtype}")
    if offset.dtype != centers.dtype or offset.shape != (d,):
        raise bad_file(path, f"offset has dtype {offset.dtype} and shape {offset.shape}")
    if not (np.all(np.isfinite(centers)) and np.all(np.isfinite(offset))):
        raise bad_file(path, "cluster_centers or offset hold NaN or infinite values")
    if "labels" in arrays:
        labels = arrays["labels"]
        if labels.dtype != np.int64 or labels.ndim != 1 or labels.size < k:
            raise bad_file(path, f"labels has dtype {labels.dtype} and shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise bad_file(path, f"labels fall outside 0..{k - 1}")
    if "init" in arrays and arrays["init"].shape != (k, d):
        raise bad_file(path, f"init has shape {arrays['init'].shape}, expected {(k, d)}")
    inertia, n_iter = metadata.get("inertia"), metadata.get("n_iter")
    if not (minibatch and inertia is None) and not (
        isinstance(inertia, int | float) and np.isfinite(inertia) and inertia >= 0
    ):
        raise bad_file(path, f"inertia {inertia!r} is not a finite non-negative number")
    if not (minibatch and n_iter is None) and not (isinstance(n_iter, int) and n_iter >= 0):
        raise bad_file(path, f"n_iter {n_iter!r} is not a non-negative integer")
    if minibatch:
        _check_minibatch_state(path, metadata.get("minibatch"), arrays, k, d)
    params = metadata.get("params")
    if not isinstance(params, dict) or params.get("n_clusters") != k:
        raise bad_file(path, f"its parameters {params!r} do not match {k} cluster centers")
    device = params.get("device")
    named = isinstance(device, dict) and len(device) == 1
    if not (
        device is None
        or isinstance(device, str)
        or (named and isinstance(device.get("torch"), str))
        or (named and isinstance(device.get("cupy"), int))
    ):
        raise bad_file(path, f"its device parameter {device!r} is not a device name")
    names = metadata.get("feature_names_in", [""] * d)
    if not (isinstance(names, list) and len(names) == d and all(isinstance(n, str) for n in names)):
        raise bad_file(path, f"feature_names_in {names!r} is not a list of {d} strings")


def _check_minibatch_state(
    path: Any, values: Any, arrays: dict[str, np.ndarray], k: int, d: int
) -> None:
    """A MiniBatchKMeans file's step state: finite centers and non-negative weight sums of the
    model's shape, counts that are integers, and a generator state numpy accepts."""
    step_centers, weight_sums = arrays["step_centers"], arrays["step_weight_sums"]
    if step_centers.dtype.kind != "f" or step_centers.shape != (k, d):
        found = f"dtype {step_centers.dtype}, shape {step_centers.shape}"
        raise bad_file(path, f"step_centers has {found}")
    if weight_sums.dtype != step_centers.dtype or weight_sums.shape != (k,):
        raise bad_file(
            path, f"step_weight_sums has dtype {weight_sums.dtype}, shape {weight_sums.shape}"
        )
    if not (np.all(np.isfinite(step_centers)) and np.all(np.isfinite(weight_sums))):
        raise bad_file(path, "step_centers or step_weight_sums hold NaN or infinite values")
    if np.any(weight_sums < 0):
        raise bad_file(path, "step_weight_sums holds negative values")
    counts = ("n_steps", "batch_size", "since_reassign")
    if not (
        isinstance(values, dict)
        and all(isinstance(values.get(name), int) and values[name] >= 0 for name in counts)
        and values["batch_size"] >= 1
    ):
        raise bad_file(path, f"its mini-batch state {values!r} lacks non-negative {counts}")
    try:
        rng_from_json(values.get("rng"))
    except Exception as exc:  # whatever numpy raises on a forged state (Overflow, Index...)
        raise bad_file(path, f"its random generator state cannot be restored ({exc!r})") from None


def load(path: str | os.PathLike, *, like: Any = None) -> Any:
    """Load a model written by :meth:`KMeans.save` or :meth:`MiniBatchKMeans.save`.

    Parameters
    ----------
    path : str or path-like
    like : array, optional
        Put the fitted arrays in this array's library, on its device (e.g. a CuPy array, or a
        torch tensor on ``cuda:1``). Default: NumPy, so a model fitted on a GPU loads on any
        machine.

    Returns
    -------
    KMeans or MiniBatchKMeans
        Fitted, with ``cluster_centers_``, ``labels_``, ``inertia_``, ``n_iter_``,
        ``n_features_in_`` and ``feature_names_in_`` (when fitted on named columns) as saved.
        A MiniBatchKMeans also has ``n_steps_`` and goes on with ``partial_fit`` as the saved
        model would have (the same steps, and the same random draws from its generator).

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
    estimator = MiniBatchKMeans if metadata["format"] == MINIBATCH_FORMAT_NAME else KMeans
    params = dict(metadata["params"])
    if "init" in arrays:
        params["init"] = move_to(arrays["init"], xp, device)
    if "device" in params:
        params["device"] = device_from_json(params["device"])
    try:
        model = estimator(**params)
    except TypeError as exc:
        raise bad_file(path, f"its parameters do not fit {estimator.__name__} ({exc})") from None
    try:
        model._check_params()
    except (ValueError, TypeError) as exc:
        raise bad_file(path, f"its parameters are not valid ({exc})") from None
    model._restore_model_state(metadata, arrays, xp=xp, device=device)
    return model
