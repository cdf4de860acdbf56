"""Memory budgets: how many rows of X one block of a pass may hold, and the walk over blocks.

Every pass over X goes block by block so that no n x k temporary exists unless one block covers
all of X. The budget is a share of host memory (near the caches) or of free device memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

from .compat import free_device_memory
from .memmap import note_rows_read

# Host (CPU) working-memory budget for the temporaries of one block. Small enough for the
# block's distance matrix to stay near the caches, large enough that the GEMM runs at full speed
# (the block-size sweep behind this value is in benchmarks/RESULTS.md).
HOST_BLOCK_BYTES = 16 * 2**20


HOST_BLOCK_BYTES_MIN = 2**20


# On a GPU: a fraction of free device memory, within these bounds. ``block_row_bytes`` counts 32
# bytes per row and center, about 8 times what CuPy's pass holds (float32 products), so 8 GiB
# there means blocks of ~1 GiB of products; CuPy's Lloyd passes count their own bytes
# (``cupy_pass_row_bytes``), so 8 GiB is ~6 GiB of products. Few large blocks matter on a GPU:
# cuBLAS picks small tiles for short GEMMs, and each block costs a launch sequence.
DEVICE_BLOCK_FRACTION = 8


DEVICE_BLOCK_BYTES_MIN = 64 * 2**20


DEVICE_BLOCK_BYTES_MAX = 8 * 2**30


def block_rows_for(
    n_samples: int,
    n_features: int,
    n_clusters: int,
    itemsize: int,
    *,
    xp: ModuleType,
    device: Any,
    max_block_bytes: int | None = None,
    row_bytes: int | None = None,
) -> int:
    """Number of rows per block so that one block's temporaries fit the memory budget.

    Per row a block holds about four k-wide rows (distances, their intermediates and the one-hot
    matrix of the standard-only update) and two d-wide rows (the centered block and its
    float64 copy in the update): ``block_row_bytes``, unless ``row_bytes`` says what the
    caller's own kernels hold (``cupy_pass_row_bytes``).
    """
    if max_block_bytes is None:
        max_block_bytes = device_block_bytes(xp, device)
        if max_block_bytes is None:
            data_bytes = n_samples * n_features * itemsize
            max_block_bytes = min(HOST_BLOCK_BYTES, host_workspace_bytes(data_bytes))
    if row_bytes is None:
        row_bytes = block_row_bytes(n_features, n_clusters)
    return int(max(1, min(n_samples, max_block_bytes // row_bytes)))


def host_workspace_bytes(data_bytes: int) -> int:
    """The most a pass over X of ``data_bytes`` may hold in temporaries on the host, all its
    threads' blocks together: a quarter of X (at least ``HOST_BLOCK_BYTES_MIN``). Small data get
    small blocks, so the workspace stays a fraction of X: at 100k x 32 -> 64 (X 12 MiB) a quarter
    of X costs 2% per iteration against 16 MiB. NumPy's threaded passes give each thread a
    block's buffers, so they run on fewer threads where the cores' buffers together would pass
    this (``_backends.numpy._split_blocks``)."""
    return max(data_bytes // 4, HOST_BLOCK_BYTES_MIN)


def device_block_bytes(xp: ModuleType, device: Any) -> int | None:
    """A block's memory budget on a GPU: a fraction of free device memory, within bounds
    (``DEVICE_BLOCK_FRACTION``, ``DEVICE_BLOCK_BYTES_MIN``/``MAX``); None for host memory."""
    free = free_device_memory(xp, device)
    if free is None:
        return None
    return min(max(free // DEVICE_BLOCK_FRACTION, DEVICE_BLOCK_BYTES_MIN), DEVICE_BLOCK_BYTES_MAX)


def block_row_bytes(n_features: int, width: int) -> int:
    """The temporaries of one row of a block, as ``block_rows_for`` counts them: four
    ``width``-wide rows and two d-wide rows of 8 bytes."""
    return 8 * (4 * width + 2 * n_features) + 16


def cupy_pass_row_bytes(n_features: int, n_clusters: int, itemsize: int) -> int:
    """What one row of a block holds in CuPy's Lloyd pass (``_backends.cupy``) and in the
    final labels-and-inertia pass, whichever holds more: the k products in X's dtype, the
    centered row, its split copy for "tf32x3" (3d), the row, its center and their squared
    difference in float64 (3d doubles), and labels, partials and sort order (32 bytes).
    ``block_row_bytes`` counts 8 bytes per product for the standard-only pass's temporaries:
    for CuPy that would make blocks 4-8 times smaller than its memory budget allows, and a
    pass over a large X thousands of small launches."""
    return itemsize * (n_clusters + 4 * n_features) + 24 * n_features + 32


def row_blocks(n_samples: int, block_rows: int) -> Iterator[tuple[int, int]]:
    """Yield (start, stop) of consecutive row blocks covering ``range(n_samples)``.

    Each block is reported to ``_lib.memmap`` once the caller asks for the next, so a fit on a
    ``numpy.memmap`` keeps its resident pages bounded (a no-op otherwise).
    """
    for start in range(0, n_samples, block_rows):
        stop = min(start + block_rows, n_samples)
        yield start, stop
        note_rows_read(stop - start)
