"""CuPy versions of the primitives: the certified assignment's fused best-two-and-rescore
pass, an update without contended atomics, at small k·d the whole Lloyd pass in one kernel,
and (off by default: the ``mma`` pass option) the certified assignment on tensor cores.

Everything here is CuPy alone (cuBLAS through ``cupy.matmul``, and CUDA kernels compiled by
NVRTC on first use), so CuPy users need nothing else.
The kernels are CUDA C++ files (``cuda/*.cu``) that ``cuda_launch.py`` reads and sizes without
importing CuPy, so a test can compile them without a GPU and run them on the CPU
(``tests/cuda_emulator.py``). Each is tested against the standard-only version it replaces, on
the emulator and, by ``ci/gpu.sh``, on a GPU.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from types import ModuleType

import cupy
import numpy as np

from .._core.certified import TENSOR_CORE_PRECISIONS
from .._core.certified import CertifiedAssign as _StandardCertifiedAssign
from .._core.seeding import sample_in_chunks
from .._lib.budget import row_blocks
from .._lib.options import current_options
from . import cuda_launch
from .cuda_launch import (
    KERNEL_SOURCE,
    MMA_KERNEL_NAMES,
    MMA_SOURCE,
    Launch,
    SmallPass,
    assign_certified_launch,
    assign_mma_launch,
    kmeanspp_applies,
    kmeanspp_gaps_launch,
    kmeanspp_sample_launches,
    kmeanspp_trials_launch,
    kmeanspp_update_from_x_launch,
    kmeanspp_update_launch,
    label_count_launch,
    label_scatter_launch,
    mma_applies,
    segment_sum_launch,
    segment_sum_sorts,
    small_pass,
    small_pass_launch,
    split_launch,
)

_modules: dict[str, cupy.RawModule] = {}


def _run(launch: Launch) -> None:
    """Launch a kernel of ``KERNEL_SOURCE`` or ``MMA_SOURCE``, which NVRTC compiles, each all at
    once, on first use."""
    source = MMA_SOURCE if launch.kernel_name in MMA_KERNEL_NAMES else KERNEL_SOURCE
    module = _modules.get(source)
    if module is None:
        module = _modules[source] = cupy.RawModule(code=source, options=("--std=c++14",))
    kernel = module.get_function(launch.kernel_name)
    kernel((launch.grid,), (launch.threads,), launch.arguments, shared_mem=launch.shared_bytes)


@functools.cache
def _multiprocessors(device_id: int) -> int:
    return int(cupy.cuda.Device(device_id).attributes["MultiProcessorCount"])


@functools.cache
def _compute_capability(device_id: int) -> int:
    """The card's compute capability as one number (80 for sm_80)."""
    return int(cupy.cuda.Device(device_id).compute_capability)


def tensor_cores(dtype: np.dtype, device_id: int, precision: str) -> bool:
    """Whether the tensor-core assignment (``assign_mma``) takes a fit of ``dtype`` data in
    ``precision`` on this device (``cuda_launch.mma_applies``)."""
    return mma_applies(dtype, precision, _compute_capability(device_id))


def small_pass_plan(
    n_features: int,
    n_clusters: int,
    dtype: np.dtype,
    device_id: int,
    precision: str,
    *,
    accumulate: bool,
) -> SmallPass | None:
    """The one-kernel small-k·d pass for this fit (``cuda_launch.small_pass``), or None: where
    it does not apply, or where the tensor-core assignment takes the fit instead."""
    if tensor_cores(dtype, device_id, precision):
        return None
    return small_pass(n_features, n_clusters, dtype, accumulate=accumulate)


@contextlib.contextmanager
def matmul_precision(dtype: np.dtype, precision: str) -> Iterator[None]:
    """cuBLAS products in float32 ("highest") or TF32 ("high", "tf32x3") for this block,
    whatever the global setting (``CUPY_TF32``) says; float64 is left alone."""
    if np.dtype(dtype) != np.float32:
        yield
        return
    from cupy._core import _routines_linalg as linalg

    tensor_cores = precision in TENSOR_CORE_PRECISIONS
    wanted = linalg.COMPUTE_TYPE_TF32 if tensor_cores else linalg.COMPUTE_TYPE_FP32
    previous = cupy._core.get_compute_type(dtype)
    cupy._core.set_compute_type(dtype, wanted)
    try:
        yield
    finally:
        cupy._core.set_compute_type(dtype, previous)


class CertifiedAssign(_StandardCertifiedAssign):
    """``certified.CertifiedAssign`` in one or two kernels. Labels are int32.

    Small k·d (``cuda_launch.small_pass``): one ``lloyd_pass_small`` launch scores each row
    against centers held in shared memory, in X's dtype on the CUDA cores — no cuBLAS, so
    ``precision`` has no effect and the float32 bound applies.

    Otherwise one cuBLAS GEMM per block ("tf32x3": of the rows split by one more kernel,
    K = 3d, in TF32), then one pass over its (m, k) products that finds each row's best and
    second-best scores and ‖x‖²; the warp of an ambiguous row rescores it on the spot against
    only the centers that could beat its best (those within the bound of it, usually two or
    three), from the differences themselves in float64 — so even many ambiguous rows (TF32
    products leave 8–19 % while clusters are split) cost little, and no flag is read back to
    the host.

    Where ``cuda_launch.mma_applies`` (float32, "high" or "tf32x3", sm_80 or later, and the
    kernel switched on), ``assign_mma`` computes the TF32 products on tensor cores and keeps
    only each row's best two, so the (m, k) products never reach memory; the rows it cannot
    settle are listed on the device, and a second launch computes their products again and
    scores exactly, in float64, the centers that could be nearest.
    """

    def __init__(self, centers: cupy.ndarray, *, xp: ModuleType, precision: str = "highest"):
        k, d = centers.shape
        device_id = centers.device.id
        self.mma = tensor_cores(centers.dtype, device_id, precision)
        self.small = small_pass_plan(d, k, centers.dtype, device_id, precision, accumulate=False)
        if self.small is not None:
            precision = "highest"  # its products are X's dtype's own
        super().__init__(centers, xp=xp, precision=precision)
        self.precision = precision
        self.mma = self.mma and bool(self.certify)
        self.centers = cupy.ascontiguousarray(centers)
        self.c_sq = cupy.ascontiguousarray(self.c_sq)
        self.centers_wide = cupy.ascontiguousarray(self.centers_wide, cupy.float64)

    def __call__(self, X_block: cupy.ndarray) -> tuple[cupy.ndarray, cupy.ndarray]:
        X_block = cupy.ascontiguousarray(X_block)
        m, d = X_block.shape
        dtype = X_block.dtype
        with X_block.device:
            labels = cupy.empty(m, dtype=cupy.int32)
            partial = cupy.empty(m, dtype=dtype)
            if m == 0:  # a launch with an empty grid is an error
                return labels, partial
            if self.small is not None:
                self.run_small_pass(self.small, X_block, cupy.zeros(d, dtype), labels, partial)
                return labels, partial
            if self.mma:
                self.run_mma(X_block, labels, partial)
                return labels, partial
            with matmul_precision(dtype, self.precision):
                rows = split_for_tf32(X_block, tail_at=2) if self.split else X_block
                products = cupy.matmul(rows, self.neg2_centers_t)
            _run(assign_certified_launch(products, X_block, self, labels, partial))
        return labels, partial

    def run_mma(self, X_block, labels, partial):
        """``assign_mma`` over the block, then its rescoring of the rows it listed (their count
        stays on the device: the rescoring's blocks past it return at once)."""
        m = X_block.shape[0]
        n_listed = cupy.zeros(1, dtype=cupy.uint64)
        listed = cupy.empty(m, dtype=cupy.int64)
        threshold = cupy.empty(m, dtype=cupy.float64)
        for rescore in (False, True):
            _run(
                assign_mma_launch(
                    X_block, self, labels, partial, n_listed, listed, threshold, rescore=rescore
                )
            )

    def run_small_pass(self, plan: SmallPass, X_block, offset, labels, partial, **accumulate):
        """``cuda_launch.small_pass_launch`` on these centers, on the block's device."""
        _run(
            small_pass_launch(
                plan,
                X_block,
                offset,
                self.centers,
                self,
                labels,
                partial,
                unused=cupy.empty(1, dtype=cupy.float64),
                multiprocessors=_multiprocessors(X_block.device.id),
                **accumulate,
            )
        )


def assign_and_sum(
    X: cupy.ndarray,
    centers: cupy.ndarray,
    weights: cupy.ndarray,
    offset: cupy.ndarray,
    segment_sum: Callable,
    *,
    block_rows: int,
    xp: ModuleType,
    out=None,
    standard: Callable,
    precision: str = "highest",
) -> tuple[cupy.ndarray, cupy.ndarray, cupy.ndarray, cupy.ndarray]:
    """``passes.standard_assign_and_sum`` for CuPy: at small k·d one ``lloyd_pass_small`` launch per
    block assigns, counts the changed labels and sums (X read once, ``offset`` subtracted in the
    kernel, nothing n × k long in memory); elsewhere, and where the tensor-core assignment takes
    ``precision`` (``cuda_launch.mma_applies``), ``standard`` (whose ``CertifiedAssign`` runs
    cuBLAS or the tensor-core kernel)."""
    n_samples, d = X.shape
    k = centers.shape[0]
    plan = small_pass_plan(d, k, X.dtype, X.device.id, precision, accumulate=True)
    if plan is None or not X.flags.c_contiguous:
        return standard(
            X, centers, weights, offset, segment_sum, block_rows=block_rows, xp=xp, out=out
        )
    with X.device:
        scorer = CertifiedAssign(centers, xp=xp)
        labels = out.labels if out is not None else cupy.empty(n_samples, dtype=cupy.int32)
        partial = out.partial if out is not None else cupy.empty(n_samples, dtype=X.dtype)
        sums = cupy.zeros((k, d), dtype=cupy.float64)
        counts = cupy.zeros((k,), dtype=cupy.float64)
        n_changed = cupy.zeros((), dtype=cupy.uint64) if out is not None else None
        if offset is None:  # X was centered once for the whole fit
            offset = cupy.zeros(d, dtype=X.dtype)
        offset = cupy.ascontiguousarray(offset, dtype=X.dtype)
        weights = cupy.ascontiguousarray(weights, dtype=X.dtype)
        for start, stop in row_blocks(n_samples, block_rows):
            scorer.run_small_pass(
                plan,
                X[start:stop],
                offset,
                labels[start:stop],
                partial[start:stop],
                weights=weights[start:stop],
                sums=sums,
                counts=counts,
                n_changed=n_changed,
            )
    if out is not None:
        out.n_changed = n_changed
    return labels, partial, sums, counts


def kmeans_plusplus_indices(
    X: cupy.ndarray,
    n_clusters: int,
    weights: cupy.ndarray,
    rng: np.random.Generator,
    *,
    offset: cupy.ndarray,
    n_local_trials: int,
    xp: ModuleType,
) -> cupy.ndarray | None:
    """``init.kmeans_plusplus_indices`` in four or five kernel launches per center: the D²-sampling
    of its candidates in two (``kmeanspp_sample_*``: sums of w·D² by parts, then the draws; where
    the ``fused_kmeanspp_sampling`` pass option is off, the standard version's cumulative sums and
    searches, chunk by chunk beyond ``sampling_chunk_rows``), then ``kmeanspp_trials``, which reads
    X once, with ``offset`` subtracted in the kernel, for the distances to every candidate and their
    potentials; ``kmeanspp_update`` takes the best candidate and lowers the nearest distances — from
    the kept trial distances while they fit ``trial_distances_max_bytes``, else
    (``kmeanspp_update_from_x``) from a second read of X. With the trial distances kept (and the
    ``kmeanspp_pruning`` pass option), ``kmeanspp_gaps`` first measures the candidates against the
    centers chosen so far, and the trials skip reading every row that no candidate can come nearer
    than its nearest center (the triangle inequality; the same results bit for bit). State: D² in
    float64 (8 bytes a row), each row's nearest center while pruning (4), the trial distances while
    kept (and one sampling chunk's temporaries where the standard sampling runs). The standard
    version launches about 25 small kernels per center. Nothing goes back to the host until the end.

    Returns None, having drawn nothing from ``rng``, where it does not apply (X not
    C-contiguous, or ``cuda_launch.kmeanspp_applies`` false); the caller checks that X is on
    the device.
    """
    n_samples, n_features = X.shape
    trials = n_local_trials
    if not X.flags.c_contiguous or not kmeanspp_applies(n_features, trials, X.dtype):
        return None
    options = current_options()
    keep_trials = n_samples * trials * X.dtype.itemsize <= options.trial_distances_max_bytes
    with X.device:
        sms = _multiprocessors(X.device.id)
        uniforms = cupy.asarray(rng.uniform(size=1 + (n_clusters - 1) * trials), cupy.float64)
        weights = cupy.ascontiguousarray(weights, dtype=X.dtype)
        offset = cupy.ascontiguousarray(offset, dtype=X.dtype)
        closest = cupy.full(n_samples, np.inf, dtype=cupy.float64)
        trial_sq = cupy.empty(n_samples * trials, dtype=X.dtype) if keep_trials else None
        potentials = cupy.zeros((n_clusters, trials), dtype=cupy.float64)
        chosen = cupy.empty(n_clusters, dtype=cupy.int64)

        fused_sampling = options.fused_kmeanspp_sampling
        sample_totals = cupy.empty(cuda_launch._KMEANSPP_SAMPLE_THREADS, dtype=cupy.float64)
        drawn = cupy.empty(trials, dtype=cupy.int64)
        # Pruning rows by the triangle inequality (kmeanspp_trials) needs each row's nearest
        # center: 4 bytes a row, held only beside the kept trial distances (and within what
        # _init.kmeans_plusplus_state_bytes counts: 8 + 4 bytes a row here against 16 + X's).
        prune = keep_trials and options.kmeanspp_pruning
        nearest = cupy.zeros(n_samples, dtype=cupy.int32) if prune else None
        gaps = cupy.empty(n_clusters * trials, dtype=cupy.float64) if prune else None

        def sampling_weights(a: int, b: int) -> cupy.ndarray:  # w·D² (w alone at first: D² = inf)
            w = weights[a:b].astype(cupy.float64)
            return w if step == 0 else w * closest[a:b]

        for step in range(n_clusters):
            # The first center is drawn by weight alone: one candidate, whose "trial" gives
            # every row's first nearest distance (closest starts at +inf).
            lo, count = (0, 1) if step == 0 else (1 + (step - 1) * trials, trials)
            if fused_sampling:  # two launches, no n-long temporaries
                candidates = drawn[:count]
                for launch in kmeanspp_sample_launches(
                    weights,
                    closest,
                    uniforms[lo : lo + count],
                    sample_totals,
                    candidates,
                    weights_only=step == 0,
                ):
                    _run(launch)
            else:
                candidates = sample_in_chunks(
                    sampling_weights,
                    n_samples,
                    uniforms[lo : lo + count],
                    xp=xp,
                    chunk_rows=options.sampling_chunk_rows,
                )
            step_sq = None
            if trial_sq is not None:
                step_sq = trial_sq[: n_samples * count].reshape(n_samples, count)
            potential = potentials[step, :count]
            pruning = {}
            if prune and step > 0:  # the candidates' distances to the centers chosen so far
                _run(kmeanspp_gaps_launch(X, offset, chosen, step, candidates, gaps))
                pruning = {"nearest": nearest, "gaps": gaps}
            _run(
                kmeanspp_trials_launch(
                    X,
                    offset,
                    candidates,
                    closest,
                    weights,
                    step_sq,
                    potential,
                    multiprocessors=sms,
                    **pruning,
                )
            )
            this = chosen[step : step + 1]
            if step_sq is not None:
                update = kmeanspp_update_launch(
                    step_sq,
                    potential,
                    candidates,
                    closest,
                    this,
                    multiprocessors=sms,
                    nearest=nearest,
                    index=step,
                )
            else:
                update = kmeanspp_update_from_x_launch(
                    X, offset, potential, candidates, closest, this, multiprocessors=sms
                )
            _run(update)
    return chosen


def split_for_tf32(A: cupy.ndarray, *, tail_at: int) -> cupy.ndarray:
    """``certified.split_for_tf32`` for a contiguous float32 (m, d) array, in one kernel: the
    head keeps 10 mantissa bits (cleared, not rounded), which the bound allows."""
    m, d = A.shape
    out = cupy.empty((m, 3 * d), dtype=cupy.float32)
    if m * d:
        _run(split_launch(A, out, tail_at=tail_at))
    return out


def segment_sum(
    X_block: cupy.ndarray,
    labels: cupy.ndarray,
    weights: cupy.ndarray,
    n_clusters: int,
    *,
    xp: ModuleType,
) -> tuple[cupy.ndarray, cupy.ndarray]:
    """``primitives.segment_sum`` on the device, in float64.

    When k·(d+1) float64 accumulators fit in 48 KiB of shared memory, each thread block sums
    its rows privately and adds the result once; otherwise rows are visited in label order
    (``order_by_label``) so each block adds one partial sum per run of equal labels. Either way
    few atomic additions meet on one address. The order of additions varies between launches,
    so the last bits of a sum may too.
    """
    m, d = X_block.shape
    dtype = X_block.dtype
    with X_block.device:  # allocate on the block's GPU, not the current one
        sums = cupy.zeros((n_clusters, d), dtype=cupy.float64)
        counts = cupy.zeros((n_clusters,), dtype=cupy.float64)
        if m == 0:
            return sums, counts
        X_block = cupy.ascontiguousarray(X_block)
        labels = cupy.ascontiguousarray(labels, dtype=cupy.int32)
        weights = cupy.ascontiguousarray(weights, dtype=dtype)
        order = order_by_label(labels, n_clusters) if segment_sum_sorts(n_clusters, d) else None
        _run(segment_sum_launch(X_block, weights, labels, order, sums, counts))
    return sums, counts


def order_by_label(labels: cupy.ndarray, n_clusters: int) -> cupy.ndarray:
    """Row indices (int64) grouped by label, in label order: a counting sort in two kernels
    and a cumulative sum, with no host synchronisation (``cupy.argsort`` runs Thrust, which
    waits for the device: once per row block, it left the GPU idle between blocks). Rows of one
    label come in an order that varies between calls."""
    m = labels.shape[0]
    sms = _multiprocessors(labels.device.id)
    counts = cupy.zeros(n_clusters, dtype=cupy.uint64)
    _run(label_count_launch(labels, counts, multiprocessors=sms))
    next_position = cupy.cumsum(counts) - counts  # each label's first position
    order = cupy.empty(m, dtype=cupy.int64)
    _run(label_scatter_launch(labels, next_position, order, multiprocessors=sms))
    return order
