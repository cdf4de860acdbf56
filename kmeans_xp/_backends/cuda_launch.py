"""The CUDA kernels of the CuPy backend: their source, and how each is launched.

The kernels are CUDA C++ files beside this module (``cuda/*.cu``, ``cuda/common.cuh``), shipped
as package data. Nothing here imports CuPy: ``cupy.py`` compiles ``KERNEL_SOURCE`` (and the
tensor-core kernels' ``MMA_SOURCE``) with NVRTC (through ``cupy.RawModule``) and launches them;
the tests compile the same text with NVRTC where it is installed, and run it on the CPU with
``tests/cuda_emulator.py`` wherever g++ is, with the launch sizes and arguments computed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from types import ModuleType

import numpy as np

from .._core.certified import TENSOR_CORE_PRECISIONS
from .._lib.compat import Array, is_c_contiguous, itemsize
from .._lib.options import current_options

_COMMON_HEADER = "common.cuh"


def read_source(name: str) -> str:
    """The text of ``cuda/<name>`` with its ``#include "common.cuh"`` replaced by the header
    itself: NVRTC gets one self-contained source, as the emulator does."""
    folder = resources.files(__package__).joinpath("cuda")
    text = folder.joinpath(name).read_text(encoding="utf-8")
    header = folder.joinpath(_COMMON_HEADER).read_text(encoding="utf-8")
    return text.replace(f'#include "{_COMMON_HEADER}"', header, 1)


KERNEL_SOURCE = read_source("kernels.cu")
# The tensor-core kernels are a module of their own: NVRTC compiles a module whole, so a card or
# compiler that refused them would otherwise take every other kernel down with them.
MMA_SOURCE = read_source("mma.cu")

# The fused pass for small k·d (lloyd_pass_small) pads rows to the first of these widths that
# holds them; wider rows go through cuBLAS.
SMALL_PASS_WIDTHS = (4, 8, 16, 32, 64)
# Rows each thread scores at once, by type and width (the R of the kernel's
# DEFINE_LLOYD_PASS_SMALL lines): each center value read from shared memory serves that many rows.
SMALL_PASS_ROWS = {
    "float": {4: 2, 8: 2, 16: 2, 32: 1, 64: 1},
    "double": {4: 2, 8: 2, 16: 2, 32: 1, 64: 1},
}

KERNEL_NAMES = (
    "assign_certified_float",
    "assign_certified_double",
    "sum_shared_float",
    "sum_shared_double",
    "sum_sorted_float",
    "sum_sorted_double",
    "label_count",
    "label_scatter",
    "split_for_tf32_float",
    "kmeanspp_trials_float",
    "kmeanspp_trials_double",
    "kmeanspp_update_float",
    "kmeanspp_update_double",
    "kmeanspp_update_from_x_float",
    "kmeanspp_update_from_x_double",
    "kmeanspp_gaps_float",
    "kmeanspp_gaps_double",
    "kmeanspp_sample_totals_float",
    "kmeanspp_sample_totals_double",
    "kmeanspp_sample_pick_float",
    "kmeanspp_sample_pick_double",
    *(
        f"lloyd_pass_small_{suffix}_{width}"
        for suffix in ("float", "double")
        for width in SMALL_PASS_WIDTHS
    ),
)

MMA_KERNEL_NAMES = (
    "assign_mma_tf32",
    "assign_mma_tf32x3",
    "rescore_mma_tf32",
    "rescore_mma_tf32x3",
)

# Dynamic shared memory a block may use without opting in (every CUDA GPU since Kepler).
SHARED_BYTES = 48 * 1024
_ASSIGN_THREADS = 256  # assign_certified: 8 rows (warps) per block
_SPLIT_THREADS = 256
_SHARED_THREADS = 256
_SHARED_ROWS_PER_BLOCK = 4096
_SORTED_ROWS_PER_BLOCK = 256
_SMALL_THREADS = 256
# lloyd_pass_small's grid: this many blocks per multiprocessor (128 registers a thread at d <= 32,
# two rows each, per ptxas for sm_90, allow 2 blocks of 256 at once; the rest wait), each
# visiting tiles grid-stride, so every block adds its shared sums to the global ones once per
# launch, not once per tile.
_SMALL_BLOCKS_PER_SM = 4

# kmeanspp_trials' KMEANSPP_PRUNE: a row is not read when every candidate's squared distance to
# the row's nearest center is at least this many times the row's nearest squared distance.
KMEANSPP_PRUNE = 4.1


@dataclass(frozen=True)
class Launch:
    """One kernel launch: ``kernel((grid,), (threads,), arguments, shared_mem=shared_bytes)``
    with the arguments in the kernel's order and C types (NumPy scalars), arrays contiguous."""

    kernel_name: str
    grid: int
    threads: int
    arguments: tuple
    shared_bytes: int = 0


def type_suffix(dtype: np.dtype) -> str:
    """The suffix of a kernel's name for data of ``dtype`` (float32 or float64)."""
    return "float" if np.dtype(dtype) == np.float32 else "double"


def _blocks(items: int, per_block: int) -> int:
    return (items + per_block - 1) // per_block


def assign_certified_launch(products, X_block, scorer, labels, partial) -> Launch:
    """``assign_certified`` over a block's (m, k) products: one warp per row. ``scorer`` is the
    ``certified.CertifiedAssign`` whose centers gave the products (‖c‖², float64 centers,
    bound), with contiguous ``c_sq`` and ``centers_wide``."""
    m, d = X_block.shape
    k = products.shape[1]
    scalar = np.dtype(X_block.dtype).type
    vector = k % (16 // products.dtype.itemsize) == 0 and _aligned16(products, scorer.c_sq)
    arguments = (
        products,
        scorer.c_sq,
        X_block,
        scorer.centers_wide,
        np.int64(m),
        np.int32(k),
        np.int32(d),
        scalar(scorer.a),
        scalar(scorer.b),
        np.int32(scorer.certify and k > 1),
        np.int32(vector),
        labels,
        partial,
    )
    name = f"assign_certified_{type_suffix(X_block.dtype)}"
    return Launch(name, _blocks(m * 32, _ASSIGN_THREADS), _ASSIGN_THREADS, arguments)


# assign_mma's tiles (the kernel's MMA_* constants) and its shared memory in bytes: X's and the
# centers' tiles (MMA_STRIDE floats a row); per row its index and threshold (8 bytes each); per
# column warp (4) and row 8 bytes of best two (or nearest) and a label; per row |x|^2.
MMA_ROWS = 128
MMA_CENTERS = 128
MMA_STRIDE = 36
MMA_THREADS = 256
MMA_SHARED_BYTES = (
    4 * (MMA_ROWS + MMA_CENTERS) * MMA_STRIDE
    + MMA_ROWS * (8 + 8)
    + 4 * MMA_ROWS * (8 + 4)
    + 4 * MMA_ROWS
)
# The lowest compute capability with TF32 mma (Ampere, sm_80).
MMA_MIN_COMPUTE_CAPABILITY = 80


def mma_applies(dtype: np.dtype, precision: str, compute_capability: int) -> bool:
    """Whether ``assign_mma`` scores blocks for this fit: float32 data, a tensor-core precision
    ("high" or "tf32x3"), a card with TF32 mma, and the ``mma`` pass option on."""
    return (
        current_options().mma
        and np.dtype(dtype) == np.float32
        and precision in TENSOR_CORE_PRECISIONS
        and compute_capability >= MMA_MIN_COMPUTE_CAPABILITY
    )


def assign_mma_launch(
    X_block, scorer, labels, partial, n_listed, listed, listed_threshold, *, rescore: bool
) -> Launch:
    """``assign_mma_tf32`` (``scorer.precision`` "high") or ``assign_mma_tf32x3`` over a float32
    block: labels and partials of the rows it settles; the others' indices go to ``listed``
    (int64, m long), their thresholds to ``listed_threshold`` (float64, m long) and their count
    into ``n_listed`` (one uint64, zeroed first). With ``rescore``, ``rescore_mma_*``: the
    listed rows' labels and partials, from exact distances to the centers within their
    thresholds. ``scorer`` is the ``certified.CertifiedAssign`` of the centers (float32
    ``centers`` and ``c_sq``, float64 ``centers_wide``, the bound)."""
    m, d = X_block.shape
    k = scorer.centers.shape[0]
    vector = d % 4 == 0 and _aligned16(X_block, scorer.centers)  # 16-byte tile loads
    arguments = (
        X_block,
        scorer.centers,
        scorer.c_sq,
        scorer.centers_wide,
        np.int64(m),
        np.int32(k),
        np.int32(d),
        np.float32(scorer.a),
        np.float32(scorer.b),
        np.int32(scorer.certify and k > 1),
        np.int32(vector),
        labels,
        partial,
        n_listed,
        listed,
        listed_threshold,
    )
    kind = "rescore" if rescore else "assign"
    precision = "tf32x3" if scorer.precision == "tf32x3" else "tf32"
    name = f"{kind}_mma_{precision}"
    return Launch(name, _blocks(m, MMA_ROWS), MMA_THREADS, arguments, MMA_SHARED_BYTES)


def split_launch(A, out, *, tail_at: int) -> Launch:
    """``split_for_tf32_float`` of a float32 (m, d) array into ``out`` (m, 3d)."""
    m, d = A.shape
    arguments = (A, np.int64(m), np.int32(d), np.int32(tail_at), out)
    return Launch("split_for_tf32_float", _blocks(m * d, _SPLIT_THREADS), _SPLIT_THREADS, arguments)


def _shared_sum_rows(n_clusters: int, n_features: int) -> int | None:
    """Rows per block of ``sum_shared``: as many as fit its shared memory beside k·(d+1) float64
    sums and 2k ints (4096 or 1024), or None (``sum_sorted`` then)."""
    sums_bytes = 8 * n_clusters * (n_features + 1) + 8 * n_clusters
    for rows in (_SHARED_ROWS_PER_BLOCK, _SHARED_ROWS_PER_BLOCK // 4):
        if sums_bytes + 4 * rows <= SHARED_BYTES:
            return rows
    return None


def segment_sum_sorts(n_clusters: int, n_features: int) -> bool:
    """Whether ``segment_sum_launch`` needs the rows' order by label: when k·(d+1) float64 sums
    and a block of rows do not fit in a block's shared memory."""
    return _shared_sum_rows(n_clusters, n_features) is None


def segment_sum_launch(X_block, weights, labels, order, sums, counts) -> Launch:
    """``sum_shared`` (private sums per block in shared memory) or, where ``segment_sum_sorts``,
    ``sum_sorted`` over rows in label ``order`` (int64). Adds into float64 ``sums``/``counts``."""
    m, d = X_block.shape
    k = sums.shape[0]
    suffix = type_suffix(X_block.dtype)
    rows = _shared_sum_rows(k, d)
    if rows is not None:
        arguments = (
            X_block,
            weights,
            labels,
            np.int64(m),
            np.int32(d),
            np.int32(k),
            np.int64(rows),
            sums,
            counts,
        )
        shared = 8 * k * (d + 1) + 8 * k + 4 * rows
        return Launch(f"sum_shared_{suffix}", _blocks(m, rows), _SHARED_THREADS, arguments, shared)
    arguments = (
        X_block,
        weights,
        labels,
        order,
        np.int64(m),
        np.int32(d),
        np.int64(_SORTED_ROWS_PER_BLOCK),
        sums,
        counts,
    )
    threads = min(128, 32 * _blocks(d, 32))
    grid = _blocks(m, _SORTED_ROWS_PER_BLOCK)
    shared = _SORTED_ROWS_PER_BLOCK * (8 + 8 + 4)
    return Launch(f"sum_sorted_{suffix}", grid, threads, arguments, shared)


_LABEL_THREADS = 256


def label_count_launch(labels, counts, *, multiprocessors: int) -> Launch:
    """``label_count``: the rows of each label added into ``counts`` (k,) uint64 (zero it)."""
    m = labels.shape[0]
    grid = max(1, min(_blocks(m, _LABEL_THREADS), 8 * multiprocessors))
    return Launch("label_count", grid, _LABEL_THREADS, (labels, np.int64(m), counts))


def label_scatter_launch(labels, next_position, order, *, multiprocessors: int) -> Launch:
    """``label_scatter``: ``order`` (m,) int64 filled with the rows grouped by label, from each
    label's first position in ``next_position`` (k,) uint64 (advanced as rows are placed)."""
    m = labels.shape[0]
    grid = max(1, min(_blocks(m, _LABEL_THREADS), 8 * multiprocessors))
    arguments = (labels, np.int64(m), next_position, order)
    return Launch("label_scatter", grid, _LABEL_THREADS, arguments)


@dataclass(frozen=True)
class SmallPass:
    """``lloyd_pass_small`` for one shape: its kernel and dynamic shared memory in bytes (the
    layout the kernel's comment describes)."""

    kernel_name: str
    shared_bytes: int
    accumulate: bool
    rows_per_thread: int


def small_pass(
    n_features: int, n_clusters: int, dtype: np.dtype, *, accumulate: bool
) -> SmallPass | None:
    """The fused pass for this shape, or None where it does not apply: more than 64 features,
    centers (and, when ``accumulate``, k·(d+1) float64 sums) beyond 48 KiB of shared memory, or
    the ``small_pass`` pass option off.

    Why: at small k·d the cuBLAS path is bound by memory, not arithmetic — its (m, k) products
    are written and read back, and X is read three times — while this kernel reads X once
    (twice from cache when it accumulates) and writes 8 bytes per row.
    """
    if not current_options().small_pass:
        return None
    width = next((w for w in SMALL_PASS_WIDTHS if w >= n_features), None)
    if width is None:
        return None
    item = np.dtype(dtype).itemsize
    suffix = type_suffix(dtype)
    rows = SMALL_PASS_ROWS[suffix][width]
    total = ((n_clusters * width + n_clusters + width) * item + 7) // 8 * 8
    if accumulate:  # sums and counts; the tile's labels, label positions and grouped rows
        tile_rows = rows * _SMALL_THREADS
        total += 8 * n_clusters * (n_features + 1) + 4 * (2 * tile_rows + n_clusters)
    if total > SHARED_BYTES:
        return None
    name = f"lloyd_pass_small_{suffix}_{width}"
    return SmallPass(name, total, accumulate, rows)


def _aligned16(*arrays) -> bool:
    """Whether every array's data start on a 16-byte boundary (CuPy or NumPy arrays)."""
    for a in arrays:
        interface = getattr(a, "__cuda_array_interface__", None) or a.__array_interface__
        if interface["data"][0] % 16:
            return False
    return True


def vector_rows(X_block) -> bool:
    """Whether ``lloyd_pass_small`` may read the rows of a C-contiguous block 16 bytes at a
    time: its rows hold a whole number of 16-byte words and start 16-byte aligned."""
    per_word = 16 // X_block.dtype.itemsize
    return X_block.shape[1] % per_word == 0 and _aligned16(X_block)


def small_pass_launch(
    plan: SmallPass,
    X_block,
    offset,
    centers,
    scorer,
    labels,
    partial,
    *,
    weights=None,
    sums=None,
    counts=None,
    n_changed=None,
    unused=None,
    multiprocessors: int,
) -> Launch:
    """``lloyd_pass_small`` over a block: labels and partials written in place; with
    ``plan.accumulate``, the weighted sums added into ``sums``/``counts``; with ``n_changed``
    (one uint64), the labels it changes counted.

    ``centers`` are the centered centers in X's dtype, ``scorer`` a ``CertifiedAssign`` of them
    with ``precision="highest"`` (its ‖c‖², float64 centers and bound); ``unused`` (any array)
    stands in for the pointers the kernel will not read.
    """
    m, d = X_block.shape
    k = centers.shape[0]
    scalar = np.dtype(X_block.dtype).type
    count_changed = n_changed is not None
    arguments = (
        X_block,
        offset,
        np.int64(m),
        np.int32(d),
        centers,
        scorer.c_sq,
        scorer.centers_wide,
        np.int32(k),
        scalar(scorer.a),
        scalar(scorer.b),
        np.int32(scorer.certify and k > 1),
        weights if plan.accumulate else unused,
        np.int32(plan.accumulate),
        np.int32(count_changed),
        np.int32(vector_rows(X_block)),
        labels,
        partial,
        n_changed if count_changed else unused,
        sums if plan.accumulate else unused,
        counts if plan.accumulate else unused,
    )
    tile_rows = plan.rows_per_thread * _SMALL_THREADS
    grid = max(1, min(_blocks(m, tile_rows), _SMALL_BLOCKS_PER_SM * multiprocessors))
    return Launch(plan.kernel_name, grid, _SMALL_THREADS, arguments, plan.shared_bytes)


# Candidates one kmeanspp_trials launch takes (the kernel's KMEANSPP_MAX_TRIALS): each lane
# keeps that many partial sums in registers.
KMEANSPP_MAX_TRIALS = 16
# A null pointer argument: CuPy and the emulator pass a NumPy scalar by value, 8 bytes of zero.
NULL = np.uint64(0)
_KMEANSPP_THREADS = 256
# Blocks per multiprocessor for the k-means++ kernels (few registers: several blocks fit).
_KMEANSPP_BLOCKS_PER_SM = 8


# Lanes per row in the k-means++ kernels (their KMEANSPP_GROUP): a warp scores 4 rows at once.
_KMEANSPP_GROUP = 8


def kmeanspp_shared_bytes(n_features: int, n_trials: int, dtype: np.dtype) -> int:
    """``kmeanspp_trials``'s shared memory: the lane groups' potentials, the candidate rows and
    the offset."""
    groups = _KMEANSPP_THREADS // _KMEANSPP_GROUP
    return 8 * n_trials * groups + (n_trials + 1) * n_features * np.dtype(dtype).itemsize


def kmeanspp_applies(n_features: int, n_trials: int, dtype: np.dtype) -> bool:
    """Whether CuPy's k-means++ kernels take this shape: at most ``KMEANSPP_MAX_TRIALS``
    candidates (the default 2 + ln k stays under it up to k ≈ 1.2 million), their rows (and the
    warps' potentials) fit a block's shared memory, and the ``fused_kmeanspp`` pass option is on."""
    fits = kmeanspp_shared_bytes(n_features, n_trials, dtype) <= SHARED_BYTES
    return current_options().fused_kmeanspp and fits and n_trials <= KMEANSPP_MAX_TRIALS


def _kmeanspp_grid(items: int, multiprocessors: int) -> int:
    return max(1, min(_blocks(items, _KMEANSPP_THREADS), _KMEANSPP_BLOCKS_PER_SM * multiprocessors))


def kmeanspp_trials_launch(
    X,
    offset,
    candidates,
    closest,
    weights,
    trial_sq,
    potentials,
    *,
    multiprocessors: int,
    nearest=None,
    gaps=None,
) -> Launch:
    """``kmeanspp_trials`` over all rows of contiguous X (n, d): ``candidates`` (t,) int64 row
    indices, ``closest`` (n,) float64, ``trial_sq`` (n, t) in X's dtype, written (None: not
    kept); ``potentials`` (t,) float64, added to (zero it first). With ``nearest`` (n,) int32
    and ``gaps`` (from ``kmeanspp_gaps_launch``), rows no candidate can come nearer are pruned
    (trial distances +inf, the same potentials)."""
    m, d = X.shape
    t = candidates.shape[0]
    trial_sq = NULL if trial_sq is None else trial_sq
    pruning = (NULL, NULL) if nearest is None else (nearest, gaps)
    arguments = (
        X,
        offset,
        np.int64(m),
        np.int32(d),
        candidates,
        np.int32(t),
        closest,
        weights,
        trial_sq,
        potentials,
        *pruning,
    )
    name = f"kmeanspp_trials_{type_suffix(X.dtype)}"
    grid = _kmeanspp_grid(_KMEANSPP_GROUP * m, multiprocessors)
    shared = kmeanspp_shared_bytes(d, t, X.dtype)
    return Launch(name, grid, _KMEANSPP_THREADS, arguments, shared)


# kmeanspp_sample_*: threads a block (a power of two, as their block_min needs), which is also the
# most parts the rows are cut into; at most one part a _KMEANSPP_SAMPLE_MIN_PART_ROWS rows.
_KMEANSPP_SAMPLE_THREADS = 256
_KMEANSPP_SAMPLE_MIN_PART_ROWS = 256


def kmeanspp_sample_parts(n_rows: int) -> tuple[int, int]:
    """(parts, rows per part) of ``kmeanspp_sample_*`` for ``n_rows`` rows: at most one part
    a thread of the pick's block, none empty."""
    parts = max(1, min(_KMEANSPP_SAMPLE_THREADS, _blocks(n_rows, _KMEANSPP_SAMPLE_MIN_PART_ROWS)))
    part_rows = max(1, _blocks(n_rows, parts))
    return _blocks(n_rows, part_rows), part_rows


def kmeanspp_sample_launches(
    weights, closest, uniforms, totals, picked, *, weights_only: bool
) -> tuple[Launch, Launch]:
    """D²-sampling of a k-means++ step (``seeding.sample_in_chunks`` with increments ``w`` when
    ``weights_only``, else ``w·closest``): ``kmeanspp_sample_totals`` writes each part's total
    into ``totals`` (float64, ``_KMEANSPP_SAMPLE_THREADS`` long), then ``kmeanspp_sample_pick``
    writes into ``picked`` (int64, as long as ``uniforms``) the row each uniform draws."""
    m = weights.shape[0]
    parts, part_rows = kmeanspp_sample_parts(m)
    suffix = type_suffix(weights.dtype)
    rows = (weights, closest, np.int64(m), np.int64(part_rows))
    flag = np.int32(bool(weights_only))
    threads = _KMEANSPP_SAMPLE_THREADS
    sums = Launch(
        f"kmeanspp_sample_totals_{suffix}", parts, threads, (*rows, flag, totals), 8 * threads
    )
    pick = Launch(
        f"kmeanspp_sample_pick_{suffix}",
        uniforms.shape[0],
        threads,
        (*rows, np.int32(parts), flag, totals, uniforms, picked),
        8 * (threads + 1),
    )
    return sums, pick


def kmeanspp_update_launch(
    trial_sq,
    potentials,
    candidates,
    closest,
    chosen,
    *,
    multiprocessors: int,
    nearest=None,
    index: int = 0,
) -> Launch:
    """``kmeanspp_update``: the best candidate into ``chosen`` (one int64), ``closest`` (n,)
    float64 lowered by its kept trial distances ``trial_sq`` (n, t), and where it is lowered
    ``nearest`` (n,) int32 set to ``index`` (the step), unless None."""
    m, t = trial_sq.shape
    arguments = (
        np.int64(m),
        np.int32(t),
        trial_sq,
        potentials,
        candidates,
        closest,
        chosen,
        NULL if nearest is None else nearest,
        np.int32(index),
    )
    name = f"kmeanspp_update_{type_suffix(trial_sq.dtype)}"
    return Launch(name, _kmeanspp_grid(m, multiprocessors), _KMEANSPP_THREADS, arguments)


def kmeanspp_gaps_launch(X, offset, chosen, n_chosen: int, candidates, gaps) -> Launch:
    """``kmeanspp_gaps``: ``gaps`` (float64, at least n_chosen * t) gets the squared distance
    between each of the first ``n_chosen`` rows of X listed in ``chosen`` and each candidate."""
    d = X.shape[1]
    t = candidates.shape[0]
    arguments = (X, offset, np.int32(d), chosen, np.int32(n_chosen), candidates, np.int32(t), gaps)
    grid = max(1, _blocks(32 * n_chosen * t, _KMEANSPP_THREADS))  # a warp a pair
    return Launch(f"kmeanspp_gaps_{type_suffix(X.dtype)}", grid, _KMEANSPP_THREADS, arguments)


def kmeanspp_update_from_x_launch(
    X, offset, potentials, candidates, closest, chosen, *, multiprocessors: int
) -> Launch:
    """``kmeanspp_update_from_x``: as ``kmeanspp_update_launch`` where the trial distances were
    not kept, the winner's distances computed again from contiguous X (n, d)."""
    m, d = X.shape
    t = candidates.shape[0]
    arguments = (
        X,
        offset,
        np.int64(m),
        np.int32(d),
        np.int32(t),
        potentials,
        candidates,
        closest,
        chosen,
    )
    name = f"kmeanspp_update_from_x_{type_suffix(X.dtype)}"
    grid = _kmeanspp_grid(_KMEANSPP_GROUP * m, multiprocessors)
    return Launch(name, grid, _KMEANSPP_THREADS, arguments, 2 * d * X.dtype.itemsize)


def fused_pass_takes(X: Array, n_clusters: int, *, xp: ModuleType) -> bool:
    """Whether CuPy's fused small-k·d pass (``cuda_launch.small_pass``) takes X: C-contiguous,
    and few enough features and centers for its shared memory. It subtracts the offset in its
    kernel."""
    dtype = np.float32 if itemsize(X, xp) == 4 else np.float64
    fits = small_pass(X.shape[1], n_clusters, dtype, accumulate=True) is not None
    return fits and is_c_contiguous(X)
