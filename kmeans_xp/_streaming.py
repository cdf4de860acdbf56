"""Host data read by a device in row blocks: a fit on a GPU of X larger than its memory.

``KMeans(device=...)`` computes on a device while X stays in host memory (a NumPy array or a
``numpy.memmap``). When X fits the device budget it is copied once; when it does not, the fit
sees a ``HostRows`` in its place: the algorithm reads X only in walks of row blocks
(``X[start:stop, :]``) and a few gathers (``take_rows``), so each block is copied to the device
when asked for, while the block after it is already being copied on a worker thread (double
buffering: two device buffers, one being read by the current pass, one being filled).

On a GPU the worker first copies the rows into a page-locked (pinned) host buffer of the slot,
so the host-to-device copy itself is asynchronous and can overlap the computation. Ordering
without host round trips: that copy runs on a side stream, and the compute stream waits on the
copy's event; before a device buffer is filled again, the side stream waits on an event the
compute stream recorded when the next block was asked for (by then every kernel that reads the
buffer is enqueued), and before a pinned buffer is refilled the worker waits for its last copy.
A block is therefore valid until the next block is asked for — which is how every walk in the
package uses it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType
from typing import Any

import numpy as np

from ._array_api import to_numpy

# Per row of X, the device state a fit keeps besides X, for the streaming budget: a Lloyd pass
# holds labels, partial distances and weights (12-16 bytes), the final labels are int64 (8),
# k-means++ holds ‖x‖², D² in float64 and the weights (16) — plus its trial distances while they
# take at most ``_init.TRIAL_DISTANCES_MAX_BYTES``, which this does not count.
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
    """

    is_host_rows = True  # how ``_array_api`` recognises it without importing this module

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
        """Finish any copy in flight and release the buffers and the worker thread."""
        if self._pending is not None:
            self._pending[3].result()
            self._pending = None
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
# releases the GIL): on the H200 machine a streamed iteration at 4 M x 64 -> 256 took 286 ms
# against 80 ms of GPU work, 35 of them the device copies (benchmarks.gpu_profile, 2026-11-27)
# — the rest mostly this host copy, on one thread.
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


class _HostCopier:
    """Namespaces on the host (NumPy, torch on the CPU): plain copies, nothing to order."""

    def __init__(self, xp: ModuleType, device: Any) -> None:
        self.xp, self.device = xp, device

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
    """GPUs: each slot's rows go first into a page-locked (pinned) host buffer, then to the
    device asynchronously on a side stream, ordered by events. Pinned memory lets the copy
    overlap the compute stream's work; it also never wraps the (maybe read-only) source."""

    def __init__(self, xp: ModuleType, device: Any) -> None:
        super().__init__(xp, device)
        self.staging: list[Any] = [None, None]
        self.copied: list[Any] = [None, None]  # the last copy out of each slot's staging

    def copy(self, slot: int, buffer: Any, source: np.ndarray, *, after: Any) -> Any:
        m = source.shape[0]
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

    def copy_async(self, buffer: Any, staging: np.ndarray, m: int, *, after: Any) -> Any:
        with self.cupy.cuda.Device(self.device_id):
            if after is not None:
                self.side.wait_event(after)
            buffer[:m].set(staging[:m], stream=self.side)
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

    def copy_async(self, buffer: Any, staging: Any, m: int, *, after: Any) -> Any:
        torch = self.torch
        with torch.cuda.stream(self.side):
            if after is not None:
                self.side.wait_event(after)
            buffer[:m].copy_(staging[:m], non_blocking=True)
            return self.side.record_event()

    def record(self) -> Any:
        return self.torch.cuda.current_stream(self.device).record_event()

    def wait(self, event: Any) -> None:
        self.torch.cuda.current_stream(self.device).wait_event(event)


def _copier_for(xp: ModuleType, device: Any) -> _HostCopier:
    from ._array_api import is_cupy, on_gpu

    if is_cupy(xp):
        return _CupyCopier(xp, device)
    if on_gpu(xp, device):
        return _TorchCudaCopier(xp, device)
    return _HostCopier(xp, device)
