"""PyTorch CPU tensors: ``index_add_`` sums, and NumPy's passes on the tensors' own memory.

A CPU tensor of float32 or float64 and a NumPy array can share memory (``Tensor.numpy()``,
``torch.from_numpy``), so NumPy's own passes serve CPU tensors without a copy in large fits,
whose engines (``lloyd``, ``hamerly``, ``kmeans_plusplus_indices``) hold torch's threads to one
meanwhile (``_backends.host_threads_held``). Results come back as tensors over NumPy's arrays
(labels int32, as NumPy's passes write them).
"""

from __future__ import annotations

import contextlib
import threading
import types
from collections.abc import Callable, Iterator
from types import ModuleType

import torch

from .._core.nearest_two import standard_nearest_two
from .._core.seeding import standard_candidate_potentials
from .._lib.compat import accumulation_dtype, get_namespace


def segment_sum(
    X_block: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    n_clusters: int,
    *,
    xp: ModuleType,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``primitives.segment_sum`` by ``Tensor.index_add_`` into float64 accumulators (tensors
    on any device)."""
    acc = accumulation_dtype(xp, X_block.device)
    d = X_block.shape[1]
    sums = torch.zeros((n_clusters, d), dtype=acc, device=X_block.device)
    counts = torch.zeros((n_clusters,), dtype=acc, device=X_block.device)
    w = weights.to(acc)
    sums.index_add_(0, labels, X_block.to(acc) * w[:, None])
    counts.index_add_(0, labels, w)
    return sums, counts


# Per thread: how deeply its fits hold torch's threads, and the count to give back. torch's
# intra-op thread count is a per-thread setting, so each thread restores its own.
_held = threading.local()


@contextlib.contextmanager
def threads_held_to_one() -> Iterator[None]:
    """torch's intra-op threads held to one for a fit on CPU tensors in this thread (re-entrant;
    restored when the outermost exits). They spin for a while after each torch operation, and
    beside the threads of NumPy's passes and BLAS on the same cores that cost more than they
    save (about twice the iteration time; benchmarks/RESULTS.md, "torch CPU tensors on NumPy's
    passes"), much as scikit-learn limits BLAS's threads during a fit. The count is torch's
    setting for the calling thread: fits in other threads hold and restore their own. It
    changes once per fit, not around each pass, which cost more than it saved."""
    depth = getattr(_held, "depth", 0)
    if depth == 0:
        _held.threads = torch.get_num_threads()
        if _held.threads > 1:
            torch.set_num_threads(1)
    _held.depth = depth + 1
    try:
        yield
    finally:
        _held.depth -= 1
        if _held.depth == 0 and _held.threads > 1:
            torch.set_num_threads(_held.threads)


def _numpy_views_apply(X: torch.Tensor) -> bool:
    """Whether NumPy's versions run on tensor ``X``: float32/float64 on the CPU, within a fit's
    engine holding torch's threads (``_backends.host_threads_held``: large fits only; below
    that size torch's own threads on the standard passes are faster)."""
    held = getattr(_held, "depth", 0) > 0
    return held and X.device.type == "cpu" and X.dtype in (torch.float32, torch.float64)


def _view(tensor: torch.Tensor | None):
    """The ndarray over a CPU tensor's memory (gradients are not tracked by a fit)."""
    return None if tensor is None else tensor.detach().numpy()


def _numpy_namespace() -> ModuleType:
    import numpy as np

    return get_namespace(np.empty(0))


def cpu_assign_and_sum(
    X: torch.Tensor,
    centers: torch.Tensor,
    weights: torch.Tensor,
    offset: torch.Tensor | None,
    segment_sum: Callable,
    *,
    block_rows: int,
    xp: ModuleType,
    standard: Callable,
    out=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``passes.standard_assign_and_sum`` for CPU tensors: NumPy's pass (``numpy.assign_and_sum``)
    on the tensors' memory, or ``standard`` where it does not apply. ``out``'s labels and partials
    (a previous pass's results) are overwritten in place, as NumPy's pass does."""
    if not _numpy_views_apply(X):
        return standard(
            X, centers, weights, offset, segment_sum, block_rows=block_rows, xp=xp, out=out
        )
    from . import numpy as _numpy

    views = None
    if out is not None:
        views = types.SimpleNamespace(labels=_view(out.labels), partial=_view(out.partial))
    results = _numpy.assign_and_sum(
        _view(X),
        _view(centers),
        _view(weights),
        _view(offset),
        _numpy.segment_sum,
        block_rows=block_rows,
        xp=_numpy_namespace(),
        out=views,
    )
    if out is not None:
        out.n_changed = views.n_changed
    return tuple(torch.from_numpy(a) for a in results)


def cpu_nearest_two(
    X: torch.Tensor,
    rows: torch.Tensor | None,
    centers: torch.Tensor,
    centers_acc: torch.Tensor,
    offset: torch.Tensor,
    *,
    block_rows: int,
    xp: ModuleType,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``hamerly._nearest_two`` for tensors: NumPy's on CPU tensors' memory, else the standard
    version."""
    if not _numpy_views_apply(X):
        return standard_nearest_two(
            X, rows, centers, centers_acc, offset, block_rows=block_rows, xp=xp
        )
    from . import numpy as _numpy

    results = _numpy.nearest_two(
        _view(X),
        _view(rows),
        _view(centers),
        _view(centers_acc),
        _view(offset),
        block_rows=block_rows,
        xp=_numpy_namespace(),
    )
    return tuple(torch.from_numpy(a) for a in results)


def cpu_candidate_potentials(
    X: torch.Tensor,
    offset: torch.Tensor,
    x_sq: torch.Tensor,
    candidates: torch.Tensor,
    closest: torch.Tensor,
    weights: torch.Tensor,
    trial_sq: torch.Tensor | None,
    *,
    block_rows: int,
    centered_blocks: list[torch.Tensor] | None,
    xp: ModuleType,
) -> torch.Tensor:
    """``seeding.standard_candidate_potentials`` for tensors: NumPy's on CPU tensors' memory
    (``trial_sq`` written in place), else the standard version."""
    if not _numpy_views_apply(X):
        return standard_candidate_potentials(
            X,
            offset,
            x_sq,
            candidates,
            closest,
            weights,
            trial_sq,
            block_rows=block_rows,
            centered_blocks=centered_blocks,
            xp=xp,
        )
    from . import numpy as _numpy

    potential = _numpy.candidate_potentials(
        _view(X),
        _view(offset),
        _view(x_sq),
        _view(candidates),
        _view(closest),
        _view(weights),
        _view(trial_sq),
        block_rows=block_rows,
        centered_blocks=None,
        xp=_numpy_namespace(),
    )
    return torch.from_numpy(potential)


def cpu_labels_and_inertia(
    X: torch.Tensor,
    centers: torch.Tensor,
    centered: torch.Tensor,
    weights: torch.Tensor | None,
    offset: torch.Tensor,
    *,
    block_rows: int,
    xp: ModuleType,
    standard: Callable,
) -> tuple[torch.Tensor, float | None]:
    """``passes.standard_labels_and_inertia`` for tensors: NumPy's (``numpy.labels_and_inertia``)
    on CPU tensors' memory, else ``standard``."""
    if not _numpy_views_apply(X):
        return standard(X, centers, centered, weights, offset, block_rows=block_rows, xp=xp)
    from . import numpy as _numpy

    labels, inertia = _numpy.labels_and_inertia(
        _view(X),
        _view(centers),
        _view(centered),
        _view(weights),
        _view(offset),
        block_rows=block_rows,
        xp=_numpy_namespace(),
    )
    return torch.from_numpy(labels), inertia


def cpu_distances_to_centers(
    X: torch.Tensor,
    centers: torch.Tensor,
    *,
    offset: torch.Tensor,
    block_rows: int,
    xp: ModuleType,
    standard: Callable,
) -> torch.Tensor:
    """``lloyd.distances_to_centers`` for tensors: NumPy's on CPU tensors' memory, else
    ``standard``."""
    if not _numpy_views_apply(X):
        return standard(X, centers, offset=offset, block_rows=block_rows, xp=xp)
    from . import numpy as _numpy

    distances = _numpy.distances_to_centers(
        _view(X),
        _view(centers),
        offset=_view(offset),
        block_rows=block_rows,
        xp=_numpy_namespace(),
    )
    return torch.from_numpy(distances)
