"""Host data read by a device in row blocks: a fit on a GPU of X larger than its memory.

``KMeans(device=...)`` computes on a device while X stays in host memory (a NumPy array or a
``numpy.memmap``). When X fits the device budget it is copied once; when it does not, the fit
sees a ``HostRows`` in its place: the algorithm reads X only in walks of row blocks
(``X[start:stop, :]``) and a few gathers (``take_rows``), so each block is copied to the device
when asked for, while the block after it is already being copied on a worker thread (double
buffering: two device buffers, one being read by the current pass, one being filled).

On a GPU the host-to-device copy must come from page-locked (pinned) memory to be
asynchronous and overlap the computation. X in ordinary process memory (an in-RAM NumPy array)
is page-locked in place for the fit (``cudaHostRegister``; released at the end), so blocks are
copied straight from it; anything else (a memmap: its pages come from a file, and may exceed
RAM), or X the driver will not lock, is first copied by the worker into a pinned staging
buffer of the slot. Ordering without host round trips: the device copy runs on a side stream,
and the compute stream waits on the copy's event; before a device buffer is filled again, the
side stream waits on an event the compute stream recorded when the next block was asked for (by
then every kernel that reads the buffer is enqueued), and before a pinned staging buffer is
refilled the worker waits for its last copy. A block is therefore valid until the next block is
asked for — which is how every walk in the package uses it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType
from typing import Any

import numpy as np

from .._lib.compat import to_numpy
from .._lib.memmap import mapped_file
from .._lib.options import current_options

# Per row of X, the device state a fit keeps besides X, for the streaming budget: a Lloyd pass
# holds labels, partial distances and weights (12-16 bytes), the final labels are int64 (8),
# k-means++ holds ‖x‖², D² in float64 and the weights (16) — plus its trial distances while they
# take at most the ``trial_distances_max_bytes`` pass option, which this does not count.
STATE_BYTES_PER_ROW = 32


class HostRows:
    """The rows of a host array, served to namespace ``xp`` on ``device`` one block at a time.

    Parameters
    ----------
    host : numpy.ndarray of shape (n, d), float32 or float64 (a memmap is fine)
    xp : the device's array namespace
    device : the device
    block_rows : int
        The largest block a walk will ask for (the device buffers' size).

    Attributes
    ----------
    copy_mode : str
        How blocks reach the device: "registered" (from X page-locked in place), "staged"
        (through pinned staging buffers), or "host" (a host namespace: plain copies).
    bytes_copied : int
        Host-to-device traffic so far.
    """

    is_host_rows = True  # how ``_lib.compat`` recognises it without importing this module

    def __init__(self, host: np.ndarray, xp: ModuleType, device: Any, *, block_rows: int):
        self.host, self.xp, self.device = host, xp, device
        self.shape = tuple(host.shape)
        self.ndim = 2
        self.dtype = xp.float32 if host.dtype == np.float32 else xp.float64
        self.block_rows = int(block_rows)
        self.copier = _copier_for(xp, device)
        self._buffers = [None, None]
        self._next_buffer = 0
        self._pending: tuple[int, int, int, Future] | None = None
        self._walk_rows = self.block_rows  # the size of a walk's blocks, seen on its last read
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kmeans_xp-copy")
        self.bytes_copied = 0  # host -> device traffic, for tests and benchmarks
        self._lock = threading.Lock()
        # Page-lock X in place where it can be (on the worker thread: a refusal leaves the CUDA
        # runtime's per-thread last error there, away from the thread that launches kernels).
        self.copy_mode = self._pool.submit(self.copier.register, host).result()

    # ---- what the algorithm uses ------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        rows, columns = key if isinstance(key, tuple) else (key, slice(None))
        if not isinstance(rows, slice) or columns != slice(None):
            msg = "HostRows supports X[start:stop, :] only (row blocks)."
            raise TypeError(msg)
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            msg = "HostRows supports contiguous row blocks only."
            raise TypeError(msg)
        stop = max(start, stop)
        block = self._prefetched(start, stop)
        if block is None:
            block = self._copy_now(start, stop)
        self._prefetch_after(start, stop)
        return block

    def take(self, indices: Any) -> Any:
        """Rows at ``indices`` (an index array of any library), gathered on the host and copied."""
        rows = to_numpy(indices).astype(np.int64, copy=False)
        picked = np.ascontiguousarray(self.host[rows])
        self._count(picked.nbytes)
        return self.xp.asarray(picked, device=self.device)

    def close(self) -> None:
        """Finish any copy in flight and release the buffers, X's page lock and the worker."""
        if self._pending is not None:
            self._pending[3].result()
            self._pending = None
        self._pool.submit(self.copier.release).result()
        self._pool.shutdown(wait=True)
        self._buffers = [None, None]

    # ---- double buffering -----------------------------------------------------------------

    def _buffer(self, index: int, rows: int) -> Any:
        buffer = self._buffers[index]
        if buffer is None or buffer.shape[0] < rows:
            width = self.shape[1]
            buffer = self.copier.empty((max(rows, self.block_rows), width), self.dtype)
            self._buffers[index] = buffer
        return buffer

    def _fill(self, index: int, start: int, stop: int, released: Any) -> Any:
        """Copy host rows start:stop into buffer ``index`` (runs on the worker thread)."""
        buffer = self._buffers[index]
        source = np.ascontiguousarray(self.host[start:stop])
        event = self.copier.copy(index, buffer, source, after=released)
        self._count(source.nbytes)
        return event

    def _count(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_copied += nbytes

    def _copy_now(self, start: int, stop: int) -> Any:
        self._drain()
        index = self._next_buffer
        self._next_buffer = 1 - index
        buffer = self._buffer(index, stop - start)
        event = self._fill(index, start, stop, self.copier.record())
        self.copier.wait(event)
        return buffer[: stop - start]

    def _prefetched(self, start: int, stop: int) -> Any:
        if self._pending is None or self._pending[:2] != (start, stop):
            return None
        _, _, index, future = self._pending
        self._pending = None
        self.copier.wait(future.result())
        return self._buffers[index][: stop - start]

    def _drain(self) -> None:
        """Wait for (and drop) a prefetch that guessed the wrong block."""
        if self._pending is not None:
            self._pending[3].result()
            self._next_buffer = self._pending[2]
            self._pending = None

    def _prefetch_after(self, start: int, stop: int) -> None:
        """Start copying the block a sequential walk asks for next (the first after the last)."""
        n = self.shape[0]
        if stop < n:  # not the walk's last (possibly short) block
            self._walk_rows = max(1, stop - start)
        begin = stop if stop < n else 0
        end = min(n, begin + self._walk_rows)
        if end <= begin:
            return
        index = self._next_buffer
        self._next_buffer = 1 - index
        self._buffer(index, end - begin)
        # Recorded now, on the compute stream: every kernel that reads this buffer's previous
        # block was enqueued before the walk asked for the block just returned.
        released = self.copier.record()
        future = self._pool.submit(self._fill, index, begin, end, released)
        self._pending = (begin, end, index, future)


# ---- how each library copies host rows into a device buffer ----------------------------------

# The copy of host rows into a pinned staging buffer runs in chunks on this many threads (NumPy
# releases the GIL): on one thread this host copy, not the GPU's work or the device copy, is
# what a streamed iteration waits for.
STAGING_THREADS = min(8, os.cpu_count() or 1)
STAGING_CHUNK_BYTES = 16 * 2**20
_staging_pool: ThreadPoolExecutor | None = None
_staging_pool_lock = threading.Lock()


def copy_rows_in_parallel(target: np.ndarray, source: np.ndarray) -> None:
    """``np.copyto(target, source)`` for (m, d) arrays, in row chunks of about
    ``STAGING_CHUNK_BYTES`` on ``STAGING_THREADS`` threads (one chunk: this thread)."""
    global _staging_pool
    m = source.shape[0]
    row_bytes = max(1, source.itemsize * int(np.prod(source.shape[1:])))
    step = max(1, STAGING_CHUNK_BYTES // row_bytes)
    if m <= step or STAGING_THREADS <= 1:
        np.copyto(target, source)
        return
    with _staging_pool_lock:
        if _staging_pool is None:
            _staging_pool = ThreadPoolExecutor(
                STAGING_THREADS, thread_name_prefix="kmeans_xp-stage"
            )
    chunks = [(a, min(a + step, m)) for a in range(0, m, step)]
    for done in [_staging_pool.submit(np.copyto, target[a:b], source[a:b]) for a, b in chunks]:
        done.result()


def lockable_in_place(host: np.ndarray) -> bool:
    """Whether ``host`` is ordinary process memory a driver may page-lock where it is: C-ordered,
    writable, and not a file mapping (a memmap's pages come from disk and may exceed RAM)."""
    return host.flags.c_contiguous and host.flags.writeable and mapped_file(host) is None


class _HostCopier:
    """Namespaces on the host (NumPy, torch on the CPU): plain copies, nothing to order."""

    def __init__(self, xp: ModuleType, device: Any) -> None:
        self.xp, self.device = xp, device

    def register(self, host: np.ndarray) -> str:
        """Prepare to copy from ``host``; returns how blocks will be copied ("host" here)."""
        return "host"

    def release(self) -> None:
        return None

    def empty(self, shape: tuple[int, int], dtype: Any) -> Any:
        return self.xp.empty(shape, dtype=dtype, device=self.device)

    def copy(self, slot: int, buffer: Any, source: np.ndarray, *, after: Any) -> None:
        # Through NumPy's view of the buffer: no conversion of a read-only source (a memmap).
        np.copyto(to_numpy(buffer[: source.shape[0]]), source)

    def record(self) -> None:
        return None

    def wait(self, event: Any) -> None:
        return None


class _StagedCopier(_HostCopier):
    """GPUs: rows go to the device asynchronously on a side stream, ordered by events, from
    page-locked host memory (which lets the copy overlap the compute stream's work): X itself
    when ``register`` could lock it in place, else a pinned staging buffer per slot that the
    rows are first copied into (which never wraps the maybe read-only source)."""

    def __init__(self, xp: ModuleType, device: Any) -> None:
        super().__init__(xp, device)
        self.staging: list[Any] = [None, None]
        self.copied: list[Any] = [None, None]  # the last copy out of each slot
        self.locked: np.ndarray | None = None  # X, while page-locked in place

    def register(self, host: np.ndarray) -> str:
        """Page-lock ``host`` in place ("registered"), or, where it is not ordinary memory or the
        driver refuses (limits on locked memory, already registered), copy through pinned
        staging buffers ("staged")."""
        if not (current_options().register_host_memory and lockable_in_place(host)):
            return "staged"
        try:
            self.lock(host)
        except Exception:  # the driver's refusal: staging works for any memory
            return "staged"
        self.locked = host
        return "registered"

    def release(self) -> None:
        """Wait for the copies in flight; then unlock X (the copies read it until they end)."""
        for event in self.copied:
            if event is not None:
                event.synchronize()
        if self.locked is not None:
            self.unlock(self.locked)
            self.locked = None

    def copy(self, slot: int, buffer: Any, source: np.ndarray, *, after: Any) -> Any:
        m = source.shape[0]
        if self.locked is not None:  # source is a view of the locked X: straight to the device
            self.copied[slot] = self.copy_async(buffer, self.wrap(source), m, after=after)
            return self.copied[slot]
        if self.copied[slot] is not None:  # its previous copy must have left the staging
            self.copied[slot].synchronize()
        if self.staging[slot] is None or self.staging[slot].shape[0] < buffer.shape[0]:
            self.staging[slot] = self.pinned(buffer.shape, source.dtype)
        staging = self.staging[slot]
        copy_rows_in_parallel(self.host_view(staging)[:m], source)
        self.copied[slot] = self.copy_async(buffer, staging, m, after=after)
        return self.copied[slot]


class _CupyCopier(_StagedCopier):
    def __init__(self, xp: ModuleType, device: Any) -> None:
        import cupy
        import cupyx

        super().__init__(xp, device)
        self.cupy, self.cupyx = cupy, cupyx
        self.device_id = device.id if hasattr(device, "id") else int(device)
        with cupy.cuda.Device(self.device_id):
            self.side = cupy.cuda.Stream(non_blocking=True)

    def pinned(self, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
        return self.cupyx.empty_pinned(shape, dtype=dtype)

    def host_view(self, staging: np.ndarray) -> np.ndarray:
        return staging

    def wrap(self, rows: np.ndarray) -> np.ndarray:
        return rows

    def lock(self, host: np.ndarray) -> None:
        with self.cupy.cuda.Device(self.device_id):
            self.cupy.cuda.runtime.hostRegister(host.ctypes.data, host.nbytes, 0)

    def unlock(self, host: np.ndarray) -> None:
        with self.cupy.cuda.Device(self.device_id):
            self.cupy.cuda.runtime.hostUnregister(host.ctypes.data)

    def copy_async(self, buffer: Any, rows: np.ndarray, m: int, *, after: Any) -> Any:
        with self.cupy.cuda.Device(self.device_id):
            if after is not None:
                self.side.wait_event(after)
            buffer[:m].set(rows[:m], stream=self.side)
            return self.side.record()

    def record(self) -> Any:
        with self.cupy.cuda.Device(self.device_id):
            return self.cupy.cuda.get_current_stream().record()

    def wait(self, event: Any) -> None:
        with self.cupy.cuda.Device(self.device_id):
            self.cupy.cuda.get_current_stream().wait_event(event)


class _TorchCudaCopier(_StagedCopier):
    def __init__(self, xp: ModuleType, device: Any) -> None:
        import torch

        super().__init__(xp, device)
        self.torch = torch
        self.side = torch.cuda.Stream(device=device)

    def pinned(self, shape: tuple[int, int], dtype: np.dtype) -> Any:
        torch_dtype = self.torch.float32 if dtype == np.float32 else self.torch.float64
        return self.torch.empty(shape, dtype=torch_dtype, pin_memory=True)

    def host_view(self, staging: Any) -> np.ndarray:
        return staging.numpy()

    def wrap(self, rows: np.ndarray) -> Any:
        return self.torch.from_numpy(rows)

    def lock(self, host: np.ndarray) -> None:
        cudart = self.torch.cuda.cudart()
        with self.torch.cuda.device(self.device):
            status = cudart.cudaHostRegister(host.ctypes.data, host.nbytes, 0)
        if status != cudart.cudaError.success:
            msg = f"cudaHostRegister failed: {cudart.cudaGetErrorString(status)}"
            raise RuntimeError(msg)

    def unlock(self, host: np.ndarray) -> None:
        cudart = self.torch.cuda.cudart()
        with self.torch.cuda.device(self.device):
            cudart.cudaHostUnregister(host.ctypes.data)

    def copy_async(self, buffer: Any, rows: Any, m: int, *, after: Any) -> Any:
        torch = self.torch
        with torch.cuda.stream(self.side):
            if after is not None:
                self.side.wait_event(after)
            buffer[:m].copy_(rows[:m], non_blocking=True)
            return self.side.record_event()

    def record(self) -> Any:
        return self.torch.cuda.current_stream(self.device).record_event()

    def wait(self, event: Any) -> None:
        self.torch.cuda.current_stream(self.device).wait_event(event)


def _copier_for(xp: ModuleType, device: Any) -> _HostCopier:
    from .._lib.compat import is_cupy, on_gpu

    if is_cupy(xp):
        return _CupyCopier(xp, device)
    if on_gpu(xp, device):
        return _TorchCudaCopier(xp, device)
    return _HostCopier(xp, device)
