"""Model files: a fitted ``KMeans`` or ``MiniBatchKMeans`` as an ``.npz`` of arrays plus JSON
metadata, never a pickle.

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

from .._algorithms.dask import is_dask_collection
from .._lib.compat import (
    array_device,
    as_supported_array,
    get_namespace,
    is_supported_array,
    library_name,
    move_to,
    to_numpy,
)
from ..exceptions import ModelFileError

FORMAT_NAME = "kmeans_xp.KMeans"
MINIBATCH_FORMAT_NAME = "kmeans_xp.MiniBatchKMeans"  # a KMeans file's fields, and partial_fit's
FORMAT_VERSION = 1
# Always present; "init" when init is an array. A MiniBatchKMeans file adds its step state
# (MINIBATCH_ARRAYS), and holds labels only when the model has them (compute_labels).
_ARRAYS = ("cluster_centers", "labels", "offset")
MINIBATCH_ARRAYS = ("step_centers", "step_weight_sums")


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
        params["random_state"] = None  # a Generator's state is not kept (documented in save)
    return {name: _json_param(name, value) for name, value in params.items()}, init_array


def _json_param(name: str, value: Any) -> Any:
    """A parameter as a JSON value: NumPy scalars as Python ones, a device by its library and
    name (``_device_from_json`` undoes it)."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    module = type(value).__module__
    if name == "device" and module.startswith("torch"):
        return {"torch": str(value)}
    if name == "device" and module.startswith("cupy"):
        return {"cupy": int(value.id)}
    msg = f"{name}={value!r} cannot be stored in a model file; set a plain value before saving."
    raise TypeError(msg)


def _device_from_json(value: Any) -> Any:
    """The ``device`` parameter back from ``_json_param``'s form: a torch.device or
    cupy.cuda.Device where that library is installed, else its name ('cuda:N', 'cpu'), so that
    the file loads on any machine (the device matters only to a new fit)."""
    if not isinstance(value, dict):
        return value
    if "torch" in value:
        try:
            import torch
        except ImportError:
            return str(value["torch"])
        return torch.device(value["torch"])
    try:
        import cupy
    except ImportError:
        return f"cuda:{value['cupy']}"
    return cupy.cuda.Device(value["cupy"])


def save_model(model: Any, path: str | os.PathLike) -> None:
    """Write a fitted model to ``path`` (exactly that name; ``.npz`` is the usual suffix)."""
    from .. import __version__

    model._check_is_fitted()
    minibatch = _is_minibatch(model)
    params, init_array = _jsonable_params(model)
    centers = to_numpy(model.cluster_centers_)
    arrays = {
        "cluster_centers": centers,
        "offset": to_numpy(model._offset).astype(centers.dtype, copy=False),
    }
    labels = getattr(model, "labels_", None)  # a MiniBatchKMeans may have none
    if labels is not None:
        if is_dask_collection(labels):  # a Dask fit's labels live on the workers
            labels = labels.compute()
        arrays["labels"] = to_numpy(labels).astype(np.int64, copy=False)
    if init_array is not None:
        arrays["init"] = init_array
    inertia, n_iter = getattr(model, "inertia_", None), getattr(model, "n_iter_", None)
    metadata = {
        "format": MINIBATCH_FORMAT_NAME if minibatch else FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kmeans_xp_version": __version__,
        "params": params,
        "n_clusters": int(centers.shape[0]),
        "n_features_in": int(model.n_features_in_),
        "dtype": str(centers.dtype),
        "inertia": None if inertia is None else float(inertia),
        "n_iter": None if n_iter is None else int(n_iter),
        "fitted_with": library_name(model.cluster_centers_),
    }
    if minibatch:
        state = model._step_state
        arrays["step_centers"] = to_numpy(state.centers)
        arrays["step_weight_sums"] = to_numpy(state.weight_sums)
        metadata["minibatch"] = {
            "n_steps": int(model.n_steps_),
            "batch_size": int(state.batch_size),
            "since_reassign": int(state.since_reassign),
            "rng": _rng_to_json(model._rng),
        }
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        metadata["feature_names_in"] = [str(name) for name in names]
    metadata["sha256"] = _digest(arrays, metadata)
    with open(path, "wb") as f:
        np.savez(f, metadata=np.asarray(json.dumps(metadata, sort_keys=True)), **arrays)


def _is_minibatch(model: Any) -> bool:
    from .._estimators.minibatch import MiniBatchKMeans

    return isinstance(model, MiniBatchKMeans)


def _rng_to_json(rng: Any) -> dict[str, Any]:
    """A ``numpy.random.Generator``'s or ``RandomState``'s state as JSON values (its arrays,
    e.g. MT19937's key, as lists with their dtype), so that a loaded MiniBatchKMeans draws what
    the saved one would have drawn next."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, np.ndarray):
            return {"array": value.tolist(), "dtype": value.dtype.str}
        if isinstance(value, np.generic):
            return value.item()
        return value

    if isinstance(rng, np.random.RandomState):
        return {"kind": "RandomState", "state": plain(rng.get_state(legacy=False))}
    return {"kind": "Generator", "state": plain(rng.bit_generator.state)}


def _rng_from_json(value: Any) -> Any:
    """``_rng_to_json`` undone; ValueError (or TypeError, KeyError) where it is not such a
    state."""

    def arrays(item: Any) -> Any:
        if isinstance(item, dict) and set(item) == {"array", "dtype"}:
            return np.asarray(item["array"], dtype=np.dtype(item["dtype"]))
        if isinstance(item, dict):
            return {key: arrays(inner) for key, inner in item.items()}
        return item

    state = arrays(value["state"])
    name = state["bit_generator"]
    bit_generator = getattr(np.random, name, None) if isinstance(name, str) else None
    if not (isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator)):
        msg = f"unknown bit generator {name!r}"
        raise ValueError(msg)
    if value["kind"] == "RandomState":
        rng = np.random.RandomState(bit_generator())
        rng.set_state(state)
        return rng
    if value["kind"] != "Generator":
        msg = f"unknown generator kind {value['kind']!r}"
        raise ValueError(msg)
    generator = bit_generator()
    generator.state = state
    return np.random.Generator(generator)


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
    formats = (FORMAT_NAME, MINIBATCH_FORMAT_NAME)
    if not isinstance(metadata, dict) or metadata.get("format") not in formats:
        raise _bad(path, f"its metadata does not name the format {FORMAT_NAME!r} or {formats[1]!r}")
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
    minibatch = metadata["format"] == MINIBATCH_FORMAT_NAME
    optional = {"init"} | ({"labels"} if minibatch else set())
    expected = set(_ARRAYS) | (set(MINIBATCH_ARRAYS) if minibatch else set())
    expected = (expected - optional) | (optional & set(arrays))
    if set(arrays) != expected:
        raise _bad(path, f"it holds arrays {sorted(arrays)}, expected {sorted(expected)}")
    stored_digest = metadata.pop("sha256", None)
    if stored_digest != _digest(arrays, metadata):
        raise _bad(path, "its checksum does not match: the file was modified after it was saved")
    centers, offset = arrays["cluster_centers"], arrays["offset"]
    k, d = metadata.get("n_clusters"), metadata.get("n_features_in")
    if centers.dtype not in (np.float32, np.float64) or centers.shape != (k, d):
        raise _bad(path, f"cluster_centers has dtype {centers.dtype} and shape {centers.shape}")
    if offset.dtype != centers.dtype or offset.shape != (d,):
        raise _bad(path, f"offset has dtype {offset.dtype} and shape {offset.shape}")
    if not (np.all(np.isfinite(centers)) and np.all(np.isfinite(offset))):
        raise _bad(path, "cluster_centers or offset hold NaN or infinite values")
    if "labels" in arrays:
        labels = arrays["labels"]
        if labels.dtype != np.int64 or labels.ndim != 1 or labels.size < k:
            raise _bad(path, f"labels has dtype {labels.dtype} and shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise _bad(path, f"labels fall outside 0..{k - 1}")
    if "init" in arrays and arrays["init"].shape != (k, d):
        raise _bad(path, f"init has shape {arrays['init'].shape}, expected {(k, d)}")
    inertia, n_iter = metadata.get("inertia"), metadata.get("n_iter")
    if not (minibatch and inertia is None) and not (
        isinstance(inertia, int | float) and np.isfinite(inertia) and inertia >= 0
    ):
        raise _bad(path, f"inertia {inertia!r} is not a finite non-negative number")
    if not (minibatch and n_iter is None) and not (isinstance(n_iter, int) and n_iter >= 0):
        raise _bad(path, f"n_iter {n_iter!r} is not a non-negative integer")
    if minibatch:
        _check_minibatch_state(path, metadata.get("minibatch"), arrays, k, d)
    params = metadata.get("params")
    if not isinstance(params, dict) or params.get("n_clusters") != k:
        raise _bad(path, f"its parameters {params!r} do not match {k} cluster centers")
    device = params.get("device")
    named = isinstance(device, dict) and len(device) == 1
    if not (
        device is None
        or isinstance(device, str)
        or (named and isinstance(device.get("torch"), str))
        or (named and isinstance(device.get("cupy"), int))
    ):
        raise _bad(path, f"its device parameter {device!r} is not a device name")
    names = metadata.get("feature_names_in", [""] * d)
    if not (isinstance(names, list) and len(names) == d and all(isinstance(n, str) for n in names)):
        raise _bad(path, f"feature_names_in {names!r} is not a list of {d} strings")


def _check_minibatch_state(
    path: Any, values: Any, arrays: dict[str, np.ndarray], k: int, d: int
) -> None:
    """A MiniBatchKMeans file's step state: finite centers and non-negative weight sums of the
    model's shape, counts that are integers, and a generator state numpy accepts."""
    step_centers, weight_sums = arrays["step_centers"], arrays["step_weight_sums"]
    if step_centers.dtype.kind != "f" or step_centers.shape != (k, d):
        raise _bad(path, f"step_centers has dtype {step_centers.dtype}, shape {step_centers.shape}")
    if weight_sums.dtype != step_centers.dtype or weight_sums.shape != (k,):
        raise _bad(
            path, f"step_weight_sums has dtype {weight_sums.dtype}, shape {weight_sums.shape}"
        )
    if not (np.all(np.isfinite(step_centers)) and np.all(np.isfinite(weight_sums))):
        raise _bad(path, "step_centers or step_weight_sums hold NaN or infinite values")
    if np.any(weight_sums < 0):
        raise _bad(path, "step_weight_sums holds negative values")
    counts = ("n_steps", "batch_size", "since_reassign")
    if not (
        isinstance(values, dict)
        and all(isinstance(values.get(name), int) and values[name] >= 0 for name in counts)
        and values["batch_size"] >= 1
    ):
        raise _bad(path, f"its mini-batch state {values!r} lacks non-negative {counts}")
    try:
        _rng_from_json(values.get("rng"))
    except (TypeError, ValueError, KeyError) as exc:
        raise _bad(path, f"its random generator state cannot be restored ({exc!r})") from None


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
    from .._estimators.kmeans import KMeans
    from .._estimators.minibatch import MiniBatchKMeans

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
    minibatch = metadata["format"] == MINIBATCH_FORMAT_NAME
    estimator = MiniBatchKMeans if minibatch else KMeans
    params = dict(metadata["params"])
    if "init" in arrays:
        params["init"] = move_to(arrays["init"], xp, device)
    if "device" in params:
        params["device"] = _device_from_json(params["device"])
    try:
        model = estimator(**params)
    except TypeError as exc:
        raise _bad(path, f"its parameters do not fit {estimator.__name__} ({exc})") from None
    model.cluster_centers_ = move_to(arrays["cluster_centers"], xp, device)
    if "labels" in arrays:
        model.labels_ = move_to(arrays["labels"], xp, device)
    if metadata["inertia"] is not None:
        model.inertia_ = float(metadata["inertia"])
    if metadata["n_iter"] is not None:
        model.n_iter_ = int(metadata["n_iter"])
    model.n_features_in_ = int(metadata["n_features_in"])
    if "feature_names_in" in metadata:
        model.feature_names_in_ = np.asarray(metadata["feature_names_in"], dtype=object)
    model._offset = move_to(arrays["offset"], xp, device)
    model._fitted_cache = {}
    if minibatch:
        values = metadata["minibatch"]
        model._restore_step_state(
            move_to(arrays["step_centers"], xp, device),
            move_to(arrays["step_weight_sums"], xp, device),
            batch_size=values["batch_size"], since_reassign=values["since_reassign"],
        )  # fmt: skip
        model.n_steps_ = values["n_steps"]
        model._rng = _rng_from_json(values["rng"])
    return model
