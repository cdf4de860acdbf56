"""An estimator's fitted state as a model file's JSON metadata and arrays, and the writer.

The estimators build their state (``_model_state``) and restore it (``_restore_model_state``)
through these codecs; ``_tools.model_files`` reads and checks files and never writes them. A
file is an ``.npz`` of arrays plus JSON metadata, never a pickle, with a SHA-256 digest over
both so that a file changed after saving is refused on load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import numbers
import os
import tempfile
from typing import Any

import numpy as np

from .._lib.compat import as_supported_array, to_numpy

FORMAT_NAME = "kmeans_xp.KMeans"


MINIBATCH_FORMAT_NAME = "kmeans_xp.MiniBatchKMeans"  # a KMeans file's fields, and partial_fit's


FORMAT_VERSION = 1


# Always present; "init" when init is an array. A MiniBatchKMeans file adds its step state
# (MINIBATCH_ARRAYS), and holds labels only when the model has them (compute_labels).
BASE_ARRAYS = ("cluster_centers", "labels", "offset")


MINIBATCH_ARRAYS = ("step_centers", "step_weight_sums")


def digest(arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    h.update(json.dumps(metadata, sort_keys=True).encode())
    return h.hexdigest()


def jsonable_params(model: Any) -> tuple[dict[str, Any], np.ndarray | None]:
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
    return {name: json_param(name, value) for name, value in params.items()}, init_array


def json_param(name: str, value: Any) -> Any:
    """A parameter as a JSON value: NumPy scalars as Python ones, a device by its library and
    name (``device_from_json`` undoes it)."""
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


def device_from_json(value: Any) -> Any:
    """The ``device`` parameter back from ``json_param``'s form: a torch.device or
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


def write_model_file(
    path: str | os.PathLike, metadata: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    """Write ``arrays`` and ``metadata`` (with its SHA-256 digest added) to ``path``, atomically.

    The file is written to a temporary file in the target's folder, flushed to disk, then
    renamed over ``path``: a save interrupted at any point (an exception, a killed process, a
    full disk) leaves the previous file at ``path`` as it was. A symlink at ``path`` is replaced
    by the new file; its target is not written.
    """
    metadata = {**metadata, "sha256": digest(arrays, metadata)}
    target = os.path.abspath(os.fspath(path))
    descriptor, temporary = tempfile.mkstemp(
        prefix=".kmeans_xp-", suffix=".tmp", dir=os.path.dirname(target)
    )
    try:
        with os.fdopen(descriptor, "wb") as f:
            np.savez(f, metadata=np.asarray(json.dumps(metadata, sort_keys=True)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, _new_file_mode())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(os.path.dirname(target))


def _new_file_mode() -> int:
    """The permissions ``open(path, "w")`` would give a new file (``mkstemp`` makes it 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _sync_folder(folder: str) -> None:
    """Flush the rename to disk where the platform lets a folder be opened (POSIX)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def rng_to_json(rng: Any) -> dict[str, Any]:
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


def rng_from_json(value: Any) -> Any:
    """``rng_to_json`` undone; ValueError (or TypeError, KeyError) where it is not such a
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
