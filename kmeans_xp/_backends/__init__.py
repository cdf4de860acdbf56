"""Library-specific fast versions of the primitives, chosen by namespace in one place.

On a GPU (CuPy, or torch CUDA tensors) the assignment is also *certified*: labels are those of
a float64 argmin (``_core.certified``), with a fused CuPy kernel where CuPy is installed.

Each module here implements ``segment_sum`` with the same signature and results as
``kmeans_xp._core.primitives.segment_sum`` (tested equal on random data); NumPy and CuPy also have
their own version of the whole assign-and-sum pass of a Lloyd iteration
(``passes.standard_assign_and_sum``; CuPy's fuses it into one kernel at small k·d), CuPy of
k-means++ (``init.kmeans_plusplus_indices``), both serving torch CUDA tensors through DLPack, and
NumPy of Hamerly's nearest-two search (``hamerly._nearest_two``), of k-means++'s pass per center and
of the labels-and-inertia and distance passes behind ``predict``, ``score`` and ``transform``;
NumPy's serve torch CPU tensors in large passes (``host_threads_held``). A library without a module
here uses the standard-only versions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

from .._core import primitives as _primitives
from .._core.primitives import AssignFactory
from .._lib.compat import (
    Array,
    array_device,
    is_cupy,
    is_host_rows,
    is_numpy,
    is_torch,
    itemsize,
    on_gpu,
    out_of_memory_errors,
    release_cached_memory,
)
from .cuda_launch import fused_pass_takes


def host_threads_held(engine: Callable) -> Callable:
    """Decorate a fit's engine ``engine(X, centers or n_clusters, ..., xp=...)``: on torch CPU
    tensors with n·k at least NumPy's threads threshold, torch's own threads are held to one
    while it runs (``torch_cpu.threads_held_to_one``), and NumPy's passes then serve the tensors
    (see ``torch_cpu.cpu_assign_and_sum``); elsewhere it runs as it is."""

    @functools.wraps(engine)
    def run(X: Array, centers: Any, *args: Any, xp: ModuleType, **kwargs: Any) -> Any:
        if is_torch(xp) and not is_host_rows(X) and not on_gpu(xp, X.device):
            from . import numpy as _numpy
            from . import torch_cpu

            n_clusters = centers if isinstance(centers, int) else centers.shape[0]
            if X.shape[0] * n_clusters >= _numpy.MIN_SCORES_FOR_THREADS:
                with torch_cpu.threads_held_to_one():
                    return engine(X, centers, *args, xp=xp, **kwargs)
        return engine(X, centers, *args, xp=xp, **kwargs)

    return run


def segment_sum_for(xp: ModuleType) -> Callable:
    """The fastest ``segment_sum`` available for namespace ``xp``."""
    # Imported lazily so that a CPU install never imports CuPy or torch.
    if is_numpy(xp):
        from . import numpy as _numpy

        return _numpy.segment_sum
    if is_torch(xp):
        return _torch_segment_sum
    if is_cupy(xp):
        from . import cupy as _cupy

        return _cupy.segment_sum
    return _primitives.segment_sum


def _torch_segment_sum(X_block: Array, *args: Any, **kwargs: Any) -> tuple[Array, Array]:
    """``segment_sum`` for tensors, by the device of the block."""
    if X_block.is_cuda:
        from . import torch_cuda

        return torch_cuda.segment_sum(X_block, *args, **kwargs)
    from . import torch_cpu

    return torch_cpu.segment_sum(X_block, *args, **kwargs)


def assign_and_sum_for(
    xp: ModuleType, device: Any, standard: Callable, precision: str = "highest"
) -> Callable | None:
    """A library's own version of ``passes.standard_assign_and_sum``, or None to use ``standard``
    (the standard pass with the device's assignment), which CuPy's (and torch CUDA's, through it)
    also falls back on for shapes its fused kernel does not take (and CuPy's where its tensor-core
    assignment takes ``precision``)."""
    if is_numpy(xp):
        from . import numpy as _numpy

        return _numpy.assign_and_sum
    if is_cupy(xp):
        from . import cupy as _cupy

        return partial(_cupy.assign_and_sum, standard=standard, precision=precision)
    if is_torch(xp) and on_gpu(xp, device):
        from . import torch_cuda

        return partial(torch_cuda.cuda_assign_and_sum, standard=standard)
    if is_torch(xp):
        from . import torch_cpu

        return partial(torch_cpu.cpu_assign_and_sum, standard=standard)
    return None


def kmeans_plusplus_for(xp: ModuleType) -> Callable | None:
    """A library's own ``init.kmeans_plusplus_indices`` (CuPy's fused kernels, also for torch
    CUDA tensors), or None. It returns None itself for inputs it does not take (torch CPU
    tensors among them), and the standard version runs."""
    if is_cupy(xp):
        from . import cupy as _cupy

        return _cupy.kmeans_plusplus_indices
    if is_torch(xp):
        from . import torch_cuda

        return torch_cuda.cuda_kmeans_plusplus_indices
    return None


# "auto" takes split-TF32 products ("tf32x3") from this many centers up. Splitting X costs a
# pass that reads it and writes it three times over, whatever k is, while the tensor-core
# products save time in proportion to k: the two break even near k ~ 200 on HBM-class memory
# (derived from the GEMM floors in benchmarks/RESULTS.md), and 256 keeps clear of it.
AUTO_TF32X3_MIN_CLUSTERS = 256


def resolve_precision(precision: str, X: Array, n_clusters: int, *, xp: ModuleType) -> str:
    """The mode a pass over X runs for ``matmul_precision=precision``: "auto" is "tf32x3" for
    float32 data that CuPy's kernels take (CuPy arrays, and torch CUDA tensors where CuPy is
    installed) on a card with TF32 tensor cores (sm_80 or later) and at least
    ``AUTO_TF32X3_MIN_CLUSTERS`` centers, where it was measured faster with the same
    (certified, float64-argmin) labels; "highest" otherwise — on the CPU, for float64, for
    torch CUDA without CuPy and X streamed from the host, and at small k.
    Any other mode is returned as given."""
    if precision != "auto":
        return precision
    split = (
        not is_host_rows(X)
        and n_clusters >= AUTO_TF32X3_MIN_CLUSTERS
        and itemsize(X, xp) == 4
        and pass_runs_cupy_kernels(xp, array_device(X))
        and _tf32_tensor_cores(X, xp)
    )
    return "tf32x3" if split else "highest"


def _tf32_tensor_cores(X: Array, xp: ModuleType) -> bool:
    """Whether the GPU holding X (a CuPy array or torch CUDA tensor) has TF32 tensor cores
    (sm_80 or later)."""
    from .cuda_launch import MMA_MIN_COMPUTE_CAPABILITY  # TF32 mma: sm_80 on

    if is_torch(xp):
        import torch

        major, minor = torch.cuda.get_device_capability(X.device)
        return 10 * major + minor >= MMA_MIN_COMPUTE_CAPABILITY
    from . import cupy as _cupy

    return _cupy._compute_capability(X.device.id) >= MMA_MIN_COMPUTE_CAPABILITY


def pass_runs_cupy_kernels(xp: ModuleType, device: Any) -> bool:
    """Whether a Lloyd pass on ``xp``/``device`` runs CuPy's kernels: CuPy arrays, or torch CUDA
    tensors with CuPy installed (through DLPack). Their memory per row is CuPy's
    (``budget.cupy_pass_row_bytes``), not the standard pass's."""
    if is_cupy(xp):
        return True
    if is_torch(xp) and on_gpu(xp, device):
        from . import torch_cuda

        return torch_cuda._cupy_backend() is not None
    return False


def fused_pass_runs(X: Array, n_clusters: int, precision: str, *, xp: ModuleType) -> bool:
    """Whether a fit's Lloyd passes over X run CuPy's fused small-k·d pass: it takes X
    (``fused_pass_takes``) and, on CuPy arrays, the tensor-core assignment does not take the
    fit's ``precision`` instead (torch CUDA tensors never run it)."""
    if not fused_pass_takes(X, n_clusters, xp=xp):
        return False
    if is_cupy(xp):
        from . import cupy as _cupy

        runs = _cupy.small_pass_plan(
            X.shape[1], n_clusters, X.dtype, X.device.id, precision, accumulate=True
        )
        return runs is not None
    return True


def centered_for_passes(
    X: Array,
    offset: Array,
    n_clusters: int,
    *,
    xp: ModuleType,
    device: Any,
    budget: int | None,
    precision: str = "highest",
) -> Array | None:
    """X − ``offset`` once for all of a fit's Lloyd passes, where CuPy's kernels run them
    (``pass_runs_cupy_kernels``), the cuBLAS path or the tensor-core assignment would subtract
    it block by block (not the fused small-k·d pass, which subtracts in its kernel without a
    copy: ``fused_pass_runs``) and the copy fits ``budget`` bytes: a copy per block per
    iteration costs about a tenth of an iteration there. None elsewhere, or when the copy's
    allocation fails (the passes then subtract ``offset`` themselves)."""
    if budget is None or not pass_runs_cupy_kernels(xp, device):
        return None
    too_large = X.shape[0] * X.shape[1] * itemsize(X, xp) > budget
    if too_large or fused_pass_runs(X, n_clusters, precision, xp=xp):
        return None
    try:
        return X - offset
    except out_of_memory_errors(xp):  # another process took the memory since it was measured
        release_cached_memory(xp, device)
        return None


def candidate_potentials_for(xp: ModuleType) -> Callable | None:
    """A library's own version of ``seeding.standard_candidate_potentials`` (k-means++'s pass
    over X per center on the host), or None to use the standard one."""
    if is_numpy(xp):
        from . import numpy as _numpy

        return _numpy.candidate_potentials
    if is_torch(xp):  # NumPy's on CPU tensors
        from . import torch_cpu

        return torch_cpu.cpu_candidate_potentials
    return None


def nearest_two_for(xp: ModuleType) -> Callable | None:
    """A library's own version of ``hamerly._nearest_two``, or None to use the standard one."""
    if is_numpy(xp):
        from . import numpy as _numpy

        return _numpy.nearest_two
    if is_torch(xp):  # NumPy's on CPU tensors
        from . import torch_cpu

        return torch_cpu.cpu_nearest_two
    return None


def distances_to_centers_for(xp: ModuleType, device: Any, standard: Callable) -> Callable | None:
    """A library's own version of ``lloyd.distances_to_centers`` (``transform``), or None to
    use ``standard``: NumPy's, also on torch CPU tensors' memory in large passes."""
    if is_numpy(xp):
        from . import numpy as _numpy

        return _numpy.distances_to_centers
    if is_torch(xp) and not on_gpu(xp, device):
        from . import torch_cpu

        return partial(torch_cpu.cpu_distances_to_centers, standard=standard)
    return None


def labels_and_inertia_for(xp: ModuleType, device: Any, standard: Callable) -> Callable | None:
    """A library's own version of ``passes.standard_labels_and_inertia`` (``predict``, ``score``,
    a fit's final labels), or None to use ``standard``: NumPy's, also on torch CPU tensors'
    memory in large passes."""
    if is_numpy(xp):
        from . import numpy as _numpy

        return _numpy.labels_and_inertia
    if is_torch(xp) and not on_gpu(xp, device):
        from . import torch_cpu

        return partial(torch_cpu.cpu_labels_and_inertia, standard=standard)
    return None


def assign_for(xp: ModuleType, device: Any, precision: str = "highest") -> AssignFactory:
    """How a pass assigns its blocks: a factory taking the (centered) centers once per pass and
    returning ``assign(X_block) -> (labels, partial)`` with ``primitives.assign_block``'s
    meaning.

    On a GPU the labels are certified equal to a float64 argmin, and ``precision="high"`` lets
    the products use TF32 tensor cores (the certificate's bound widens to match). On a CPU the
    products are float32/float64 as X is and ``precision`` has no effect.
    """
    if is_cupy(xp):
        from . import cupy as _cupy

        return partial(_cupy.CertifiedAssign, xp=xp, precision=precision)
    if on_gpu(xp, device):
        from . import torch_cuda

        return partial(torch_cuda.CudaCertifiedAssign, xp=xp, precision=precision)
    return partial(_primitives.PlainAssign, xp=xp)
