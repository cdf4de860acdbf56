"""Test fixtures: the ``xp`` fixture runs a test on every installed array backend.

Backends: numpy, array_api_strict, torch on the CPU, and cupy / torch on CUDA where a GPU answers.
A missing library or GPU skips the test; it never fails it.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from kmeans_xp._lib.compat import get_namespace, to_numpy
from kmeans_xp._lib.options import pass_options


@dataclass(frozen=True)
class Backend:
    """An array library on one device, and how to move NumPy test data onto it and back."""

    name: str
    module: Any  # the library as users import it (numpy, cupy, torch, array_api_strict)
    device: Any

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        a = np.asarray(a)
        if dtype is not None:
            a = a.astype(dtype)
        if self.name == "numpy":
            return a
        if self.name.startswith("torch"):
            return self.module.asarray(a, device=self.device)
        if self.name == "cupy":
            return self.module.asarray(a)
        return self.module.asarray(a)

    @property
    def xp(self) -> Any:
        """The array-API-compatible namespace kmeans_xp uses for this backend."""
        return get_namespace(self.asarray(np.zeros(1)))

    def to_numpy(self, a: Any) -> np.ndarray:
        return to_numpy(a)

    def __str__(self) -> str:
        return self.name


def _gpu_count(name: str) -> int:
    try:
        if name == "cupy":
            cupy = importlib.import_module("cupy")
            return int(cupy.cuda.runtime.getDeviceCount())
        torch = importlib.import_module("torch")
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # no driver, no library: no GPU
        return 0


def _backend(name: str) -> Backend:
    """Import a backend, or skip the test that needs it."""
    if name == "numpy":
        return Backend("numpy", np, "cpu")
    if name == "array_api_strict":
        return Backend(name, pytest.importorskip("array_api_strict"), None)
    if name == "torch":
        torch = pytest.importorskip("torch")
        return Backend(name, torch, torch.device("cpu"))
    if name == "torch_cuda":
        torch = pytest.importorskip("torch")
        if _gpu_count("torch") == 0:
            pytest.skip("torch: no CUDA device")
        return Backend(name, torch, torch.device("cuda"))
    if name == "cupy":
        cupy = pytest.importorskip("cupy")
        if _gpu_count("cupy") == 0:
            pytest.skip("cupy: no CUDA device")
        return Backend(name, cupy, cupy.cuda.Device(0))
    raise ValueError(name)


BACKENDS = ["numpy", "array_api_strict", "torch", "cupy", "torch_cuda"]


@pytest.fixture(params=BACKENDS)
def xp(request) -> Backend:
    """Every installed backend, one at a time (skipped where missing)."""
    return _backend(request.param)


@pytest.fixture
def backend_named():
    """Get a specific backend by name inside a test (skips if missing)."""
    return _backend


@pytest.fixture
def host_reads(monkeypatch):
    """A list that grows by one at every device-to-host read of an array-api-strict array
    (bool/int/float/index of it, or a copy to NumPy or through DLPack): array-api-strict's
    arrays say when they are read, so a test can count the host syncs a GPU would make."""
    xps = pytest.importorskip("array_api_strict")
    array_type = type(xps.asarray([1.0]))
    reads: list[int] = []
    for method in ("__bool__", "__float__", "__int__", "__index__", "__array__", "__dlpack__"):
        original = getattr(array_type, method)

        def counted(self, *args, _original=original, **kwargs):
            reads.append(1)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(array_type, method, counted)
    return reads


@pytest.fixture
def use_options():
    """``use_options(small_pass=False, ...)``: these pass options for the rest of the test
    (``kmeans_xp._lib.options.pass_options``, entered now and left at the test's end)."""
    with contextlib.ExitStack() as stack:
        yield lambda **changes: stack.enter_context(pass_options(**changes))
