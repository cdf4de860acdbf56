"""CUDA kernels run on the CPU: the CuPy backend's own kernel source, compiled by g++ against
``cuda_emulator.hpp`` (one OS thread per CUDA thread), called like a ``cupy.RawKernel``.

The GPU tests run these kernels where a CUDA device answers; this runs the same source, with
NumPy arrays for device arrays, on every machine with a C++20 compiler, so a kernel's indexing,
reductions and synchronisation are tested before a GPU ever sees them. What it does not show:
speed, FMA contraction (results may differ from a GPU's in the last bits), and memory-model
races that a real GPU would expose.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

_HEADER = Path(__file__).with_name("cuda_emulator.hpp")

_CTYPES = {
    np.dtype(np.int32): ctypes.c_int32,
    np.dtype(np.int64): ctypes.c_int64,
    np.dtype(np.uint64): ctypes.c_uint64,
    np.dtype(np.float32): ctypes.c_float,
    np.dtype(np.float64): ctypes.c_double,
}


def compiler() -> str | None:
    """The C++ compiler the emulator uses, or None (the tests that need it then skip)."""
    return shutil.which("g++")


class EmulatedKernel:
    """One ``extern "C" __global__`` function, called as CuPy calls a RawKernel:
    ``kernel((grid,), (threads,), args, shared_mem=bytes)`` with NumPy arrays for pointers and
    NumPy scalars for the other parameters (their dtype says the C type, as in CuPy)."""

    def __init__(self, function: ctypes._CFuncPtr, name: str):
        self.function = function
        self.name = name

    def __call__(self, grid: tuple, block: tuple, args: tuple, shared_mem: int = 0) -> None:
        if len(grid) != 1 or len(block) != 1:
            raise ValueError(f"only 1-D launches are emulated; got grid={grid}, block={block}")
        values = []
        for arg in args:
            if isinstance(arg, np.ndarray):
                if not (arg.flags.c_contiguous or arg.size <= 1):
                    raise ValueError(f"{self.name}: arrays passed to kernels must be contiguous")
                values.append(ctypes.c_void_p(arg.ctypes.data))
            elif isinstance(arg, np.generic):
                values.append(_CTYPES[arg.dtype](arg.item()))
            else:
                raise TypeError(f"{self.name}: pass NumPy arrays and scalars, got {type(arg)}")
        pointers = (ctypes.c_void_p * max(1, len(values)))(
            *[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values]
        )
        status = self.function(int(grid[0]), int(block[0]), int(shared_mem), pointers)
        if status:
            raise ValueError(f"{self.name}: launch refused (threads or shared memory too large)")


class EmulatedModule:
    """``cupy.RawModule``'s ``get_function`` for a CUDA source whose kernels are ``names``."""

    def __init__(self, source: str, names: tuple[str, ...]):
        exports = "\n".join(f"EMULATOR_EXPORT({name})" for name in names)
        text = f'#include "{_HEADER}"\n{source}\n{exports}\n'
        digest = hashlib.sha256((text + _HEADER.read_text()).encode()).hexdigest()[:16]
        build_dir = Path(tempfile.gettempdir()) / "kmeans_xp_cuda_emulator"
        build_dir.mkdir(parents=True, exist_ok=True)
        library = build_dir / f"kernels-{digest}.so"
        if not library.exists():
            cpp = build_dir / f"kernels-{digest}.cpp"
            cpp.write_text(text)
            partial = library.with_suffix(f".{id(self)}.tmp")
            command = [
                compiler() or "g++", "-std=c++20", "-O1", "-pthread", "-shared", "-fPIC",
                "-ffp-contract=off", "-o", str(partial), str(cpp),
            ]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                raise AssertionError(f"g++ could not compile the kernels:\n{result.stderr}")
            partial.replace(library)  # atomic: parallel test processes may build it too
        self.library = ctypes.CDLL(str(library))
        self.names = names

    def get_function(self, name: str) -> EmulatedKernel:
        if name not in self.names:
            raise KeyError(name)
        function = getattr(self.library, f"emulate_{name}")
        function.restype = ctypes.c_int
        function.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_size_t, ctypes.c_void_p]
        return EmulatedKernel(function, name)
