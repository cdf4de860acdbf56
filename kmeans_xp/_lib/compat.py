"""The one door to array-api-compat, and everything that knows a library's name.

The algorithm modules ask this module for a namespace, a device, the dtype policy and ways to move
arrays between the host and a device; they never import array_api_compat or a library themselves.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "BACKENDS",
    "accumulation_dtype",
    "array_device",
    "as_supported_array",
    "default_float",
    "free_device_memory",
    "get_namespace",
    "is_cupy",
    "is_host_rows",
    "is_numpy",
    "is_supported_array",
    "is_torch",
    "library_name",
    "move_to",
    "on_gpu",
    "out_of_memory_errors",
    "release_cached_memory",
    "resolve_device",
    "take_rows",
    "to_backend",
    "to_numpy",
]

Array = Any  # an array of any supported library; the standard has no static type for it


def is_host_rows(x: Any) -> bool:
    """Whether ``x`` is a ``streaming.HostRows`` (host data a device reads in row blocks)."""
    return getattr(x, "is_host_rows", False)


def is_c_contiguous(x: Array) -> bool:
    """Whether an array's rows are contiguous in C order (CuPy/NumPy flags, torch's
    ``is_contiguous``); False where the library does not say."""
    flags = getattr(x, "flags", None)
    if flags is not None:
        return bool(flags["C_CONTIGUOUS"])
    is_contiguous = getattr(x, "is_contiguous", None)
    return bool(is_contiguous()) if callable(is_contiguous) else False


def array_device(x: Array) -> Any:
    """The device an array lives on (for ``HostRows``: the device that reads it)."""
    if is_host_rows(x):
        return x.device
    return array_api_compat.device(x)


def take_rows(X: Array, indices: Array, xp: ModuleType) -> Array:
    """``xp.take(X, indices, axis=0)``, also for ``HostRows`` (gathered on the host, copied)."""
    if is_host_rows(X):
        return X.take(indices)
    return xp.take(X, indices, axis=0)


def get_namespace(*arrays: Array) -> ModuleType:
    """Return the array-API-compatible namespace shared by ``arrays``.

    Raises
    ------
    TypeError
        If the arrays come from different libraries.
    """
    return array_api_compat.array_namespace(*arrays)


def is_numpy(xp: ModuleType) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def is_cupy(xp: ModuleType) -> bool:
    return array_api_compat.is_cupy_namespace(xp)


def is_torch(xp: ModuleType) -> bool:
    return array_api_compat.is_torch_namespace(xp)


def library_name(x: Array) -> str:
    """Short name of the library an array belongs to, for messages and cache keys."""
    if is_host_rows(x):
        return "numpy"
    if array_api_compat.is_numpy_array(x):
        return "numpy"
    if array_api_compat.is_cupy_array(x):
        return "cupy"
    if array_api_compat.is_torch_array(x):
        return "torch"
    if array_api_compat.is_dask_array(x):
        return "dask"
    if array_api_compat.is_jax_array(x):
        return "jax"
    module = type(x).__module__.split(".")[0]
    return module


def is_supported_array(x: Any) -> bool:
    return (
        array_api_compat.is_numpy_array(x)
        or array_api_compat.is_cupy_array(x)
        or array_api_compat.is_torch_array(x)
        or (
            array_api_compat.is_array_api_obj(x)
            and type(x).__module__.startswith("array_api_strict")
        )
    )


def as_supported_array(x: Any, name: str) -> Array:
    """Return ``x`` itself if it is a NumPy, CuPy, PyTorch or array-api-strict array.

    A torch tensor that records autograd comes back detached (``Tensor.detach``: the same
    memory, no copy), so results never require grad. K-Means' argmin has no useful gradient, and
    recording the passes kept every iteration's temporaries alive: before this was done, a
    100-iteration fit of a 12.8 MB CPU tensor (200 000 × 16 → 32) took 7.7 GB more memory and
    5× the time of the same fit on the detached tensor.

    Anything else (lists, pandas objects, JAX arrays, ...) is converted with ``numpy.asarray``, as
    scikit-learn does; ``np.matrix`` and masked arrays with nothing masked become plain arrays.
    Refused with a TypeError: Dask arrays and DataFrames, rather than silently computed into memory
    (the estimator's fit and predict take them through ``_algorithms.dask``); sparse matrices;
    masked arrays with masked values.
    """
    _refuse_sparse(x, name)
    if isinstance(x, np.ma.MaskedArray):
        if np.ma.getmask(x) is not np.ma.nomask and x.mask.any():
            msg = (
                f"{name} is a NumPy masked array with {int(np.count_nonzero(x.mask))} masked "
                f"value(s); K-Means has no notion of missing values: fill them "
                f"({name}.filled(value)) or drop their rows first."
            )
            raise TypeError(msg)
        return np.asarray(x)  # nothing masked: the values as a plain array
    if isinstance(x, np.matrix):
        return np.asarray(x)  # the same values; np.matrix's operators would change the algebra
    if is_supported_array(x):
        if array_api_compat.is_torch_array(x) and x.requires_grad:
            return x.detach()
        return x
    if array_api_compat.is_dask_array(x) or type(x).__module__.startswith(("dask.", "dask_expr")):
        msg = (
            f"{name} is a dask {'array' if array_api_compat.is_dask_array(x) else 'collection'}; "
            f"dask arrays and DataFrames are taken by KMeans's fit, predict, transform and "
            f"score only (compute it first for anything else)."
        )
        raise TypeError(msg)
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as exc:
        msg = f"{name} could not be converted to an array: {exc}"
        raise ValueError(msg) from exc


def _refuse_sparse(x: Any, name: str) -> None:
    """TypeError for sparse matrices (SciPy's, CuPy's, torch's sparse layouts): K-Means here
    works on dense rows, and densifying silently could take far more memory than the caller
    expects."""
    module = type(x).__module__
    torch_sparse = array_api_compat.is_torch_array(x) and x.layout != _torch_module().strided
    if torch_sparse or module.startswith(("scipy.sparse", "cupyx.scipy.sparse")):
        densify = f"{name}.to_dense()" if torch_sparse else f"{name}.toarray()"
        msg = (
            f"{name} is a sparse {type(x).__name__} ({module}); kmeans_xp clusters dense "
            f"arrays: pass {densify} if it fits in memory."
        )
        raise TypeError(msg)


def to_numpy(x: Array) -> np.ndarray:
    """Copy an array of any supported library to a NumPy array on the host."""
    if array_api_compat.is_numpy_array(x):
        return x
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    return np.from_dlpack(x)


def move_to(x: Array, xp: ModuleType, device: Any) -> Array:
    """Return ``x`` as an array of namespace ``xp`` on ``device`` (a no-op when it already is).

    The copy goes through the host when the libraries differ; callers use this for small arrays
    (centers, weights), never for X.
    """
    if get_namespace(x) is xp and array_device(x) == device:
        return x
    if array_api_compat.is_numpy_array(x) or not is_supported_array(x):
        return xp.asarray(np.asarray(x), device=device)
    if get_namespace(x) is xp:
        return array_api_compat.to_device(x, device)
    return xp.asarray(to_numpy(x), device=device)


def default_float(xp: ModuleType, device: Any) -> Any:
    """The namespace's default real floating dtype (float64 in NumPy, torch's default dtype)."""
    return xp.__array_namespace_info__().default_dtypes(device=device)["real floating"]


def accumulation_dtype(xp: ModuleType, device: Any) -> Any:
    """float64 where the device has it (sums and inertia), else the widest float it has."""
    try:
        available = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    except (AttributeError, TypeError):  # pragma: no cover - namespaces without inspection
        return xp.float64
    return available.get("float64", available.get("float32"))


def itemsize(X: Array, xp: ModuleType) -> int:
    """Bytes per element of a float32 or float64 array (for memory budgets)."""
    return 4 if X.dtype == xp.float32 else 8


def on_gpu(xp: ModuleType, device: Any) -> bool:
    """Whether arrays of ``xp`` on ``device`` live on a GPU (CuPy, or torch on CUDA)."""
    return is_cupy(xp) or (is_torch(xp) and getattr(device, "type", "cpu") == "cuda")


def free_device_memory(xp: ModuleType, device: Any) -> int | None:
    """Free bytes on a GPU device, or None for host memory (where a fixed budget is used)."""
    if is_cupy(xp):
        import cupy

        with cupy.cuda.Device(device.id if hasattr(device, "id") else device):
            free, _ = cupy.cuda.runtime.memGetInfo()
            pool = cupy.get_default_memory_pool()  # its statistics are the current device's
            # Memory cached by CuPy's pool is reusable by us too; a limit set on the pool
            # (``set_limit``, ``CUPY_GPU_MEMORY_LIMIT``) caps what it may still hand out.
            available = int(free) + int(pool.free_bytes())
            limit = int(pool.get_limit())
            if limit:
                available = min(available, max(0, limit - int(pool.used_bytes())))
            return available
    if is_torch(xp) and getattr(device, "type", "cpu") == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        reserved_unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free) + int(reserved_unused)
    return None


# --------------------------------------------------------------------------------------------
# Choosing a library by name (the command line's --backend)
# --------------------------------------------------------------------------------------------

BACKENDS = ("auto", "numpy", "cupy", "torch")


def _cupy_gpu() -> Any:
    """The cupy module if it imports and sees a GPU, else None."""
    try:
        import cupy

        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:  # not installed, no driver, no device
        return None


def _torch_module() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def to_backend(X: np.ndarray, backend: str) -> tuple[Array, str]:
    """Move host data to the library named ``backend``; return it and a description.

    ``"auto"`` picks a GPU when one is usable (CuPy first, then PyTorch CUDA) and NumPy
    otherwise. ``"torch"`` uses CUDA when available, else the CPU. ``"cupy"`` needs a GPU.
    """
    if backend not in BACKENDS:
        msg = f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}."
        raise ValueError(msg)
    if backend in ("auto", "cupy"):
        cupy = _cupy_gpu()
        if cupy is not None:
            return cupy.asarray(X), "cupy (CUDA device 0)"
        if backend == "cupy":
            msg = "backend 'cupy' needs CuPy and a usable CUDA GPU; none was found."
            raise ValueError(msg)
    if backend in ("auto", "torch"):
        torch = _torch_module()
        if torch is not None and torch.cuda.is_available():
            return torch.asarray(X, device="cuda"), "torch (cuda:0)"
        if backend == "torch":
            if torch is None:
                msg = "backend 'torch' needs PyTorch, which is not installed."
                raise ValueError(msg)
            return torch.asarray(X), "torch (cpu)"
    return X, "numpy (cpu)"


def out_of_memory_errors(xp: ModuleType) -> tuple[type[BaseException], ...]:
    """The exceptions by which ``xp`` says an allocation failed (to retry with less memory).

    NumPy and CuPy raise subclasses of ``MemoryError``; PyTorch raises its own
    ``OutOfMemoryError`` (a ``RuntimeError``) for CUDA allocations.
    """
    errors: tuple[type[BaseException], ...] = (MemoryError,)
    if is_torch(xp):
        import torch

        errors += (torch.OutOfMemoryError,)
    return errors


def release_cached_memory(xp: ModuleType, device: Any) -> None:
    """Give a GPU library's cached, unused blocks back to the device (before a retry)."""
    if is_cupy(xp):
        import cupy

        cupy.get_default_memory_pool().free_all_blocks()
    elif on_gpu(xp, device):
        import torch

        torch.cuda.empty_cache()


def resolve_device(device: Any) -> tuple[ModuleType, Any]:
    """The namespace and device a fit computes on, from ``KMeans(device=...)``.

    ``"cuda"`` / ``"cuda:N"``: CuPy on GPU N when CuPy sees a GPU, else PyTorch CUDA. A
    ``torch.device``: PyTorch on that device. A ``cupy.cuda.Device``: CuPy on it. ``"cpu"``:
    NumPy.
    """
    module = type(device).__module__
    if module.startswith("cupy"):
        import cupy

        with cupy.cuda.Device(device.id):
            return get_namespace(cupy.empty(0)), device
    torch = _torch_module() if module.startswith("torch") or isinstance(device, str) else None
    if torch is not None and isinstance(device, torch.device):
        if device.type == "cuda" and not torch.cuda.is_available():
            msg = f"device={device!r}: PyTorch sees no CUDA device."
            raise ValueError(msg)
        return get_namespace(torch.empty(0, device="cpu")), device
    if isinstance(device, str):
        name, _, index = device.partition(":")
        if name == "cpu" and not index:
            return get_namespace(np.empty(0)), "cpu"
        if name == "cuda" and (not index or index.isdigit()):
            number = int(index or 0)
            cupy = _cupy_gpu()
            if cupy is not None and number < cupy.cuda.runtime.getDeviceCount():
                with cupy.cuda.Device(number):
                    return get_namespace(cupy.empty(0)), cupy.cuda.Device(number)
            if torch is not None and number < torch.cuda.device_count():
                return get_namespace(torch.empty(0)), torch.device("cuda", number)
            msg = f"device={device!r}: no usable CUDA device was found (CuPy or PyTorch)."
            raise ValueError(msg)
    msg = (
        "device must be None, 'cpu', 'cuda', 'cuda:N', a torch.device or a cupy.cuda.Device; "
        f"got device={device!r}."
    )
    raise ValueError(msg)
