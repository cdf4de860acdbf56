"""Data preparation for a fit: X and the weights validated once, the block size from the memory
budget, the centering offset, and, with ``device=``, host X copied to a GPU or streamed to it
in blocks when it does not fit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._backends import pass_runs_cupy_kernels
from .._core.passes import column_mean_and_variance
from .._lib.budget import block_row_bytes, block_rows_for, cupy_pass_row_bytes
from .._lib.compat import (
    Array,
    free_device_memory,
    is_host_rows,
    itemsize,
    library_name,
    move_to,
    resolve_device,
)
from .._lib.validation import check_data, check_integer, check_sample_weight, check_values
from .data import PreparedData
from .init import init_state_bytes
from .lloyd import lloyd
from .streaming import STATE_BYTES_PER_ROW, HostRows


def prepare_data(
    X: Any,
    n_clusters: int,
    sample_weight: Any,
    *,
    device: Any = None,
    max_device_bytes: Any = None,
    init: Any = None,
) -> PreparedData:
    """X and ``sample_weight`` checked (``n_samples >= n_clusters``), and, with ``device``,
    moved there (``init`` sizes what seeding keeps on the device)."""
    X, xp, x_device = check_data(X, "X")
    n_samples, n_features = X.shape
    if n_samples < n_clusters:
        msg = f"n_samples={n_samples} should be >= n_clusters={n_clusters}."
        raise ValueError(msg)
    block_rows = block_rows_for(
        n_samples, n_features, n_clusters, itemsize(X, xp), xp=xp, device=x_device
    )
    x_largest = check_values(X, "X", xp=xp, block_rows=block_rows)
    weights = check_sample_weight(
        sample_weight, X, xp=xp, device=x_device, block_rows=block_rows, x_largest=x_largest
    )
    source = X
    if device is not None:
        X, xp, x_device, weights, block_rows = _onto_device(
            X, weights, n_clusters, device=device, max_device_bytes=max_device_bytes, init=init
        )
    mean, mean_variance = column_mean_and_variance(X, xp=xp, block_rows=block_rows)
    offset = xp.astype(mean, X.dtype)
    return PreparedData(X, xp, x_device, weights, block_rows, offset, mean_variance, source)


def device_state_bytes(n_samples: int, n_clusters: int, x_itemsize: int, init: Any) -> int:
    """What a fit keeps on its device besides X (or two blocks of X) and a pass's temporaries:
    a Lloyd pass's per-row arrays, or, while ``init`` runs, the weights and the init's own
    state (``init.init_state_bytes``), whichever is larger."""
    lloyd = n_samples * STATE_BYTES_PER_ROW
    seeding = n_samples * x_itemsize + init_state_bytes(init, n_samples, n_clusters, x_itemsize)
    return max(lloyd, seeding)


def _onto_device(
    X: Array, weights: Array, n_clusters: int, *, device: Any, max_device_bytes: Any, init: Any
) -> tuple[Array, Any, Any, Array, int]:
    """Host X (validated) for a fit on ``device``: copied whole when it fits the device budget
    with the pass's working memory, else streamed in row blocks (``streaming.HostRows``).

    The budget is ``max_device_bytes``, or the device's free memory. It holds the fit's state
    (a Lloyd pass's per-row arrays, or ``init``'s while it runs, whichever is larger), and X or
    two blocks of it with a pass's temporaries. Returns X as the fit sees it, the device's
    namespace and device, the weights there, and the rows per block.
    """
    if library_name(X) != "numpy":
        msg = (
            f"device={device!r} fits host data on a device, but X is a {library_name(X)} array; "
            "pass X as a NumPy array (or memmap), or leave device=None to compute where X is."
        )
        raise TypeError(msg)
    if max_device_bytes is not None:
        max_device_bytes = check_integer(max_device_bytes, "max_device_bytes", minimum=1)
    xp, target = resolve_device(device)
    n_samples, n_features = X.shape
    size = X.dtype.itemsize  # X is on the host (NumPy): its own itemsize, whatever xp is
    budget = max_device_bytes if max_device_bytes is not None else free_device_memory(xp, target)
    state = device_state_bytes(n_samples, n_clusters, size, init)
    block_rows = block_rows_for(n_samples, n_features, n_clusters, size, xp=xp, device=target)
    pass_row_bytes = block_row_bytes(n_features, n_clusters)
    if budget is None or X.nbytes + state + block_rows * pass_row_bytes <= budget:
        X_device = xp.asarray(X, device=target)  # fits: one copy
    else:
        rows = (budget - state) // (pass_row_bytes + 2 * n_features * size)
        if rows < 1:
            msg = (
                f"max_device_bytes={budget} is too small to stream X: the fit keeps {state} "
                f"bytes of state on the device for {n_samples} rows (init={init!r}) plus at "
                "least one block."
            )
            raise ValueError(msg)
        block_rows = int(min(block_rows, rows))
        X_device = HostRows(X, xp, target, block_rows=block_rows)
    return X_device, xp, target, move_to(weights, xp, target), block_rows


def pass_block_rows(prep: PreparedData, n_clusters: int, iterate: Callable) -> int:
    """Rows per block for the Lloyd passes and the final labels: where CuPy's kernels run them
    (CuPy, or torch CUDA with CuPy; X on the device) as many as free device memory allows by
    what those kernels hold (``cupy_pass_row_bytes``); elsewhere, and for Hamerly's passes,
    ``prep.block_rows``."""
    xp = prep.xp
    if iterate is not lloyd or is_host_rows(prep.X) or not pass_runs_cupy_kernels(xp, prep.device):
        return prep.block_rows
    n_samples, n_features = prep.X.shape
    size = itemsize(prep.X, xp)
    return block_rows_for(
        n_samples,
        n_features,
        n_clusters,
        size,
        xp=xp,
        device=prep.device,
        row_bytes=cupy_pass_row_bytes(n_features, n_clusters, size),
    )
