"""CuPy versions of the primitives: the certified assignment's fused best-two-and-rescore
pass, and an update without contended atomics.

Everything here is CuPy alone (cuBLAS through ``cupy.matmul``, CUB through ``cupy.argsort``,
and four small CUDA kernels compiled by NVRTC on first use), so CuPy users need nothing else.
The kernels' source is plain text (``KERNEL_SOURCE``), so a test can compile it without a GPU.

Status: written and compile-checked without a GPU; the tests that compare these with the
standard-only versions run wherever a CUDA device answers (``ci/gpu.sh``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

import cupy
import numpy as np

from .._certified import TENSOR_CORE_PRECISIONS
from .._certified import CertifiedAssign as _StandardCertifiedAssign

KERNEL_SOURCE = r"""
// +inf without math.h (NVRTC compiles without the host headers).
template <typename T> __device__ __forceinline__ T infinity();
template <> __device__ __forceinline__ float infinity<float>() {
    return __int_as_float(0x7f800000);
}
template <> __device__ __forceinline__ double infinity<double>() {
    return __longlong_as_double(0x7ff0000000000000LL);
}

// Keep the best (lowest index on ties) and the second-best of the values seen so far.
template <typename T>
__device__ __forceinline__ void keep_two(T v, int j, T& best, int& best_j, T& second) {
    if (v < best || (v == best && j < best_j)) {
        second = best;
        best = v;
        best_j = j;
    } else if (v < second) {
        second = v;
    }
}

// One warp per row. Each lane keeps the best two scores of columns lane, lane + 32, ...; five
// shuffles merge them: the best score (lowest index on ties) and the second-best. If the two are
// within the error bound 2(a|x| + b) (see kmeans_xp/_certified.py), the row is ambiguous and the
// same warp scores it exactly: only centers whose score is within the bound of the best can be
// nearer, and their squared distances are formed from the differences in float64. No flag goes
// back to the host, so the next block's work is queued without waiting.
template <typename T>
__device__ void assign_certified(const T* __restrict__ products, const T* __restrict__ c_sq,
                                 const T* __restrict__ x, const double* __restrict__ centers,
                                 long long m, int k, int d, T a, T b, int certify,
                                 int* __restrict__ labels, T* __restrict__ partial) {
    const long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= m) return;  // the whole warp leaves together: all its lanes share `row`
    const T* s = products + row * (long long)k;
    const T* xr = x + row * (long long)d;
    T best = infinity<T>(), second = infinity<T>();
    int best_j = 0x7fffffff;
    for (int j = lane; j < k; j += 32) keep_two(s[j] + c_sq[j], j, best, best_j, second);
    T x_sq = 0;
    for (int f = lane; f < d; f += 32) x_sq += xr[f] * xr[f];
    for (int offset = 16; offset > 0; offset >>= 1) {
        T other_best = __shfl_down_sync(0xffffffffu, best, offset);
        int other_j = __shfl_down_sync(0xffffffffu, best_j, offset);
        T other_second = __shfl_down_sync(0xffffffffu, second, offset);
        x_sq += __shfl_down_sync(0xffffffffu, x_sq, offset);
        // A lane past the warp's end gets its own values back; merging a lane with itself
        // would make its second-best its best (lane 0 never reads such a lane, but be exact).
        if (lane + offset < 32) {
            keep_two(other_best, other_j, best, best_j, second);
            if (other_second < second) second = other_second;
        }
    }
    best = __shfl_sync(0xffffffffu, best, 0);
    best_j = __shfl_sync(0xffffffffu, best_j, 0);
    second = __shfl_sync(0xffffffffu, second, 0);
    x_sq = __shfl_sync(0xffffffffu, x_sq, 0);
    const bool ambiguous = certify && (second - best) <= 2 * (a * sqrt(x_sq) + b);
    if (!ambiguous) {
        if (lane == 0) {
            labels[row] = best_j;
            partial[row] = best;
        }
        return;
    }
    // 3 bounds rather than 2: room for the rounding of the scores themselves (a superset of the
    // candidates costs a few more exact distances, never a wrong label).
    double exact_x_sq = 0.0;
    for (int f = 0; f < d; ++f) exact_x_sq += (double)xr[f] * (double)xr[f];
    const double threshold = (double)best + 3.0 * ((double)a * sqrt(exact_x_sq) + (double)b);
    double nearest = infinity<double>();
    int nearest_j = 0x7fffffff;
    for (int j = lane; j < k; j += 32) {
        if ((double)(s[j] + c_sq[j]) > threshold) continue;
        const double* c = centers + (long long)j * d;
        double dist = 0.0;
        for (int f = 0; f < d; ++f) {
            const double diff = (double)xr[f] - c[f];
            dist += diff * diff;
        }
        if (dist < nearest || (dist == nearest && j < nearest_j)) {
            nearest = dist;
            nearest_j = j;
        }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        const double other = __shfl_down_sync(0xffffffffu, nearest, offset);
        const int other_j = __shfl_down_sync(0xffffffffu, nearest_j, offset);
        if (other < nearest || (other == nearest && other_j < nearest_j)) {
            nearest = other;
            nearest_j = other_j;
        }
    }
    if (lane == 0) {
        labels[row] = nearest_j;
        partial[row] = (T)(nearest - exact_x_sq);  // |c|^2 - 2 x.c = |x - c|^2 - |x|^2
    }
}

extern "C" __global__ void assign_certified_float(const float* products, const float* c_sq,
                                                  const float* x, const double* centers,
                                                  long long m, int k, int d, float a, float b,
                                                  int certify, int* labels, float* partial) {
    assign_certified<float>(products, c_sq, x, centers, m, k, d, a, b, certify, labels,
                            partial);
}

extern "C" __global__ void assign_certified_double(const double* products, const double* c_sq,
                                                   const double* x, const double* centers,
                                                   long long m, int k, int d, double a,
                                                   double b, int certify, int* labels,
                                                   double* partial) {
    assign_certified<double>(products, c_sq, x, centers, m, k, d, a, b, certify, labels,
                             partial);
}

// Rows of X as the operand of a "tf32x3" product (see split_for_tf32 in kmeans_xp/_certified.py):
// each x = h + l, h its sign, exponent and 10 leading mantissa bits (exact in TF32), l = x - h
// (exact, |l| < 2^-10 |x|); the row becomes the column groups h, h, l (tail_at = 2) or h, l, h
// (tail_at = 1).
extern "C" __global__ void split_for_tf32_float(const float* __restrict__ x, long long m, int d,
                                                int tail_at, float* __restrict__ out) {
    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= m * d) return;
    const long long r = e / d;
    const int f = (int)(e - r * d);
    const float v = x[e];
    const float h = __uint_as_float(__float_as_uint(v) & 0xffffe000u);
    const float l = v - h;
    float* o = out + r * 3 * (long long)d + f;
    o[0] = tail_at == 0 ? l : h;
    o[d] = tail_at == 1 ? l : h;
    o[2 * d] = tail_at == 2 ? l : h;
}

// Weighted per-cluster sums when k*(d+1) float64 accumulators fit in shared memory: each block
// adds its rows into private accumulators, then adds those to the global sums once.
template <typename T>
__device__ void sum_shared(const T* __restrict__ x, const T* __restrict__ w,
                           const int* __restrict__ labels, long long m, int d, int k,
                           long long rows_per_block, double* sums, double* counts) {
    extern __shared__ double acc[];
    const int n_acc = k * (d + 1);
    for (int i = threadIdx.x; i < n_acc; i += blockDim.x) acc[i] = 0.0;
    __syncthreads();
    const long long lo = (long long)blockIdx.x * rows_per_block;
    const long long hi = lo + rows_per_block < m ? lo + rows_per_block : m;
    const long long total = (hi - lo) * d;
    for (long long e = threadIdx.x; e < total; e += blockDim.x) {
        const long long r = lo + e / d;
        const int f = (int)(e % d);
        const int label = labels[r];
        const double wr = (double)w[r];
        atomicAdd(&acc[label * d + f], wr * (double)x[r * d + f]);
        if (f == 0) atomicAdd(&acc[k * d + label], wr);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n_acc; i += blockDim.x) {
        const double v = acc[i];
        if (v == 0.0) continue;
        if (i < k * d) atomicAdd(&sums[i], v);
        else atomicAdd(&counts[i - k * d], v);
    }
}

extern "C" __global__ void sum_shared_float(const float* x, const float* w, const int* labels,
                                            long long m, int d, int k, long long rows_per_block,
                                            double* sums, double* counts) {
    sum_shared<float>(x, w, labels, m, d, k, rows_per_block, sums, counts);
}

extern "C" __global__ void sum_shared_double(const double* x, const double* w,
                                             const int* labels, long long m, int d, int k,
                                             long long rows_per_block, double* sums,
                                             double* counts) {
    sum_shared<double>(x, w, labels, m, d, k, rows_per_block, sums, counts);
}

// Weighted per-cluster sums over rows visited in label order (`order` sorts the labels): each
// thread owns one feature of a run of sorted rows and adds a cluster's partial sum once per run
// of equal labels, so atomics are few and rarely meet on one address.
template <typename T>
__device__ void sum_sorted(const T* __restrict__ x, const T* __restrict__ w,
                           const int* __restrict__ labels, const long long* __restrict__ order,
                           long long m, int d, long long rows_per_block, double* sums,
                           double* counts) {
    const long long lo = (long long)blockIdx.x * rows_per_block;
    const long long hi = lo + rows_per_block < m ? lo + rows_per_block : m;
    for (int f = threadIdx.x; f < d; f += blockDim.x) {
        int current = -1;
        double total = 0.0, weight = 0.0;
        for (long long p = lo; p < hi; ++p) {
            const long long r = order[p];
            const int label = labels[r];
            if (label != current) {
                if (current >= 0) {
                    atomicAdd(&sums[(long long)current * d + f], total);
                    if (f == 0) atomicAdd(&counts[current], weight);
                }
                current = label;
                total = 0.0;
                weight = 0.0;
            }
            const double wr = (double)w[r];
            total += wr * (double)x[r * d + f];
            weight += wr;
        }
        if (current >= 0) {
            atomicAdd(&sums[(long long)current * d + f], total);
            if (f == 0) atomicAdd(&counts[current], weight);
        }
    }
}

extern "C" __global__ void sum_sorted_float(const float* x, const float* w, const int* labels,
                                            const long long* order, long long m, int d,
                                            long long rows_per_block, double* sums,
                                            double* counts) {
    sum_sorted<float>(x, w, labels, order, m, d, rows_per_block, sums, counts);
}

extern "C" __global__ void sum_sorted_double(const double* x, const double* w,
                                             const int* labels, const long long* order,
                                             long long m, int d, long long rows_per_block,
                                             double* sums, double* counts) {
    sum_sorted<double>(x, w, labels, order, m, d, rows_per_block, sums, counts);
}
"""

KERNEL_NAMES = (
    "assign_certified_float",
    "assign_certified_double",
    "sum_shared_float",
    "sum_shared_double",
    "sum_sorted_float",
    "sum_sorted_double",
    "split_for_tf32_float",
)

_ASSIGN_THREADS = 256  # 8 rows (warps) per block
_SPLIT_THREADS = 256
# Shared-memory accumulators: at most this many bytes per block (the default limit, no opt-in).
_SHARED_BYTES = 48 * 1024
_SHARED_THREADS = 256
_SHARED_ROWS_PER_BLOCK = 4096
_SORTED_ROWS_PER_BLOCK = 256

_module: cupy.RawModule | None = None


def _kernel(name: str, dtype: np.dtype) -> cupy.RawKernel:
    global _module
    if _module is None:
        _module = cupy.RawModule(code=KERNEL_SOURCE, options=("--std=c++14",))
    suffix = "float" if np.dtype(dtype) == np.float32 else "double"
    return _module.get_function(f"{name}_{suffix}")


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
    """``_certified.CertifiedAssign`` with the block's scores reduced by one fused kernel.

    One cuBLAS GEMM per block ("tf32x3": of the rows split by one more kernel, K = 3d, in
    TF32), then one pass over its (m, k) products that finds each row's
    best and second-best scores and ‖x‖²; the warp of an ambiguous row rescores it on the spot
    against only the centers that could beat its best (those within the bound of it, usually
    two or three), from the differences themselves in float64 — so even many ambiguous rows
    (TF32 products leave 8–19 % while clusters are split) cost little, and no flag is read back
    to the host. Labels are int32.
    """

    def __init__(self, centers: cupy.ndarray, *, xp: ModuleType, precision: str = "highest"):
        super().__init__(centers, xp=xp, precision=precision)
        self.precision = precision
        self.c_sq_contiguous = cupy.ascontiguousarray(self.c_sq)
        self.centers_wide_contiguous = cupy.ascontiguousarray(self.centers_wide, cupy.float64)

    def __call__(self, X_block: cupy.ndarray) -> tuple[cupy.ndarray, cupy.ndarray]:
        X_block = cupy.ascontiguousarray(X_block)
        m, d = X_block.shape
        k = self.c_sq.shape[0]
        dtype = X_block.dtype
        with X_block.device:
            labels = cupy.empty(m, dtype=cupy.int32)
            partial = cupy.empty(m, dtype=dtype)
            if m == 0:  # a launch with an empty grid is an error
                return labels, partial
            with matmul_precision(dtype, self.precision):
                rows = split_for_tf32(X_block, tail_at=2) if self.split else X_block
                products = cupy.matmul(rows, self.neg2_centers_t)
            grid = (m * 32 + _ASSIGN_THREADS - 1) // _ASSIGN_THREADS
            _kernel("assign_certified", dtype)(
                (grid,),
                (_ASSIGN_THREADS,),
                (
                    products, self.c_sq_contiguous, X_block, self.centers_wide_contiguous,
                    np.int64(m), np.int32(k), np.int32(d), dtype.type(self.a),
                    dtype.type(self.b), np.int32(self.certify and k > 1), labels, partial,
                ),
            )  # fmt: skip
        return labels, partial


def split_for_tf32(A: cupy.ndarray, *, tail_at: int) -> cupy.ndarray:
    """``_certified.split_for_tf32`` for a contiguous float32 (m, d) array, in one kernel: the
    head keeps 10 mantissa bits (cleared, not rounded), which the bound allows."""
    m, d = A.shape
    out = cupy.empty((m, 3 * d), dtype=cupy.float32)
    total = m * d
    if total:
        grid = (total + _SPLIT_THREADS - 1) // _SPLIT_THREADS
        _kernel("split_for_tf32", np.float32)(
            (grid,), (_SPLIT_THREADS,), (A, np.int64(m), np.int32(d), np.int32(tail_at), out)
        )
    return out


def segment_sum(
    X_block: cupy.ndarray,
    labels: cupy.ndarray,
    weights: cupy.ndarray,
    n_clusters: int,
    *,
    xp: ModuleType,
) -> tuple[cupy.ndarray, cupy.ndarray]:
    """``_primitives.segment_sum`` on the device, in float64.

    When k·(d+1) float64 accumulators fit in 48 KiB of shared memory, each thread block sums
    its rows privately and adds the result once; otherwise rows are visited in label order
    (``cupy.argsort``, CUB's radix sort) so each block adds one partial sum per run of equal
    labels. Either way few atomic additions meet on one address. The order of additions varies
    between launches, so the last bits of a sum may too.
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
        shared_bytes = 8 * n_clusters * (d + 1)
        if shared_bytes <= _SHARED_BYTES:
            grid = (m + _SHARED_ROWS_PER_BLOCK - 1) // _SHARED_ROWS_PER_BLOCK
            _kernel("sum_shared", dtype)(
                (grid,),
                (_SHARED_THREADS,),
                (
                    X_block, weights, labels, np.int64(m), np.int32(d), np.int32(n_clusters),
                    np.int64(_SHARED_ROWS_PER_BLOCK), sums, counts,
                ),
                shared_mem=shared_bytes,
            )  # fmt: skip
        else:
            order = cupy.argsort(labels).astype(cupy.int64, copy=False)
            grid = (m + _SORTED_ROWS_PER_BLOCK - 1) // _SORTED_ROWS_PER_BLOCK
            threads = min(128, 32 * ((d + 31) // 32))
            _kernel("sum_sorted", dtype)(
                (grid,),
                (threads,),
                (
                    X_block, weights, labels, order, np.int64(m), np.int32(d),
                    np.int64(_SORTED_ROWS_PER_BLOCK), sums, counts,
                ),
            )  # fmt: skip
    return sums, counts
