"""PyTorch versions of the primitives (CPU and CUDA tensors)."""

from __future__ import annotations

import contextlib
import functools
import threading
import types
from collections.abc import Callable, Iterator
from types import ModuleType

import torch

from .._core.certified import TENSOR_CORE_PRECISIONS, CertifiedAssign
from .._lib.compat import accumulation_dtype, get_namespace


def segment_sum(
    X_block: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    n_clusters: int,
    *,
    xp: ModuleType,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``_primitives.segment_sum`` for tensors: on CUDA, CuPy's kernels through DLPack where
    CuPy is installed (no contended atomics); otherwise ``index_add_``."""
    if X_block.is_cuda:
        backend = _cupy_backend()
        if backend is not None:
            return _cupy_segment_sum(backend, X_block, labels, weights, n_clusters, xp=xp)
    return index_add_segment_sum(X_block, labels, weights, n_clusters, xp=xp)


def index_add_segment_sum(
    X_block: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    n_clusters: int,
    *,
    xp: ModuleType,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``_primitives.segment_sum`` by ``Tensor.index_add_`` into float64 accumulators."""
    acc = accumulation_dtype(xp, X_block.device)
    d = X_block.shape[1]
    sums = torch.zeros((n_clusters, d), dtype=acc, device=X_block.device)
    counts = torch.zeros((n_clusters,), dtype=acc, device=X_block.device)
    w = weights.to(acc)
    sums.index_add_(0, labels, X_block.to(acc) * w[:, None])
    counts.index_add_(0, labels, w)
    return sums, counts


# ---- CPU tensors: NumPy's passes on the tensors' own memory -------------------------------------
#
# A CPU tensor of float32 or float64 and a NumPy array can share memory (``Tensor.numpy()``,
# ``torch.from_numpy``), so NumPy's own passes serve CPU tensors without a copy in large fits,
# whose engines (``_lloyd.lloyd``, ``_hamerly.hamerly``, ``_init.kmeans_plusplus_indices``) hold
# torch's threads to one meanwhile (``_backends.host_threads_held``). Results come back as
# tensors over NumPy's arrays (labels int32, as NumPy's passes write them).


_held_lock = threading.Lock()
_held_depth = 0
_held_threads = 1


@contextlib.contextmanager
def threads_held_to_one() -> Iterator[None]:
    """torch's intra-op threads held to one for a fit on CPU tensors (re-entrant; restored when
    the outermost exits). They spin for a while after each torch operation, and beside the
    threads of NumPy's passes and BLAS on the same cores that cost more than they save:
    measured on the 2-core CI machine, a Lloyd iteration through NumPy's passes took 27.8 ms at
    100 000 × 32 → 64 and 336 ms at 200 000 × 128 → 1024 with torch's two threads, 12.9 and
    154 ms with one (the standard pass before: 14.9 and 274). Like scikit-learn's own BLAS limit
    during a fit, the setting is the process's: other threads' torch operations run on one
    thread meanwhile. Holding it around each pass instead cost more (115 ms an iteration at
    100 000 × 32 → 64): the setting changes once per fit (benchmarks/RESULTS.md, "torch CPU
    tensors on NumPy's passes")."""
    global _held_depth, _held_threads
    with _held_lock:
        if _held_depth == 0:
            _held_threads = torch.get_num_threads()
            if _held_threads > 1:
                torch.set_num_threads(1)
        _held_depth += 1
    try:
        yield
    finally:
        with _held_lock:
            _held_depth -= 1
            if _held_depth == 0 and _held_threads > 1:
                torch.set_num_threads(_held_threads)


def _numpy_views_apply(X: torch.Tensor) -> bool:
    """Whether NumPy's versions run on tensor ``X``: float32/float64 on the CPU, within a fit's
    engine holding torch's threads (``_backends.host_threads_held``: large fits only; at
    100 000 × 32 → 64 a default fit took 0.45 s through NumPy's passes against 0.30 s on the
    standard ones with torch's threads)."""
    return _held_depth > 0 and X.device.type == "cpu" and X.dtype in (torch.float32, torch.float64)


def _view(tensor: torch.Tensor | None):
    """The ndarray over a CPU tensor's memory (gradients are not tracked by a fit)."""
    return None if tensor is None else tensor.detach().numpy()


def _numpy_namespace() -> ModuleType:
    import numpy as np

    return get_namespace(np.empty(0))


def cpu_assign_and_sum(
    X: torch.Tensor, centers: torch.Tensor, weights: torch.Tensor, offset: torch.Tensor | None,
    segment_sum: Callable, *, block_rows: int, xp: ModuleType, standard: Callable, out=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """``_lloyd._assign_and_sum`` for CPU tensors: NumPy's pass (``_numpy.assign_and_sum``) on
    the tensors' memory, or ``standard`` where it does not apply. ``out``'s labels and partials
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
        _view(X), _view(centers), _view(weights), _view(offset), _numpy.segment_sum,
        block_rows=block_rows, xp=_numpy_namespace(), out=views,
    )  # fmt: skip
    if out is not None:
        out.n_changed = views.n_changed
    return tuple(torch.from_numpy(a) for a in results)


def cpu_nearest_two(
    X: torch.Tensor, rows: torch.Tensor | None, centers: torch.Tensor, centers_acc: torch.Tensor,
    offset: torch.Tensor, *, block_rows: int, xp: ModuleType,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """``_hamerly._nearest_two`` for tensors: NumPy's on CPU tensors' memory, else the standard
    version."""
    if not _numpy_views_apply(X):
        from .._algorithms.hamerly import _standard_nearest_two

        return _standard_nearest_two(
            X, rows, centers, centers_acc, offset, block_rows=block_rows, xp=xp
        )
    from . import numpy as _numpy

    results = _numpy.nearest_two(
        _view(X), _view(rows), _view(centers), _view(centers_acc), _view(offset),
        block_rows=block_rows, xp=_numpy_namespace(),
    )  # fmt: skip
    return tuple(torch.from_numpy(a) for a in results)


def cpu_candidate_potentials(
    X: torch.Tensor, offset: torch.Tensor, x_sq: torch.Tensor, candidates: torch.Tensor,
    closest: torch.Tensor, weights: torch.Tensor, trial_sq: torch.Tensor | None, *,
    block_rows: int, centered_blocks: list[torch.Tensor] | None, xp: ModuleType,
) -> torch.Tensor:  # fmt: skip
    """``_init._standard_candidate_potentials`` for tensors: NumPy's on CPU tensors' memory
    (``trial_sq`` written in place), else the standard version."""
    if not _numpy_views_apply(X):
        from .._algorithms.init import _standard_candidate_potentials

        return _standard_candidate_potentials(
            X, offset, x_sq, candidates, closest, weights, trial_sq,
            block_rows=block_rows, centered_blocks=centered_blocks, xp=xp,
        )  # fmt: skip
    from . import numpy as _numpy

    potential = _numpy.candidate_potentials(
        _view(X), _view(offset), _view(x_sq), _view(candidates), _view(closest),
        _view(weights), _view(trial_sq), block_rows=block_rows, centered_blocks=None,
        xp=_numpy_namespace(),
    )  # fmt: skip
    return torch.from_numpy(potential)


def cpu_labels_and_inertia(
    X: torch.Tensor, centers: torch.Tensor, centered: torch.Tensor,
    weights: torch.Tensor | None, offset: torch.Tensor, *, block_rows: int, xp: ModuleType,
    standard: Callable,
) -> tuple[torch.Tensor, float | None]:  # fmt: skip
    """``_lloyd._labels_and_inertia_pass`` for tensors: NumPy's (``_numpy.labels_and_inertia``)
    on CPU tensors' memory, else ``standard``."""
    if not _numpy_views_apply(X):
        return standard(X, centers, centered, weights, offset, block_rows=block_rows, xp=xp)
    from . import numpy as _numpy

    labels, inertia = _numpy.labels_and_inertia(
        _view(X), _view(centers), _view(centered), _view(weights), _view(offset),
        block_rows=block_rows, xp=_numpy_namespace(),
    )  # fmt: skip
    return torch.from_numpy(labels), inertia


def cpu_distances_to_centers(
    X: torch.Tensor, centers: torch.Tensor, *, offset: torch.Tensor, block_rows: int,
    xp: ModuleType, standard: Callable,
) -> torch.Tensor:  # fmt: skip
    """``_lloyd.distances_to_centers`` for tensors: NumPy's on CPU tensors' memory, else
    ``standard``."""
    if not _numpy_views_apply(X):
        return standard(X, centers, offset=offset, block_rows=block_rows, xp=xp)
    from . import numpy as _numpy

    distances = _numpy.distances_to_centers(
        _view(X), _view(centers), offset=_view(offset), block_rows=block_rows,
        xp=_numpy_namespace(),
    )  # fmt: skip
    return torch.from_numpy(distances)


# ---- CUDA tensors: the certified assignment ----------------------------------------------------


@functools.cache
def _cupy_backend() -> ModuleType | None:
    """``_backends._cupy`` when CuPy imports and sees a GPU (its kernels then serve torch CUDA
    tensors through DLPack, without copies), else None."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() == 0:
            return None
        from . import cupy as _cupy
    except Exception:  # not installed, no driver, no device
        return None
    return _cupy


@contextlib.contextmanager
def _on_torch_stream(tensor: torch.Tensor) -> Iterator[None]:
    """Run CuPy's work on torch's current stream of the tensor's device, so the two libraries'
    kernels stay ordered without synchronising."""
    import cupy

    stream = torch.cuda.current_stream(tensor.device)
    if hasattr(cupy.cuda.Stream, "from_external") and hasattr(stream, "__cuda_stream__"):
        on_stream = cupy.cuda.Stream.from_external(stream)  # CuPy 14: the CUDA stream protocol
    else:  # older CuPy or torch
        on_stream = cupy.cuda.ExternalStream(stream.cuda_stream)
    with cupy.cuda.Device(tensor.device.index), on_stream:
        yield


def _matmul_with(precision: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``A @ B`` with torch's float32 matmul precision set for this product only ("highest":
    float32 products; "high", and "tf32x3" whose operands come split: TF32 allowed), whatever
    the global setting is."""
    torch_precision = "high" if precision in TENSOR_CORE_PRECISIONS else "highest"

    def matmul(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        previous = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision(torch_precision)
        try:
            return A @ B
        finally:
            torch.set_float32_matmul_precision(previous)

    return matmul


def best_two(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``_certified.standard_best_two`` by one ``torch.topk``: labels, best and second-best
    scores per row. On an exact tie the label may be either index; the certificate flags such
    rows (their gap is 0) and rescores them, so the final label is the float64 argmin's."""
    values, indices = torch.topk(scores, 2, dim=1, largest=False, sorted=True)
    return indices[:, 0], values[:, 0], values[:, 1]


class CudaCertifiedAssign:
    """The certified assignment for torch CUDA tensors: CuPy's fused kernels through DLPack
    where CuPy is installed, else the standard-only version with torch's own matmul."""

    def __init__(self, centers: torch.Tensor, *, xp: ModuleType, precision: str = "highest"):
        self.cupy_backend = _cupy_backend()
        if self.cupy_backend is None:
            self.impl = CertifiedAssign(
                centers, xp=xp, precision=precision, matmul=_matmul_with(precision),
                best_two=best_two,
            )  # fmt: skip
            return
        import cupy

        with _on_torch_stream(centers):
            centers_cupy = cupy.from_dlpack(centers)
            self.impl = self.cupy_backend.CertifiedAssign(
                centers_cupy, xp=get_namespace(centers_cupy), precision=precision
            )

    def __call__(self, X_block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cupy_backend is None:
            return self.impl(X_block)
        import cupy

        with _on_torch_stream(X_block):
            labels, partial = self.impl(cupy.from_dlpack(X_block.contiguous()))
            return torch.from_dlpack(labels), torch.from_dlpack(partial)


def _cupy_segment_sum(backend, X_block, labels, weights, n_clusters, *, xp):
    import cupy

    with _on_torch_stream(X_block):
        sums, counts = backend.segment_sum(
            cupy.from_dlpack(X_block.contiguous()),
            cupy.from_dlpack(labels.contiguous()),
            cupy.from_dlpack(weights.contiguous()),
            n_clusters,
            xp=xp,
        )
        return torch.from_dlpack(sums), torch.from_dlpack(counts)


def cuda_assign_and_sum(
    X: torch.Tensor,
    centers: torch.Tensor,
    weights: torch.Tensor,
    offset: torch.Tensor,
    segment_sum: Callable,
    *,
    block_rows: int,
    xp: ModuleType,
    out=None,
    standard: Callable,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``_lloyd._assign_and_sum`` for CUDA tensors: CuPy's fused small-k·d pass through DLPack
    (no copies; labels and partials written into ``out``'s tensors in place) where CuPy is
    installed and the shape takes it; otherwise ``standard``."""
    from . import fused_pass_takes

    backend = _cupy_backend()
    n_clusters, n_features = centers.shape
    if backend is None or not fused_pass_takes(X, n_clusters, xp=xp):
        return standard(
            X, centers, weights, offset, segment_sum, block_rows=block_rows, xp=xp, out=out
        )
    import cupy

    from .._algorithms.lloyd import PassBuffers

    if offset is None:  # X was centered once for the whole fit
        offset = torch.zeros(n_features, dtype=X.dtype, device=X.device)
    with _on_torch_stream(X):
        X_cupy = cupy.from_dlpack(X)
        buffers = None
        if out is not None:
            buffers = PassBuffers(cupy.from_dlpack(out.labels), cupy.from_dlpack(out.partial))
        labels, partial, sums, counts = backend.assign_and_sum(
            X_cupy, cupy.from_dlpack(centers.contiguous()),
            cupy.from_dlpack(weights.contiguous()), cupy.from_dlpack(offset.contiguous()),
            backend.segment_sum, block_rows=block_rows, xp=get_namespace(X_cupy), out=buffers,
            standard=None,
        )  # fmt: skip
        if out is not None:
            # A torch scalar on the device (int64, where CuPy counted in uint64), so the fit
            # reads it in one transfer with its other torch scalars.
            out.n_changed = torch.from_dlpack(buffers.n_changed.astype(cupy.int64))
            return out.labels, out.partial, torch.from_dlpack(sums), torch.from_dlpack(counts)
        return tuple(torch.from_dlpack(a) for a in (labels, partial, sums, counts))


def cuda_kmeans_plusplus_indices(
    X: torch.Tensor,
    n_clusters: int,
    weights: torch.Tensor,
    rng,
    *,
    offset: torch.Tensor,
    n_local_trials: int,
    xp: ModuleType,
) -> torch.Tensor | None:
    """CuPy's k-means++ kernels (``_cupy.kmeans_plusplus_indices``) for CUDA tensors, through
    DLPack; None (nothing drawn) without CuPy, for CPU tensors, or where CuPy's declines."""
    backend = _cupy_backend()
    if backend is None or not X.is_cuda:
        return None
    import cupy

    with _on_torch_stream(X):
        X_cupy = cupy.from_dlpack(X.detach())
        picked = backend.kmeans_plusplus_indices(
            X_cupy, n_clusters, cupy.from_dlpack(weights.contiguous()), rng,
            offset=cupy.from_dlpack(offset.contiguous()), n_local_trials=n_local_trials,
            xp=get_namespace(X_cupy),
        )  # fmt: skip
        return None if picked is None else torch.from_dlpack(picked)
