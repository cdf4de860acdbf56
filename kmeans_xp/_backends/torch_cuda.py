"""PyTorch CUDA tensors: the certified assignment in torch, and CuPy's kernels through DLPack
(no copies) where CuPy is installed."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from types import ModuleType

import torch

from .._core.certified import TENSOR_CORE_PRECISIONS, CertifiedAssign
from .._core.primitives import PassBuffers
from .._lib.compat import get_namespace
from . import torch_cpu
from .cuda_launch import fused_pass_takes


def segment_sum(
    X_block: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    n_clusters: int,
    *,
    xp: ModuleType,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``primitives.segment_sum`` for CUDA tensors: CuPy's kernels through DLPack where CuPy is
    installed (no contended atomics), else ``index_add_``."""
    backend = _cupy_backend()
    if backend is None:
        return torch_cpu.segment_sum(X_block, labels, weights, n_clusters, xp=xp)
    return _cupy_segment_sum(backend, X_block, labels, weights, n_clusters, xp=xp)


@functools.cache
def _cupy_backend() -> ModuleType | None:
    """``_backends.cupy`` when CuPy imports and sees a GPU (its kernels then serve torch CUDA
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
    """``certified.standard_best_two`` by one ``torch.topk``: labels, best and second-best
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
                centers,
                xp=xp,
                precision=precision,
                matmul=_matmul_with(precision),
                best_two=best_two,
            )
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
    """``passes.standard_assign_and_sum`` for CUDA tensors: CuPy's fused small-k·d pass through
    DLPack (no copies; labels and partials written into ``out``'s tensors in place) where CuPy is
    installed and the shape takes it; otherwise ``standard``."""
    backend = _cupy_backend()
    n_clusters, n_features = centers.shape
    if backend is None or not fused_pass_takes(X, n_clusters, xp=xp):
        return standard(
            X, centers, weights, offset, segment_sum, block_rows=block_rows, xp=xp, out=out
        )
    import cupy

    if offset is None:  # X was centered once for the whole fit
        offset = torch.zeros(n_features, dtype=X.dtype, device=X.device)
    with _on_torch_stream(X):
        X_cupy = cupy.from_dlpack(X)
        buffers = None
        if out is not None:
            buffers = PassBuffers(cupy.from_dlpack(out.labels), cupy.from_dlpack(out.partial))
        labels, partial, sums, counts = backend.assign_and_sum(
            X_cupy,
            cupy.from_dlpack(centers.contiguous()),
            cupy.from_dlpack(weights.contiguous()),
            cupy.from_dlpack(offset.contiguous()),
            backend.segment_sum,
            block_rows=block_rows,
            xp=get_namespace(X_cupy),
            out=buffers,
            standard=None,
        )
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
    """CuPy's k-means++ kernels (``cupy.kmeans_plusplus_indices``) for CUDA tensors, through
    DLPack; None (nothing drawn) without CuPy, for CPU tensors, or where CuPy's declines."""
    backend = _cupy_backend()
    if backend is None or not X.is_cuda:
        return None
    import cupy

    with _on_torch_stream(X):
        X_cupy = cupy.from_dlpack(X.detach())
        picked = backend.kmeans_plusplus_indices(
            X_cupy,
            n_clusters,
            cupy.from_dlpack(weights.contiguous()),
            rng,
            offset=cupy.from_dlpack(offset.contiguous()),
            n_local_trials=n_local_trials,
            xp=get_namespace(X_cupy),
        )
        return None if picked is None else torch.from_dlpack(picked)
