"""Bounded resident memory while a fit reads a ``numpy.memmap``.

Pages of a file mapping that a fit has read stay in the process's resident set (they count in
its RSS) until the kernel needs the memory, so a pass over a memmap larger than RAM would push
the process's RSS up to all the memory there is. While ``bounded_residency(X)`` is active, every
row-block walk reports the rows it read (``note_rows_read``), rows gathered by index come
through ``gather_rows`` (in chunks, each reported), and each time about ``RELEASE_EVERY_BYTES``
of X have been read the whole mapping is released with ``madvise(MADV_DONTNEED)``. That is
safe for a read-only file mapping: a page read again is faulted back in from the page cache or
the file. X itself is never copied.

One fit at a time per process uses this (a module-level hook; nested or concurrent fits on
memmaps share it harmlessly: a release only costs re-reads).
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np

from .compat import take_rows

# Bytes of X read between two releases: large enough that the syscall is free next to the reads,
# small enough to keep the resident set a small fraction of RAM.
RELEASE_EVERY_BYTES = 256 * 2**20
# A fault on a file mapping also maps the cached pages around it (Linux "fault-around", 64 KiB
# by default), so a gathered row costs about this much resident memory, however short it is.
FAULT_AROUND_BYTES = 64 * 2**10


class _Residency:
    def __init__(self, mapping: mmap.mmap, row_bytes: int) -> None:
        self.mapping = mapping
        self.row_bytes = row_bytes
        self.read = 0
        self.lock = threading.Lock()

    def note(self, n_rows: int, row_bytes: int | None = None) -> None:
        with self.lock:
            self.read += n_rows * (self.row_bytes if row_bytes is None else row_bytes)
            if self.read < RELEASE_EVERY_BYTES:
                return
            self.read = 0
        self.release()

    def release(self) -> None:
        # A closed mapping, or a kernel that refuses: only memory is at stake, never results.
        with suppress(OSError, ValueError):
            self.mapping.madvise(mmap.MADV_DONTNEED)


_active: _Residency | None = None


def note_rows_read(n_rows: int) -> None:
    """Called by the row-block walks: ``n_rows`` rows (of X or of a smaller array) were read."""
    residency = _active
    if residency is not None:
        residency.note(n_rows)


def gather_rows(X: Any, indices: Any, xp: Any) -> Any:
    """``take_rows(X, indices, xp)`` for a fit reading X. While a memmap's pages are bounded,
    the rows are gathered in chunks whose pages (each row's fault-around) come to about
    ``RELEASE_EVERY_BYTES``, each reported before the next is read: one gather of many scattered
    rows would otherwise map ~64 KiB a row at once (k-means|| gathers its candidates so: in
    the tests 178 of them, up to 11 MB, past what a 1 MiB release interval allows)."""
    residency = _active
    if residency is None:
        return take_rows(X, indices, xp)
    row_pages = max(residency.row_bytes, FAULT_AROUND_BYTES)
    step = max(1, RELEASE_EVERY_BYTES // row_pages)
    m = int(indices.shape[0])
    parts = []
    for start in range(0, m, step):
        stop = min(m, start + step)
        parts.append(take_rows(X, indices[start:stop], xp))
        residency.note(stop - start, row_pages)
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def mapped_file(X: Any) -> mmap.mmap | None:
    """The file mapping under array X (a ``numpy.memmap`` or a view of one), or None."""
    base = X
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def _mapping_of(X: Any) -> mmap.mmap | None:
    if not isinstance(X, np.ndarray) or not hasattr(mmap, "MADV_DONTNEED"):
        return None
    return mapped_file(X)


@contextmanager
def bounded_residency(X: Any) -> Iterator[None]:
    """Release X's mapped pages as a fit reads them, when X is a view of a file mapping."""
    global _active
    mapping = _mapping_of(X)
    if mapping is None or _active is not None:
        yield
        return
    residency = _Residency(mapping, int(X.strides[0]) if X.ndim else X.itemsize)
    _active = residency
    try:
        yield
    finally:
        _active = None
        residency.release()
