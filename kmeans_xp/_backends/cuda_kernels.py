"""The CUDA kernels of the CuPy backend, as source text, and how each is launched.

Nothing here imports CuPy: ``_cupy.py`` compiles ``KERNEL_SOURCE`` (and the tensor-core kernels'
``MMA_SOURCE``) with NVRTC (through ``cupy.RawModule``) and launches them; the tests compile
the same text with NVRTC where it is installed, and run it on the CPU with
``tests/cuda_emulator.py`` wherever g++ is, with the launch sizes and arguments computed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core.certified import TENSOR_CORE_PRECISIONS

# Helpers both CUDA sources use (each is its own compilation unit).
_COMMON_SOURCE = r"""
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

"""

_KERNELS_BODY = r"""
// 16 bytes of T (float4, double2): a quarter (a half) as many load instructions as one value at
// a time, and four times the bytes in flight per load.
template <typename T> struct Vector16;
template <> struct Vector16<float> {
    typedef float4 type;
    enum { size = 4 };
};
template <> struct Vector16<double> {
    typedef double2 type;
    enum { size = 2 };
};
__device__ __forceinline__ void unpack(const float4& v, float* out) {
    out[0] = v.x;
    out[1] = v.y;
    out[2] = v.z;
    out[3] = v.w;
}
__device__ __forceinline__ void unpack(const double2& v, double* out) {
    out[0] = v.x;
    out[1] = v.y;
}

// The sum of v over the warp, the same value in every lane (lane 0's, broadcast: butterfly sums
// may round differently from lane to lane). Every lane must call it.
__device__ __forceinline__ double warp_total(double v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    return __shfl_sync(0xffffffffu, v, 0);
}

// One warp per row. Each lane keeps the best two scores of columns lane, lane + 32, ... (with
// `vector`: of the 16-byte words lane, lane + 32, ..., each 4 floats or 2 doubles, so a warp's
// load is 512 bytes and more of the products are in flight: the pass is bound by reading them);
// five shuffles merge them: the best score (lowest index on ties) and the second-best. If the
// two are within the error bound 2(a|x| + b) (see kmeans_xp/_certified.py), the row is
// ambiguous and the same warp scores it exactly: only centers whose score is within the bound
// of the best can be nearer, and their squared distances are formed from the differences in
// float64. No flag goes back to the host, so the next block's work is queued without waiting.
template <typename T>
__device__ void assign_certified(const T* __restrict__ products, const T* __restrict__ c_sq,
                                 const T* __restrict__ x, const double* __restrict__ centers,
                                 long long m, int k, int d, T a, T b, int certify, int vector,
                                 int* __restrict__ labels, T* __restrict__ partial) {
    const long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= m) return;  // the whole warp leaves together: all its lanes share `row`
    const T* s = products + row * (long long)k;
    const T* xr = x + row * (long long)d;
    T best = infinity<T>(), second = infinity<T>();
    int best_j = 0x7fffffff;
    // Unrolled so that each lane has several loads in flight: the products are read once, at
    // the speed of memory only with enough of them outstanding.
    if (vector) {  // k a multiple of the word's values, products and c_sq 16-byte aligned
        typedef typename Vector16<T>::type V;
        const int N = Vector16<T>::size;
        const V* s_words = (const V*)s;
        const V* c_words = (const V*)c_sq;
#pragma unroll 2
        for (int q = lane; q < k / N; q += 32) {
            T v[N], c[N];
            unpack(s_words[q], v);
            unpack(c_words[q], c);
#pragma unroll
            for (int i = 0; i < N; ++i) keep_two(v[i] + c[i], q * N + i, best, best_j, second);
        }
    } else {
#pragma unroll 4
        for (int j = lane; j < k; j += 32) keep_two(s[j] + c_sq[j], j, best, best_j, second);
    }
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
    // The warp scores the row's candidates one at a time, its lanes on the features (their
    // loads in flight together, then shuffles): with each lane walking all d features of its
    // own candidates (and of |x|^2) alone, one dependent load after another, the rows TF32
    // leaves ambiguous (14 % at 1 M x 128 -> 1024) cost "high" about a millisecond a pass on an
    // H200 (this kernel took 2.82 ms there in "high", 1.75 in float32 products in an earlier
    // run; the cause is read from the source, not measured).
    // Candidates in increasing index, the strictly nearer kept: ties go to the lowest index.
    // 3 bounds rather than 2: room for the rounding of the scores themselves (a superset of the
    // candidates costs a few more exact distances, never a wrong label).
    double part = 0.0;
#pragma unroll 4
    for (int f = lane; f < d; f += 32) part += (double)xr[f] * (double)xr[f];
    const double exact_x_sq = warp_total(part);
    const double threshold = (double)best + 3.0 * ((double)a * sqrt(exact_x_sq) + (double)b);
    double nearest = infinity<double>();
    int nearest_j = 0x7fffffff;
    for (int j0 = 0; j0 < k; j0 += 32) {
        const int j = j0 + lane;
        const bool candidate = j < k && (double)(s[j] + c_sq[j]) <= threshold;
        for (unsigned left = __ballot_sync(0xffffffffu, candidate); left; left &= left - 1) {
            const int jj = j0 + __ffs(left) - 1;
            const double* c = centers + (long long)jj * d;
            double sq = 0.0;
#pragma unroll 4
            for (int f = lane; f < d; f += 32) {
                const double diff = (double)xr[f] - c[f];
                sq += diff * diff;
            }
            const double dist = warp_total(sq);
            if (dist < nearest) {
                nearest = dist;
                nearest_j = jj;
            }
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
                                                  int certify, int vector, int* labels,
                                                  float* partial) {
    assign_certified<float>(products, c_sq, x, centers, m, k, d, a, b, certify, vector, labels,
                            partial);
}

extern "C" __global__ void assign_certified_double(const double* products, const double* c_sq,
                                                   const double* x, const double* centers,
                                                   long long m, int k, int d, double a,
                                                   double b, int certify, int vector,
                                                   int* labels, double* partial) {
    assign_certified<double>(products, c_sq, x, centers, m, k, d, a, b, certify, vector, labels,
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

// A row of X into registers, `offset` (in shared memory, zero past d) subtracted and zeros past
// d. With `vector` (d a multiple of 16 / sizeof(T) and the row 16-byte aligned), 16-byte loads:
// a thread reads its own row, so a warp's load touches 32 rows, and four times fewer loads mean
// four times fewer of those scattered accesses.
template <int D>
__device__ __forceinline__ void load_row(float* xr, const float* __restrict__ src, int d,
                                         const float* so, bool vector) {
    if (vector) {
#pragma unroll
        for (int q = 0; q < D / 4; ++q) {
            const float4 v = 4 * q < d ? ((const float4*)src)[q] : make_float4(0.f, 0.f, 0.f, 0.f);
            xr[4 * q] = v.x - so[4 * q];
            xr[4 * q + 1] = v.y - so[4 * q + 1];
            xr[4 * q + 2] = v.z - so[4 * q + 2];
            xr[4 * q + 3] = v.w - so[4 * q + 3];
        }
    } else {
#pragma unroll
        for (int f = 0; f < D; ++f) xr[f] = f < d ? src[f] - so[f] : 0.f;
    }
}

template <int D>
__device__ __forceinline__ void load_row(double* xr, const double* __restrict__ src, int d,
                                         const double* so, bool vector) {
    if (vector) {
#pragma unroll
        for (int q = 0; q < D / 2; ++q) {
            const double2 v = 2 * q < d ? ((const double2*)src)[q] : make_double2(0.0, 0.0);
            xr[2 * q] = v.x - so[2 * q];
            xr[2 * q + 1] = v.y - so[2 * q + 1];
        }
    } else {
#pragma unroll
        for (int f = 0; f < D; ++f) xr[f] = f < d ? src[f] - so[f] : 0.0;
    }
}

// A Lloyd pass for small k*d in one kernel, so nothing n*k long reaches device memory. The
// centers, padded with zeros to D features, and `offset` sit in shared memory; each thread takes
// R rows of X into registers with `offset` subtracted and scores every center in X's dtype (a
// dot product of d terms: the "highest" bound of kmeans_xp/_certified.py holds in any order,
// FMA or not), keeping each row's best (lowest index on ties) and second-best score. Each
// center is read from shared memory 16 bytes at a time and each value serves R rows: with one
// 4-byte load per multiply-add (R = 1, scalar loads) the shared-memory pipe, not the arithmetic,
// set the pace. An ambiguous row (best two within 2(a|x| + b)) is scored again by its thread
// against every center, from the differences in float64. With `count_changed`, labels that
// differ from those already in `labels` are counted into `n_changed`. Tiles of R * blockDim
// rows (thread t takes rows t, t + blockDim, ...) are visited grid-stride.
//
// With `accumulate`, each tile is then added into per-cluster float64 sums in shared memory:
// the tile's rows are first grouped by label (a counting sort in shared memory), then each warp
// walks 32 * R grouped rows with its lanes on the features (coalesced reads of each row), keeps
// running sums in registers and adds them into the block's sums once per run of one label —
// far fewer shared-memory atomics (a compare-and-swap loop for doubles) than one per element,
// and the warps' runs rarely share a label. The block adds its sums to `sums` and `counts` once
// at the end.
//
// Shared memory (bytes, as small_pass() computes them): k*D + k + D values of T (centers, |c|^2,
// offset), then, from the next multiple of 8, when accumulating: k*(d + 1) doubles (sums,
// counts), R * blockDim ints (the tile's labels), k ints (each label's next position) and
// R * blockDim ints (the tile's rows grouped by label).
#define SUM_BATCH 4
template <typename T, int D, int R>
__device__ void lloyd_pass_small(const T* __restrict__ x, const T* __restrict__ offset,
                                 long long m, int d, const T* __restrict__ centers,
                                 const T* __restrict__ c_sq,
                                 const double* __restrict__ centers_wide, int k, T a, T b,
                                 int certify, const T* __restrict__ w, int accumulate,
                                 int count_changed, int vector_rows, int* __restrict__ labels,
                                 T* __restrict__ partial, unsigned long long* n_changed,
                                 double* sums, double* counts) {
    typedef typename Vector16<T>::type V;
    const int N = Vector16<T>::size;
    extern __shared__ __align__(16) double shared_memory[];
    unsigned char* base = (unsigned char*)shared_memory;
    T* sc = (T*)base;  // 16-byte aligned, and so is each center: D * sizeof(T) is a multiple
    T* sc_sq = sc + k * D;
    T* so = sc_sq + k;
    double* acc = (double*)(base + ((((long long)k * D + k + D) * sizeof(T) + 7) & ~7LL));
    const int n_acc = accumulate ? k * (d + 1) : 0;
    const int tile_rows = R * blockDim.x;
    int* tile_labels = (int*)(acc + n_acc);
    int* label_next = tile_labels + tile_rows;
    int* tile_order = label_next + k;
    for (int i = threadIdx.x; i < k * D; i += blockDim.x) {
        const int j = i / D, f = i - j * D;
        sc[i] = f < d ? centers[(long long)j * d + f] : (T)0;
    }
    for (int j = threadIdx.x; j < k; j += blockDim.x) sc_sq[j] = c_sq[j];
    for (int f = threadIdx.x; f < D; f += blockDim.x) so[f] = f < d ? offset[f] : (T)0;
    for (int i = threadIdx.x; i < n_acc; i += blockDim.x) acc[i] = 0.0;
    __syncthreads();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long n_tiles = (m + tile_rows - 1) / tile_rows;
    for (long long tile = blockIdx.x; tile < n_tiles; tile += gridDim.x) {
        const long long first = tile * tile_rows;
        const int rows = (int)(m - first < (long long)tile_rows ? m - first : tile_rows);
        T xr[R][D];
        T best[R], second[R];
        int best_j[R];
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const long long row = first + r * blockDim.x + threadIdx.x;
            if (row < m) {
                load_row<D>(xr[r], x + row * d, d, so, vector_rows != 0);
            } else {  // scored with the others, never written
#pragma unroll
                for (int f = 0; f < D; ++f) xr[r][f] = (T)0;
            }
            best[r] = second[r] = infinity<T>();
            best_j[r] = 0x7fffffff;
        }
        for (int j = 0; j < k; ++j) {
            const V* c = (const V*)(sc + j * D);
            T dot[R][4];  // four chains per row: FMAs in flight, not one waiting on another
#pragma unroll
            for (int r = 0; r < R; ++r) dot[r][0] = dot[r][1] = dot[r][2] = dot[r][3] = 0;
#pragma unroll
            for (int q = 0; q < D / N; ++q) {
                T cv[N];
                unpack(c[q], cv);
#pragma unroll
                for (int i = 0; i < N; ++i) {
                    const int f = q * N + i;
#pragma unroll
                    for (int r = 0; r < R; ++r) dot[r][f & 3] += xr[r][f] * cv[i];
                }
            }
#pragma unroll
            for (int r = 0; r < R; ++r)
                keep_two(sc_sq[j] - 2 * ((dot[r][0] + dot[r][1]) + (dot[r][2] + dot[r][3])), j,
                         best[r], best_j[r], second[r]);
        }
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const int slot = r * blockDim.x + threadIdx.x;
            const long long row = first + slot;
            bool changed = false;
            if (row < m) {
                int label = best_j[r];
                T p = best[r];
                T x_sq = 0;
#pragma unroll
                for (int f = 0; f < D; ++f) x_sq += xr[r][f] * xr[r][f];
                if (certify && (second[r] - best[r]) <= 2 * (a * sqrt(x_sq) + b)) {
                    double exact_x_sq = 0.0;
#pragma unroll
                    for (int f = 0; f < D; ++f) exact_x_sq += (double)xr[r][f] * (double)xr[r][f];
                    double nearest = infinity<double>();
                    for (int j = 0; j < k; ++j) {
                        const double* c = centers_wide + (long long)j * d;
                        double dist = 0.0;
#pragma unroll
                        for (int f = 0; f < D; ++f) {
                            if (f < d) {
                                const double diff = (double)xr[r][f] - c[f];
                                dist += diff * diff;
                            }
                        }
                        if (dist < nearest) {  // j rises: the lowest index wins ties
                            nearest = dist;
                            label = j;
                        }
                    }
                    p = (T)(nearest - exact_x_sq);  // |c|^2 - 2 x.c = |x - c|^2 - |x|^2
                }
                if (count_changed) changed = labels[row] != label;
                labels[row] = label;
                partial[row] = p;
                if (accumulate) tile_labels[slot] = label;
            }
            if (count_changed) {  // every lane gets here: the tile loop is block-uniform
                const unsigned changed_lanes = __ballot_sync(0xffffffffu, changed);
                if (lane == 0 && changed_lanes != 0)
                    atomicAdd(n_changed, (unsigned long long)__popc(changed_lanes));
            }
        }
        if (accumulate) {
            // Group the tile's rows by label: count, exclusive scan (warp 0), place.
            for (int j = threadIdx.x; j < k; j += blockDim.x) label_next[j] = 0;
            __syncthreads();  // the tile's labels are in, the counts zeroed
            for (int i = threadIdx.x; i < rows; i += blockDim.x)
                atomicAdd(&label_next[tile_labels[i]], 1);
            __syncthreads();
            if (warp == 0) {
                int carry = 0;
                for (int j0 = 0; j0 < k; j0 += 32) {
                    const int j = j0 + lane;
                    const int count = j < k ? label_next[j] : 0;
                    int inclusive = count;
                    for (int o = 1; o < 32; o <<= 1) {
                        const int below = __shfl_up_sync(0xffffffffu, inclusive, o);
                        if (lane >= o) inclusive += below;
                    }
                    if (j < k) label_next[j] = carry + inclusive - count;
                    carry += __shfl_sync(0xffffffffu, inclusive, 31);
                }
            }
            __syncthreads();
            for (int i = threadIdx.x; i < rows; i += blockDim.x)
                tile_order[atomicAdd(&label_next[tile_labels[i]], 1)] = i;
            __syncthreads();
            // Each warp: 32 * R grouped rows, lanes on features f = lane and lane + 32 (d <= 64).
            // SUM_BATCH rows' loads go out before their sums: a row's address comes from shared
            // memory and its values from L2, and one row at a time left the warp waiting on
            // that chain for every row. The sums take the rows in the same order as before.
            int current = -1;
            double s0 = 0.0, s1 = 0.0, weight = 0.0;
            const int lo = warp * 32 * R;
            const int hi = lo + 32 * R < rows ? lo + 32 * R : rows;
            for (int q0 = lo; q0 < hi; q0 += SUM_BATCH) {
                int label[SUM_BATCH];
                double wr[SUM_BATCH];
                T v0[SUM_BATCH], v1[SUM_BATCH];
#pragma unroll
                for (int u = 0; u < SUM_BATCH; ++u) {
                    label[u] = -1;
                    wr[u] = 0.0;
                    v0[u] = v1[u] = (T)0;
                    if (q0 + u < hi) {
                        const int i = tile_order[q0 + u];
                        label[u] = tile_labels[i];
                        wr[u] = (double)w[first + i];
                        const T* xq = x + (first + i) * d;
                        if (lane < d) v0[u] = xq[lane] - so[lane];
                        if (lane + 32 < d) v1[u] = xq[lane + 32] - so[lane + 32];
                    }
                }
#pragma unroll
                for (int u = 0; u < SUM_BATCH; ++u) {
                    if (q0 + u >= hi) continue;
                    if (label[u] != current) {
                        if (current >= 0) {
                            if (lane < d) atomicAdd(&acc[current * d + lane], s0);
                            if (lane + 32 < d) atomicAdd(&acc[current * d + lane + 32], s1);
                            if (lane == 0) atomicAdd(&acc[k * d + current], weight);
                        }
                        current = label[u];
                        s0 = s1 = weight = 0.0;
                    }
                    if (lane < d) s0 += wr[u] * (double)v0[u];
                    if (lane + 32 < d) s1 += wr[u] * (double)v1[u];
                    weight += wr[u];
                }
            }
            if (current >= 0) {
                if (lane < d) atomicAdd(&acc[current * d + lane], s0);
                if (lane + 32 < d) atomicAdd(&acc[current * d + lane + 32], s1);
                if (lane == 0) atomicAdd(&acc[k * d + current], weight);
            }
            __syncthreads();  // before the next tile overwrites the labels and the order
        }
    }
    for (int i = threadIdx.x; i < n_acc; i += blockDim.x) {
        const double v = acc[i];
        if (v == 0.0) continue;
        if (i < k * d) atomicAdd(&sums[i], v);
        else atomicAdd(&counts[i - k * d], v);
    }
}

// R = 2 rows a thread up to 16 features, else 1. Two rows of 64 values would not leave room in
// registers; double D = 32 took 168 (ptxas 13.0, sm_90), one block of 256 per SM instead of two.
// Float D = 32 (issue 4's shape B) took 128 registers with R = 2 and ran slower than R = 1 on an
// H200: 8.40 against 6.86 ms per Lloyd iteration at 10 M x 32 -> 64 (`python -m benchmarks gpu`,
// 2026-11-27; 8.75 the run before, 7.74 before R = 2 came in). No launch bound:
// __launch_bounds__(256, 2) made ptxas spill at float D = 32 (R = 2) and take more registers
// elsewhere. SMALL_PASS_ROWS in Python says the same (a test checks).
#define DEFINE_LLOYD_PASS_SMALL(T, SUFFIX, D, R)                                                \
    extern "C" __global__ void lloyd_pass_small_##SUFFIX##_##D(                                 \
        const T* x, const T* offset, long long m, int d, const T* centers, const T* c_sq,      \
        const double* centers_wide, int k, T a, T b, int certify, const T* w, int accumulate,  \
        int count_changed, int vector_rows, int* labels, T* partial,                            \
        unsigned long long* n_changed, double* sums, double* counts) {                          \
        lloyd_pass_small<T, D, R>(x, offset, m, d, centers, c_sq, centers_wide, k, a, b,       \
                                  certify, w, accumulate, count_changed, vector_rows, labels,  \
                                  partial, n_changed, sums, counts);                           \
    }
DEFINE_LLOYD_PASS_SMALL(float, float, 4, 2)
DEFINE_LLOYD_PASS_SMALL(float, float, 8, 2)
DEFINE_LLOYD_PASS_SMALL(float, float, 16, 2)
DEFINE_LLOYD_PASS_SMALL(float, float, 32, 1)
DEFINE_LLOYD_PASS_SMALL(float, float, 64, 1)
DEFINE_LLOYD_PASS_SMALL(double, double, 4, 2)
DEFINE_LLOYD_PASS_SMALL(double, double, 8, 2)
DEFINE_LLOYD_PASS_SMALL(double, double, 16, 2)
DEFINE_LLOYD_PASS_SMALL(double, double, 32, 1)
DEFINE_LLOYD_PASS_SMALL(double, double, 64, 1)

// One step of greedy k-means++ over all rows (kmeans_xp/_init.py's kmeans_plusplus_indices):
// the squared distances of each row (`offset` subtracted) to t <= KMEANSPP_MAX_TRIALS candidate
// rows of X, held in shared memory, written to trial_sq (m, t) unless it is null (then
// kmeanspp_update_from_x computes the winner's again), and each candidate's potential
// sum_i w_i min(closest_i, dist_i) added into `potentials`.
//
// A group of KMEANSPP_GROUP lanes per row, so a warp has 32 / KMEANSPP_GROUP rows in flight:
// lane `sub` of a group takes features sub, sub + G, ... and keeps its share of all t distances
// at once (t independent sums), then three butterfly shuffles inside the group give each of its
// lanes the t totals, and lane `sub` writes and accounts candidates sub and sub + G. With a
// whole warp per row (as before) each row cost five shuffles per candidate and one row's chain
// of loads at a time; a profile at 1 M x 128 took 0.90 ms a center where reading X takes 0.13.
// A group's loads are 8 consecutive values of its row: four rows make four full 32-byte
// sectors. Every lane keeps its candidates' potentials in registers across its rows; the block
// adds them up in shared memory and into `potentials` once.
//
// The feature loop is unrolled 4 times, and `offset` is read from shared memory:
// compiled with d unknown and not unrolled (SASS, sm_90, CUDA 13.0), each pass of the loop
// loaded one value of the row and one of `offset` from global memory and used them at once, so
// a warp had one load in flight and waited for it 16 times a row at d = 128 — consistent with
// the 0.88 ms a center measured on an H200 where reading X takes 0.13 (inferred; not counted).
// The additions keep their order (features sub, sub + G, ... per lane): the same sums.
//
// Shared memory: t * (blockDim / G) doubles, then t * d values of T, then d values of T.
#define KMEANSPP_MAX_TRIALS 16
#define KMEANSPP_GROUP 8
#define KMEANSPP_PER_LANE (KMEANSPP_MAX_TRIALS / KMEANSPP_GROUP)
// Threads a block (as _KMEANSPP_THREADS in Python). With the loop unrolled, ptxas (sm_90, CUDA
// 13.0) gave the float kernel 95 registers, two blocks of 256 on a multiprocessor; bounded to
// four blocks it takes 64, no spills, its four loads still issued together (SASS): 32 warps
// with 4 loads in flight each, against 32 warps with 1 before. The double kernel (124
// registers) is left unbounded.
#define KMEANSPP_THREADS 256

// The sum of v over a group's lanes, in every lane of the group (butterfly shuffles; every lane
// of the warp must call it). kmeanspp_trials and kmeanspp_update_from_x both sum a row's squared
// differences per lane over features sub, sub + G, ..., in that order, then by group_sum, so
// the winner's distance comes out the same from both.
template <typename T>
__device__ __forceinline__ T group_sum(T v) {
#pragma unroll
    for (int o = KMEANSPP_GROUP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// How kmeanspp_trials and kmeanspp_update_from_x walk the rows: each warp's lane groups take
// 32 / KMEANSPP_GROUP consecutive rows a step (group g of the warp: row first + g), grid-stride.
// The loop runs while the warp's first row is in range (warp-uniform, as the shuffles need).
struct GroupRowWalk {
    long long first, stride;
};
__device__ __forceinline__ GroupRowWalk group_row_walk() {
    const int warp = threadIdx.x >> 5, warps_per_block = blockDim.x >> 5;
    const int rows_per_warp = 32 / KMEANSPP_GROUP;
    return {((long long)blockIdx.x * warps_per_block + warp) * rows_per_warp,
            (long long)gridDim.x * warps_per_block * rows_per_warp};
}

// Pruning, from the triangle inequality (what Elkan's bounds do for Lloyd): where the rows'
// nearest centers are kept (`nearest`, the index in `chosen` of the center each row's `closest`
// came from, while the trial distances are kept too) and `gaps` holds each chosen center's
// squared distance to each candidate (kmeanspp_gaps), a row whose every candidate j has
// gaps[nearest * t + j] >= KMEANSPP_PRUNE * closest is not read: no candidate can come nearer
// than its nearest center, so each of its terms is w * closest and its trial distances are
// written as +inf (the update then leaves it) — what the full computation gives, bit for bit.
// Why 4.1 and not 4: distances here are the points' (x - offset in T) exact ones, up to the
// computed sums' relative error e (about (d / G + 5) * 2^-24 in float32). gap >= 4.1 * closest
// gives d(c, j) >= 2.0248 sqrt(closest) and d(x, c) <= sqrt(closest / (1 - e)), so
// d(x, j)^2 >= 1.05 * closest exactly, and its computed value exceeds closest for any e < 4 %.
#define KMEANSPP_PRUNE 4.1

template <typename T>
__device__ void kmeanspp_trials(const T* __restrict__ x, const T* __restrict__ offset,
                                long long m, int d, const long long* __restrict__ candidates,
                                int t, const double* __restrict__ closest,
                                const T* __restrict__ w, T* __restrict__ trial_sq,
                                double* potentials, const int* __restrict__ nearest,
                                const double* __restrict__ gaps) {
    extern __shared__ __align__(16) double shared_memory[];
    const int G = KMEANSPP_GROUP;
    const int groups_per_block = blockDim.x / G;
    const int group = threadIdx.x / G, sub = threadIdx.x % G;
    double* group_potential = shared_memory;  // [group][trial]
    T* c = (T*)(shared_memory + t * groups_per_block);
    T* offset_shared = c + t * d;
    for (int i = threadIdx.x; i < t * d; i += blockDim.x) {
        const int j = i / d, f = i - j * d;
        c[i] = x[candidates[j] * d + f] - offset[f];
    }
    for (int f = threadIdx.x; f < d; f += blockDim.x) offset_shared[f] = offset[f];
    __syncthreads();
    double potential[KMEANSPP_PER_LANE];
#pragma unroll
    for (int q = 0; q < KMEANSPP_PER_LANE; ++q) potential[q] = 0.0;
    // Groups past the end score nothing (the walk is warp-uniform: the shuffles need every lane).
    const GroupRowWalk walk = group_row_walk();
    for (long long first = walk.first; first < m; first += walk.stride) {
        const long long row = first + (threadIdx.x & 31) / G;
        const bool active = row < m;
        T s[KMEANSPP_MAX_TRIALS];
#pragma unroll
        for (int j = 0; j < KMEANSPP_MAX_TRIALS; ++j) s[j] = 0;
        double nearest_before = 0.0, wr = 0.0;
        if (active) {
            nearest_before = closest[row];
            wr = (double)w[row];
        }
        // Pruning (nearest non-null): a row is not read when every candidate is far from its
        // nearest center (the group's lanes check two candidates each, then agree).
        bool far = false;
        if (nearest != nullptr) {  // the same in every lane: the shuffle stays warp-wide
            int close_ones = active ? 0 : 1;
            if (active) {
                const double* g = gaps + (long long)nearest[row] * t;
                const double reach = KMEANSPP_PRUNE * nearest_before;
#pragma unroll
                for (int q = 0; q < KMEANSPP_PER_LANE; ++q) {
                    const int j = sub + q * G;
                    if (j < t) close_ones += g[j] >= reach ? 0 : 1;
                }
            }
            far = group_sum(close_ones) == 0;
        }
        if (active && !far) {
            const T* xr = x + row * d;
#pragma unroll 4
            for (int f = sub; f < d; f += G) {
                const T v = xr[f] - offset_shared[f];
#pragma unroll
                for (int j = 0; j < KMEANSPP_MAX_TRIALS; ++j) {
                    if (j < t) {
                        const T diff = v - c[j * d + f];
                        s[j] += diff * diff;
                    }
                }
            }
        }
        T mine[KMEANSPP_PER_LANE];
#pragma unroll
        for (int q = 0; q < KMEANSPP_PER_LANE; ++q) mine[q] = 0;
#pragma unroll
        for (int j = 0; j < KMEANSPP_MAX_TRIALS; ++j) {
            if (j < t) {  // t is the same in every lane: the shuffles stay warp-wide
                const T total = group_sum(s[j]);
                if (sub == j % G) mine[j / G] = total;
            }
        }
        if (active) {
#pragma unroll
            for (int q = 0; q < KMEANSPP_PER_LANE; ++q) {
                const int j = sub + q * G;
                if (j < t && far) {  // every candidate farther than the nearest center
                    if (trial_sq != nullptr) trial_sq[row * t + j] = infinity<T>();
                    potential[q] += wr * nearest_before;
                } else if (j < t) {
                    if (trial_sq != nullptr) trial_sq[row * t + j] = mine[q];
                    const double dist = (double)mine[q];
                    potential[q] += wr * (dist < nearest_before ? dist : nearest_before);
                }
            }
        }
    }
#pragma unroll
    for (int q = 0; q < KMEANSPP_PER_LANE; ++q) {
        const int j = sub + q * G;
        if (j < t) group_potential[group * t + j] = potential[q];
    }
    __syncthreads();
    for (int j = threadIdx.x; j < t; j += blockDim.x) {
        double total = 0.0;
        for (int g = 0; g < groups_per_block; ++g) total += group_potential[g * t + j];
        atomicAdd(&potentials[j], total);
    }
}

// gaps[c * t + j]: the squared distance, in float64, between chosen center c < n_chosen and
// candidate j, from their rows of X with `offset` subtracted in T (as kmeanspp_trials' points).
// A warp a pair (lanes on features, then shuffles), grid-stride: k * t pairs at most.
template <typename T>
__device__ void kmeanspp_gaps(const T* __restrict__ x, const T* __restrict__ offset, int d,
                              const long long* __restrict__ chosen, int n_chosen,
                              const long long* __restrict__ candidates, int t, double* gaps) {
    const int lane = threadIdx.x & 31;
    const long long pairs = (long long)n_chosen * t;
    const long long warps = ((long long)gridDim.x * blockDim.x) >> 5;
    for (long long i = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < pairs;
         i += warps) {  // warp-uniform
        const T* center = x + chosen[i / t] * d;
        const T* candidate = x + candidates[i % t] * d;
        double sum = 0.0;
        for (int f = lane; f < d; f += 32) {
            const T a = center[f] - offset[f], b = candidate[f] - offset[f];
            const double diff = (double)a - (double)b;
            sum += diff * diff;
        }
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (lane == 0) gaps[i] = sum;
    }
}

// The candidate of least potential (the first on ties, as argmin): the step's center.
__device__ __forceinline__ int least_potential(const double* __restrict__ potentials, int t) {
    int best = 0;
    for (int j = 1; j < t; ++j)
        if (potentials[j] < potentials[best]) best = j;
    return best;
}

// After kmeanspp_trials, when it kept the trial distances: the best candidate is written to
// *chosen and every row's nearest squared distance takes its trial distance where that is
// smaller. Rows grid-stride.
template <typename T>
__device__ void kmeanspp_update(long long m, int t, const T* __restrict__ trial_sq,
                                const double* __restrict__ potentials,
                                const long long* __restrict__ candidates,
                                double* __restrict__ closest, long long* chosen,
                                int* __restrict__ nearest, int index) {
    const int best = least_potential(potentials, t);
    if (blockIdx.x == 0 && threadIdx.x == 0) *chosen = candidates[best];
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < m; i += stride) {
        const double trial = (double)trial_sq[i * t + best];
        if (trial < closest[i]) {
            closest[i] = trial;
            if (nearest != nullptr) nearest[i] = index;
        }
    }
}

// The same update where the trial distances were not kept (trial_sq null in kmeanspp_trials:
// hundreds of millions of rows): the winner's distances are computed again from X, a group of
// KMEANSPP_GROUP lanes per row as in kmeanspp_trials, in the same order of additions — so the
// same values.
//
// Shared memory: d values of T (the winner's row, `offset` subtracted), then `offset` (d values).
// Its feature loop is unrolled and reads `offset` from shared memory, as kmeanspp_trials'.
template <typename T>
__device__ void kmeanspp_update_from_x(const T* __restrict__ x, const T* __restrict__ offset,
                                       long long m, int d, int t,
                                       const double* __restrict__ potentials,
                                       const long long* __restrict__ candidates,
                                       double* __restrict__ closest, long long* chosen) {
    extern __shared__ __align__(16) double shared_memory[];
    const int G = KMEANSPP_GROUP;
    T* c = (T*)shared_memory;
    T* offset_shared = c + d;
    const int best = least_potential(potentials, t);
    if (blockIdx.x == 0 && threadIdx.x == 0) *chosen = candidates[best];
    for (int f = threadIdx.x; f < d; f += blockDim.x) {
        c[f] = x[candidates[best] * d + f] - offset[f];
        offset_shared[f] = offset[f];
    }
    __syncthreads();
    const int sub = threadIdx.x % G;
    const GroupRowWalk walk = group_row_walk();
    for (long long first = walk.first; first < m; first += walk.stride) {
        const long long row = first + (threadIdx.x & 31) / G;
        T s = 0;
        if (row < m) {
            const T* xr = x + row * d;
#pragma unroll 4
            for (int f = sub; f < d; f += G) {
                const T diff = (xr[f] - offset_shared[f]) - c[f];
                s += diff * diff;
            }
        }
        s = group_sum(s);
        if (row < m && sub == 0 && (double)s < closest[row]) closest[row] = (double)s;
    }
}

// k-means++'s D²-sampling of a step's candidates on the device, in two launches with no n-long
// temporary (the standard version, kmeans_xp/_init.py's _sample_in_chunks, makes the increments
// and their cumulative sum in float64 and searches it: about ten small launches a center).
// Row i's increment is w_i (the first step: `weights_only`, D² still +inf) or w_i * closest_i,
// in float64 as there. The rows are cut into n_parts <= blockDim.x contiguous parts of part_rows
// rows (Python's kmeanspp_sample_parts), each part into one contiguous slice a thread.
// kmeanspp_sample_totals (a block a part) sums each slice in row order and scans the slices:
// the part's total. kmeanspp_sample_pick (a block a target u * total) scans the parts' totals
// and takes the first part whose cumulative total exceeds the target (the last if none), as
// _sample_in_chunks takes a chunk; inside it, the slices' sums again (bit for bit the same), and
// the first row of positive increment whose cumulative sum (its slice's start by the scan, plus
// its slice's running sum) exceeds the target's remainder — searchsorted's side "right", and a
// row of zero weight or zero D² is never picked, also where the scan's rounding leaves a slice's
// start above the previous slice's end. If no row qualifies (a remainder at the part's very end,
// which _sample_in_chunks keeps below the chunk's total), the part's last row of positive
// increment: the row that clamp gives; if every increment is zero, the part's last row, as the
// standard version's clip gives.
// The sums' order differs from a cumulative sum's, so a pick can differ from the standard
// version's only where u * total falls within rounding of a boundary between rows. Blocks of a
// power of two threads (block_min halves them).

template <typename T>
__device__ __forceinline__ double sample_increment(const T* __restrict__ w,
                                                   const double* __restrict__ closest,
                                                   long long i, int weights_only) {
    const double wi = (double)w[i];
    return weights_only ? wi : wi * closest[i];
}

// Inclusive prefix sums of one value a thread over the block (Hillis-Steele; `scratch`, one
// double a thread, is left holding them): the same order of additions at every launch.
__device__ double block_inclusive_scan(double v, double* scratch) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (unsigned o = 1; o < blockDim.x; o <<= 1) {
        const double before = threadIdx.x >= o ? scratch[threadIdx.x - o] : 0.0;
        __syncthreads();
        v = before + v;
        scratch[threadIdx.x] = v;
        __syncthreads();
    }
    return v;
}

// The smallest of one value a thread (blockDim.x a power of two), in every thread.
__device__ double block_min(double v, double* scratch) {
    __syncthreads();  // the scratch's last readers are done
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (unsigned o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o && scratch[threadIdx.x + o] < scratch[threadIdx.x])
            scratch[threadIdx.x] = scratch[threadIdx.x + o];
        __syncthreads();
    }
    return scratch[0];
}

// This thread's slice [a, b) of part `part` (rows part * part_rows on, the last part shorter).
struct Slice {
    long long a, b;
};
__device__ __forceinline__ Slice part_slice(long long m, long long part_rows, int part) {
    const long long first = (long long)part * part_rows;
    const long long last = first + part_rows < m ? first + part_rows : m;
    const long long per = (last - first + blockDim.x - 1) / blockDim.x;
    const long long a = first + threadIdx.x * per < last ? first + threadIdx.x * per : last;
    return {a, a + per < last ? a + per : last};
}

template <typename T>
__device__ double slice_sum(const T* __restrict__ w, const double* __restrict__ closest,
                            Slice slice, int weights_only) {
    double s = 0.0;
    for (long long i = slice.a; i < slice.b; ++i)
        s += sample_increment(w, closest, i, weights_only);
    return s;
}

// Shared memory: one double a thread.
template <typename T>
__device__ void kmeanspp_sample_totals(const T* __restrict__ w,
                                       const double* __restrict__ closest, long long m,
                                       long long part_rows, int weights_only, double* totals) {
    extern __shared__ __align__(16) double shared_memory[];
    const Slice slice = part_slice(m, part_rows, blockIdx.x);
    block_inclusive_scan(slice_sum(w, closest, slice, weights_only), shared_memory);
    if (threadIdx.x == 0) totals[blockIdx.x] = shared_memory[blockDim.x - 1];
}

// Shared memory: one double a thread, and one more.
template <typename T>
__device__ void kmeanspp_sample_pick(const T* __restrict__ w, const double* __restrict__ closest,
                                     long long m, long long part_rows, int n_parts,
                                     int weights_only, const double* __restrict__ totals,
                                     const double* __restrict__ uniforms, long long* picked) {
    extern __shared__ __align__(16) double shared_memory[];
    double* scratch = shared_memory;
    double* chosen_part = shared_memory + blockDim.x;
    const unsigned tid = threadIdx.x;
    const double end = block_inclusive_scan(tid < (unsigned)n_parts ? totals[tid] : 0.0, scratch);
    const double target = uniforms[blockIdx.x] * scratch[n_parts - 1];
    if (tid == 0) *chosen_part = (double)(n_parts - 1);
    __syncthreads();
    if (tid < (unsigned)n_parts && end > target && (tid == 0 || scratch[tid - 1] <= target))
        *chosen_part = (double)tid;  // at most one thread: the ends never decrease
    __syncthreads();
    const int part = (int)*chosen_part;
    const double inside = target - (scratch[part] - totals[part]);
    __syncthreads();  // the scratch is scanned again
    const Slice slice = part_slice(m, part_rows, part);
    block_inclusive_scan(slice_sum(w, closest, slice, weights_only), scratch);
    const double before = tid == 0 ? 0.0 : scratch[tid - 1];
    const double none = infinity<double>();
    double first = none, last_positive = -1.0, run = 0.0;
    for (long long i = slice.a; i < slice.b; ++i) {
        const double increment = sample_increment(w, closest, i, weights_only);
        run += increment;
        if (increment > 0.0) {
            last_positive = (double)i;
            if (first == none && before + run > inside) first = (double)i;
        }
    }
    first = block_min(first, scratch);
    last_positive = -block_min(-last_positive, scratch);
    if (tid == 0) {
        const long long part_last = (part + 1) * part_rows < m ? (part + 1) * part_rows - 1 : m - 1;
        picked[blockIdx.x] = first != none           ? (long long)first
                             : last_positive >= 0.0 ? (long long)last_positive
                                                    : part_last;
    }
}

extern "C" __global__ void __launch_bounds__(KMEANSPP_THREADS, 4)
    kmeanspp_trials_float(const float* x, const float* offset, long long m, int d,
                          const long long* candidates, int t, const double* closest,
                          const float* w, float* trial_sq, double* potentials,
                          const int* nearest, const double* gaps) {
    kmeanspp_trials<float>(x, offset, m, d, candidates, t, closest, w, trial_sq, potentials,
                           nearest, gaps);
}

extern "C" __global__ void kmeanspp_trials_double(const double* x, const double* offset,
                                                  long long m, int d,
                                                  const long long* candidates, int t,
                                                  const double* closest, const double* w,
                                                  double* trial_sq, double* potentials,
                                                  const int* nearest, const double* gaps) {
    kmeanspp_trials<double>(x, offset, m, d, candidates, t, closest, w, trial_sq, potentials,
                            nearest, gaps);
}

extern "C" __global__ void kmeanspp_update_float(long long m, int t, const float* trial_sq,
                                                 const double* potentials,
                                                 const long long* candidates, double* closest,
                                                 long long* chosen, int* nearest, int index) {
    kmeanspp_update<float>(m, t, trial_sq, potentials, candidates, closest, chosen, nearest,
                           index);
}

extern "C" __global__ void kmeanspp_update_double(long long m, int t, const double* trial_sq,
                                                  const double* potentials,
                                                  const long long* candidates, double* closest,
                                                  long long* chosen, int* nearest, int index) {
    kmeanspp_update<double>(m, t, trial_sq, potentials, candidates, closest, chosen, nearest,
                            index);
}

extern "C" __global__ void kmeanspp_gaps_float(const float* x, const float* offset, int d,
                                               const long long* chosen, int n_chosen,
                                               const long long* candidates, int t,
                                               double* gaps) {
    kmeanspp_gaps<float>(x, offset, d, chosen, n_chosen, candidates, t, gaps);
}

extern "C" __global__ void kmeanspp_gaps_double(const double* x, const double* offset, int d,
                                                const long long* chosen, int n_chosen,
                                                const long long* candidates, int t,
                                                double* gaps) {
    kmeanspp_gaps<double>(x, offset, d, chosen, n_chosen, candidates, t, gaps);
}

extern "C" __global__ void kmeanspp_update_from_x_float(const float* x, const float* offset,
                                                        long long m, int d, int t,
                                                        const double* potentials,
                                                        const long long* candidates,
                                                        double* closest, long long* chosen) {
    kmeanspp_update_from_x<float>(x, offset, m, d, t, potentials, candidates, closest, chosen);
}

extern "C" __global__ void kmeanspp_update_from_x_double(const double* x, const double* offset,
                                                         long long m, int d, int t,
                                                         const double* potentials,
                                                         const long long* candidates,
                                                         double* closest, long long* chosen) {
    kmeanspp_update_from_x<double>(x, offset, m, d, t, potentials, candidates, closest, chosen);
}

extern "C" __global__ void kmeanspp_sample_totals_float(const float* w, const double* closest,
                                                        long long m, long long part_rows,
                                                        int weights_only, double* totals) {
    kmeanspp_sample_totals<float>(w, closest, m, part_rows, weights_only, totals);
}

extern "C" __global__ void kmeanspp_sample_totals_double(const double* w, const double* closest,
                                                         long long m, long long part_rows,
                                                         int weights_only, double* totals) {
    kmeanspp_sample_totals<double>(w, closest, m, part_rows, weights_only, totals);
}

extern "C" __global__ void kmeanspp_sample_pick_float(const float* w, const double* closest,
                                                      long long m, long long part_rows,
                                                      int n_parts, int weights_only,
                                                      const double* totals,
                                                      const double* uniforms, long long* picked) {
    kmeanspp_sample_pick<float>(w, closest, m, part_rows, n_parts, weights_only, totals, uniforms,
                                picked);
}

extern "C" __global__ void kmeanspp_sample_pick_double(const double* w, const double* closest,
                                                       long long m, long long part_rows,
                                                       int n_parts, int weights_only,
                                                       const double* totals,
                                                       const double* uniforms,
                                                       long long* picked) {
    kmeanspp_sample_pick<double>(w, closest, m, part_rows, n_parts, weights_only, totals,
                                 uniforms, picked);
}

// Weighted per-cluster sums when k*(d+1) float64 accumulators fit in shared memory beside the
// block's row order: each block takes rows_per_block rows, groups them by label in shared memory
// (a counting sort: int atomics, which the hardware has), then each warp walks its share of the
// grouped rows with its lanes on the features, keeping running sums in registers and adding them
// into the block's accumulators once per run of one label (float64 adds in shared memory are a
// compare-and-swap loop on sm_90: one per element had set the pace), and the block adds its
// accumulators to the global sums once. The order of additions varies with the atomics.
//
// Shared memory: k*(d+1) doubles (sums, then counts), then k ints (each label's rows, then its
// next position) and rows_per_block ints (the block's rows, grouped by label).
template <typename T>
__device__ void sum_shared(const T* __restrict__ x, const T* __restrict__ w,
                           const int* __restrict__ labels, long long m, int d, int k,
                           long long rows_per_block, double* sums, double* counts) {
    // One name for dynamic shared memory in every kernel (tests/cuda_emulator.hpp needs it).
    extern __shared__ __align__(16) double shared_memory[];
    double* acc = shared_memory;
    int* next = (int*)(acc + k * (d + 1));
    int* order = next + k;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int n_acc = k * (d + 1);
    for (int i = threadIdx.x; i < n_acc; i += blockDim.x) acc[i] = 0.0;
    for (int j = threadIdx.x; j < k; j += blockDim.x) next[j] = 0;
    __syncthreads();
    const long long lo = (long long)blockIdx.x * rows_per_block;
    const int rows = (int)(lo + rows_per_block < m ? rows_per_block : m - lo);
    for (int p = threadIdx.x; p < rows; p += blockDim.x) atomicAdd(&next[labels[lo + p]], 1);
    __syncthreads();
    if (warp == 0) {  // each label's first position: an exclusive scan of the counts
        int carry = 0;
        for (int base = 0; base < k; base += 32) {
            const int count = base + lane < k ? next[base + lane] : 0;
            int inclusive = count;
            for (int offset = 1; offset < 32; offset <<= 1) {
                const int before = __shfl_up_sync(0xffffffffu, inclusive, offset);
                if (lane >= offset) inclusive += before;
            }
            if (base + lane < k) next[base + lane] = carry + inclusive - count;
            carry += __shfl_sync(0xffffffffu, inclusive, 31);
        }
    }
    __syncthreads();
    for (int p = threadIdx.x; p < rows; p += blockDim.x)
        order[atomicAdd(&next[labels[lo + p]], 1)] = p;
    __syncthreads();
    // Warp `warp` walks grouped positions [first, last): its runs of equal labels are whole
    // labels but for the two at its ends, so a block adds about k + warps runs in all.
    const int share = (rows + warps - 1) / warps;
    const int first = warp * share < rows ? warp * share : rows;
    const int last = first + share < rows ? first + share : rows;
    for (int f0 = 0; f0 < d; f0 += 32) {
        const int f = f0 + lane;
        int current = -1;
        double total = 0.0, weight = 0.0;
        for (int p = first; p < last; p += SUM_BATCH) {
            // SUM_BATCH rows' loads issued before their sums: a warp walks its rows one after
            // the other, so each row's loads would otherwise wait for the last's.
            int label[SUM_BATCH];
            double value[SUM_BATCH], wr[SUM_BATCH];
#pragma unroll
            for (int u = 0; u < SUM_BATCH; ++u) {
                label[u] = -1;
                if (p + u >= last) continue;
                const long long r = lo + order[p + u];
                label[u] = labels[r];  // the same in every lane: no divergence
                wr[u] = (double)w[r];
                value[u] = f < d ? (double)x[r * d + f] : 0.0;
            }
#pragma unroll
            for (int u = 0; u < SUM_BATCH; ++u) {
                if (label[u] < 0) break;
                if (label[u] != current) {
                    if (current >= 0) {
                        if (f < d) atomicAdd(&acc[current * d + f], total);
                        if (f0 == 0 && lane == 0) atomicAdd(&acc[k * d + current], weight);
                    }
                    current = label[u];
                    total = 0.0;
                    weight = 0.0;
                }
                total += wr[u] * value[u];
                weight += wr[u];
            }
        }
        if (current >= 0) {
            if (f < d) atomicAdd(&acc[current * d + f], total);
            if (f0 == 0 && lane == 0) atomicAdd(&acc[k * d + current], weight);
        }
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

// Weighted per-cluster sums over rows visited in label order (`order` groups the labels): each
// block first reads its run of `order` and those rows' labels and weights into shared memory
// (so the loop below waits on one load a row, not three in a chain), then each thread owns one
// feature of the run and adds a cluster's partial sum once per run of equal labels, so atomics
// are few and rarely meet on one address.
//
// Shared memory: rows_per_block doubles (weights), long longs (rows) and ints (labels).
template <typename T>
__device__ void sum_sorted(const T* __restrict__ x, const T* __restrict__ w,
                           const int* __restrict__ labels, const long long* __restrict__ order,
                           long long m, int d, long long rows_per_block, double* sums,
                           double* counts) {
    extern __shared__ __align__(16) double shared_memory[];
    double* run_w = shared_memory;
    long long* run_row = (long long*)(run_w + rows_per_block);
    int* run_label = (int*)(run_row + rows_per_block);
    const long long lo = (long long)blockIdx.x * rows_per_block;
    const int rows = (int)(lo + rows_per_block < m ? rows_per_block : m - lo);
    for (int p = threadIdx.x; p < rows; p += blockDim.x) {
        const long long r = order[lo + p];
        run_row[p] = r;
        run_label[p] = labels[r];
        run_w[p] = (double)w[r];
    }
    __syncthreads();
    for (int f = threadIdx.x; f < d; f += blockDim.x) {
        int current = -1;
        double total = 0.0, weight = 0.0;
        // SUM_BATCH rows' values loaded before they are added, in the same order: with the
        // label test and its atomics between them, the compiler had issued each load just
        // before its add (SASS, sm_90, CUDA 13.0: one load in flight per warp, 0.47 ms a pass
        // at 1 M x 128 -> 1024 on an H200 where reading X takes about 0.11).
        for (int p0 = 0; p0 < rows; p0 += SUM_BATCH) {
            T v[SUM_BATCH];
#pragma unroll
            for (int u = 0; u < SUM_BATCH; ++u)
                v[u] = p0 + u < rows ? x[run_row[p0 + u] * d + f] : T(0);
#pragma unroll
            for (int u = 0; u < SUM_BATCH; ++u) {
                const int p = p0 + u;
                if (p >= rows) break;
                const int label = run_label[p];
                if (label != current) {
                    if (current >= 0) {
                        atomicAdd(&sums[(long long)current * d + f], total);
                        if (f == 0) atomicAdd(&counts[current], weight);
                    }
                    current = label;
                    total = 0.0;
                    weight = 0.0;
                }
                const double wr = run_w[p];
                total += wr * (double)v[u];
                weight += wr;
            }
        }
        if (current >= 0) {
            atomicAdd(&sums[(long long)current * d + f], total);
            if (f == 0) atomicAdd(&counts[current], weight);
        }
    }
}

// Rows grouped by label without a sort (sum_sorted's `order`): label_count counts each label's
// rows; an exclusive scan of the counts (CuPy's cumsum) gives each label's first position;
// label_scatter puts each row at its label's next free position. Within a label, rows land in
// an order that varies between launches (atomics): only the order of the float64 additions
// changes. No host synchronisation (CuPy's argsort runs Thrust, which waits for the device).
extern "C" __global__ void label_count(const int* __restrict__ labels, long long m,
                                       unsigned long long* counts) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < m; i += stride)
        atomicAdd(&counts[labels[i]], 1ULL);
}

extern "C" __global__ void label_scatter(const int* __restrict__ labels, long long m,
                                         unsigned long long* next, long long* order) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < m; i += stride)
        order[atomicAdd(&next[labels[i]], 1ULL)] = i;
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

_MMA_BODY = r"""
// ---- The certified assignment with tensor-core (TF32) products, fused: no products in memory.
// A block of MMA_THREADS (8 warps) takes MMA_ROWS rows of X and scores them against the centers
// MMA_CENTERS at a time, the features MMA_DEPTH at a time through shared memory (zeros past m, k
// and d, which add nothing); warp w computes the 64 x 32 piece (rows 64 * (w & 1), centers
// 32 * (w >> 1)) of each 128 x 128 tile of x.c as 4 x 4 mma tiles of 16 x 8.
//
// Settling (RESCORE false, the block's rows of X): each lane keeps the best two scores
// |c|^2 - 2 x.c of the 8 rows its accumulators belong to; they are merged across lanes and
// warps, and a row whose best two are within the bound 2(a|x| + b) of kmeans_xp/_certified.py
// ("high" or "tf32x3") is listed, with the threshold best + 3(a|x| + b) beyond which no center
// can be its nearest, instead of being labelled. Rescoring (RESCORE true, the listed rows, their
// count read on the device): the same products again (the same operations in the same order, so
// the same scores), and each center within the row's threshold is scored exactly, from the
// differences in float64 (usually two or three a row: no pass over every center). Nothing is read
// back by the host.
//
// The operands are TF32 values cut from float32 by clearing 13 mantissa bits, so the products
// are the same on any card (and on the CPU emulator) and within the bound's input error: with
// SPLIT ("tf32x3") each value is split into head + tail, both cut to TF32, and three products
// are accumulated (head.head + head.tail + tail.head).
//
// Shared memory: X's tile [MMA_ROWS][MMA_STRIDE] and the centers' [MMA_CENTERS][MMA_STRIDE]
// (floats); then per row the index in X (long long, -1 past the rows) and the threshold
// (double); then the merge of the 4 column warps: per warp and row two floats (best and
// second-best) or one double (the nearest exact distance) and an int (its label); |x|^2 (float).
#define MMA_ROWS 128
#define MMA_CENTERS 128
#define MMA_DEPTH 32
// MMA_DEPTH + 4: a fragment load's 8 rows x 4 columns fall in 32 different banks.
#define MMA_STRIDE 36
#define MMA_THREADS 256
// Two blocks on a multiprocessor, so that one computes while the other waits for its tiles, need
// at most 128 registers a thread: ptxas (sm_90, CUDA 13.0) gives the settling "high" kernel 125
// registers unbounded, "tf32x3" 132 unbounded and 128 without spills when bounded (bounding
// "high" made it spill). The rescoring kernels run on few rows and are left unbounded.

__device__ __forceinline__ unsigned tf32_cut(float v) { return __float_as_uint(v) & 0xffffe000u; }
__device__ __forceinline__ float tf32_value(float v) { return __uint_as_float(tf32_cut(v)); }

// acc (16 x 8, float32) += A (16 x 8, rows) . B (8 x 8, columns), TF32 inputs. Fragments as the
// PTX ISA lays out mma.m16n8k8 with .tf32 (g = lane / 4, t = lane % 4): a = A[g][t], A[g+8][t],
// A[g][t+4], A[g+8][t+4]; b = B[t][g], B[t+4][g]; acc = C[g][2t], C[g][2t+1], C[g+8][2t],
// C[g+8][2t+1].
__device__ __forceinline__ void mma_tf32(float* acc, const unsigned* a, const unsigned* b) {
#if defined(CUDA_EMULATOR)
    emulated_mma_m16n8k8_tf32(acc, a, b);  // tests/cuda_emulator.hpp: the PTX ISA's semantics
#elif __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();  // no TF32 mma before sm_80; the host never launches assign_mma there
#endif
}

// Merge another lane's (or warp's) best two into these.
__device__ __forceinline__ void merge_two(float other_best, int other_j, float other_second,
                                          float& best, int& best_j, float& second) {
    keep_two(other_best, other_j, best, best_j, second);
    if (other_second < second) second = other_second;
}

// Keep the nearer of two exact distances (the lower index on ties).
__device__ __forceinline__ void keep_nearest(double dist, int j, double& nearest, int& nearest_j) {
    if (dist < nearest || (dist == nearest && j < nearest_j)) {
        nearest = dist;
        nearest_j = j;
    }
}

template <bool SPLIT, bool RESCORE>
__device__ void assign_mma(const float* __restrict__ x, const float* __restrict__ centers,
                           const float* __restrict__ c_sq, const double* __restrict__ centers_wide,
                           long long m, int k, int d, float a, float b, int certify,
                           int vector, int* __restrict__ labels, float* __restrict__ partial,
                           unsigned long long* n_listed, long long* __restrict__ listed,
                           double* __restrict__ listed_threshold) {
    extern __shared__ __align__(16) double shared_memory[];
    float* xs = (float*)shared_memory;
    float* cs = xs + MMA_ROWS * MMA_STRIDE;
    long long* tile_row = (long long*)(cs + MMA_CENTERS * MMA_STRIDE);
    double* tile_threshold = (double*)(tile_row + MMA_ROWS);
    float* warp_best = (float*)(tile_threshold + MMA_ROWS);  // or double warp_nearest[4][rows]
    float* warp_second = warp_best + 4 * MMA_ROWS;
    double* warp_nearest = (double*)warp_best;
    int* warp_label = (int*)(warp_second + 4 * MMA_ROWS);
    float* row_sq = (float*)(warp_label + 4 * MMA_ROWS);

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int warp_row = 64 * (warp & 1), warp_col = 32 * (warp >> 1);
    const long long first = (long long)blockIdx.x * MMA_ROWS;
    const long long rows = RESCORE ? (long long)*n_listed : m;
    // Rescoring sizes its grid for every row and leaves the blocks past the listed ones at
    // once; a settling grid has no block past m (and ptxas, sm_90, spilled the settling
    // "tf32x3" kernel at 128 registers with this test in it).
    if (RESCORE && first >= rows) return;
    for (int r = threadIdx.x; r < MMA_ROWS; r += MMA_THREADS) {
        const bool in = first + r < rows;
        tile_row[r] = !in ? -1 : RESCORE ? listed[first + r] : first + r;
        if (RESCORE) tile_threshold[r] = in ? listed_threshold[first + r] : 0.0;
    }
    // (the first tile's __syncthreads below makes these visible)

    // Rows of this lane: warp_row + 16 * i + g + 8 * h, kept at [2 * i + h]: the best two scores
    // (settling) or the nearest exact distance among the candidates (rescoring).
    float best[8], second[8];
    double nearest[8];
    int best_j[8];
#pragma unroll
    for (int s = 0; s < 8; ++s) {
        best[s] = second[s] = infinity<float>();
        nearest[s] = infinity<double>();
        best_j[s] = 0x7fffffff;
    }
    for (int c0 = 0; c0 < k; c0 += MMA_CENTERS) {
        float acc[4][4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;
        for (int f0 = 0; f0 < d; f0 += MMA_DEPTH) {
            __syncthreads();  // every warp is done with the previous tiles
            // Cut to TF32 once here, not in each of the warps that read a value ("high"); split
            // operands need the whole value for their tails.
            if (vector) {
                // 16 bytes a load (d a multiple of 4, rows 16-byte aligned): thread i copies
                // features f0 + 4 (i % 8) .. + 3 of tile rows i / 8, i / 8 + 32, ...
                const int f = f0 + 4 * (threadIdx.x & 7);
#pragma unroll
                for (int r = threadIdx.x >> 3; r < MMA_ROWS; r += MMA_THREADS / 8) {
                    const long long row = RESCORE ? tile_row[r] : first + r < m ? first + r : -1;
                    const int j = c0 + r;
                    const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
                    float4 xv = f < d && row >= 0 ? *(const float4*)(x + row * d + f) : zero;
                    float4 cv =
                        f < d && j < k ? *(const float4*)(centers + (long long)j * d + f) : zero;
                    if (!SPLIT) {
                        xv = make_float4(tf32_value(xv.x), tf32_value(xv.y), tf32_value(xv.z),
                                         tf32_value(xv.w));
                        cv = make_float4(tf32_value(cv.x), tf32_value(cv.y), tf32_value(cv.z),
                                         tf32_value(cv.w));
                    }
                    *(float4*)(xs + r * MMA_STRIDE + f - f0) = xv;
                    *(float4*)(cs + r * MMA_STRIDE + f - f0) = cv;
                }
            } else {
                // Thread (lane, warp) copies feature f0 + lane of tile rows warp, warp + 8, ...
                const int f = f0 + lane;
#pragma unroll 4
                for (int r = warp; r < MMA_ROWS; r += MMA_THREADS / 32) {
                    const long long row = RESCORE ? tile_row[r] : first + r < m ? first + r : -1;
                    const int j = c0 + r;
                    const float xv = f < d && row >= 0 ? x[row * d + f] : 0.f;
                    const float cv = f < d && j < k ? centers[(long long)j * d + f] : 0.f;
                    xs[r * MMA_STRIDE + lane] = SPLIT ? xv : tf32_value(xv);
                    cs[r * MMA_STRIDE + lane] = SPLIT ? cv : tf32_value(cv);
                }
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < MMA_DEPTH; kk += 8) {
                // The centers' fragments for all 4 column tiles, then one row tile at a time:
                // fewer registers live than with every fragment loaded first.
                unsigned b_head[4][2], b_tail[4][2];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const float* p = cs + (warp_col + 8 * j + g) * MMA_STRIDE + kk + t;
                    const float v[2] = {p[0], p[4]};
#pragma unroll
                    for (int q = 0; q < 2; ++q) {
                        b_head[j][q] = SPLIT ? tf32_cut(v[q]) : __float_as_uint(v[q]);
                        b_tail[j][q] = SPLIT ? tf32_cut(v[q] - __uint_as_float(b_head[j][q])) : 0u;
                    }
                }
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const float* p = xs + (warp_row + 16 * i + g) * MMA_STRIDE + kk + t;
                    const float v[4] = {p[0], p[8 * MMA_STRIDE], p[4], p[8 * MMA_STRIDE + 4]};
                    unsigned a_head[4], a_tail[4];
#pragma unroll
                    for (int q = 0; q < 4; ++q) {
                        a_head[q] = SPLIT ? tf32_cut(v[q]) : __float_as_uint(v[q]);
                        a_tail[q] = SPLIT ? tf32_cut(v[q] - __uint_as_float(a_head[q])) : 0u;
                    }
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        if (SPLIT) {  // the small terms first
                            mma_tf32(acc[i][j], a_tail, b_head[j]);
                            mma_tf32(acc[i][j], a_head, b_tail[j]);
                        }
                        mma_tf32(acc[i][j], a_head, b_head[j]);
                    }
                }
            }
        }
        // Scores of this lane's 8 rows x 8 centers of the tile.
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int q = 0; q < 2; ++q) {
                const int center = c0 + warp_col + 8 * j + 2 * t + q;
                if (center >= k) continue;
                const float norm = c_sq[center];
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const int s = 2 * i + h;
                        const float score = norm - 2.f * acc[i][j][2 * h + q];
                        if (!RESCORE) {
                            keep_two(score, center, best[s], best_j[s], second[s]);
                            continue;
                        }
                        const int r = warp_row + 16 * i + g + 8 * h;
                        const long long row = tile_row[r];
                        if (row < 0 || (double)score > tile_threshold[r]) continue;
                        const float* xr = x + row * d;
                        const double* cr = centers_wide + (long long)center * d;
                        double dist = 0.0;
                        for (int f = 0; f < d; ++f) {
                            const double diff = (double)xr[f] - cr[f];
                            dist += diff * diff;
                        }
                        keep_nearest(dist, center, nearest[s], best_j[s]);
                    }
            }
    }
    // The 4 lanes of a quad hold the same rows; then the 4 column warps, through shared memory.
#pragma unroll
    for (int s = 0; s < 8; ++s)
#pragma unroll
        for (int mask = 1; mask < 4; mask <<= 1) {
            const int other_j = __shfl_xor_sync(0xffffffffu, best_j[s], mask);
            if (RESCORE) {
                const double other = __shfl_xor_sync(0xffffffffu, nearest[s], mask);
                keep_nearest(other, other_j, nearest[s], best_j[s]);
            } else {
                const float other_best = __shfl_xor_sync(0xffffffffu, best[s], mask);
                const float other_second = __shfl_xor_sync(0xffffffffu, second[s], mask);
                merge_two(other_best, other_j, other_second, best[s], best_j[s], second[s]);
            }
        }
    __syncthreads();  // the tiles are no longer read
    if (t == 0) {
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int slot = (warp >> 1) * MMA_ROWS + warp_row + 16 * i + g + 8 * h;
                if (RESCORE) {
                    warp_nearest[slot] = nearest[2 * i + h];
                } else {
                    warp_best[slot] = best[2 * i + h];
                    warp_second[slot] = second[2 * i + h];
                }
                warp_label[slot] = best_j[2 * i + h];
            }
    }
    // |x|^2 of each row being settled (float32, as the bound allows), a warp per row, lanes on
    // the features.
    if (!RESCORE)
        for (int r = warp; r < MMA_ROWS; r += MMA_THREADS / 32) {
            const long long row = tile_row[r];
            float sq = 0.f;
            if (row >= 0)
                for (int f = lane; f < d; f += 32) sq += x[row * d + f] * x[row * d + f];
            for (int offset = 16; offset > 0; offset >>= 1)
                sq += __shfl_xor_sync(0xffffffffu, sq, offset);
            if (lane == 0) row_sq[r] = sq;
        }
    __syncthreads();
    if (threadIdx.x >= MMA_ROWS) return;  // whole warps: the first 4 take a row a thread
    const int r = threadIdx.x;
    const long long row = tile_row[r];
    if (RESCORE) {
        if (row < 0) return;
        double row_nearest = warp_nearest[r];
        int row_label = warp_label[r];
        for (int w = 1; w < 4; ++w)
            keep_nearest(warp_nearest[w * MMA_ROWS + r], warp_label[w * MMA_ROWS + r],
                         row_nearest, row_label);
        double x_sq = 0.0;
        for (int f = 0; f < d; ++f) x_sq += (double)x[row * d + f] * (double)x[row * d + f];
        labels[row] = row_label;
        partial[row] = (float)(row_nearest - x_sq);  // |c|^2 - 2 x.c = |x - c|^2 - |x|^2
        return;
    }
    float row_best = warp_best[r], row_second = warp_second[r];
    int row_label = warp_label[r];
    for (int w = 1; w < 4; ++w)
        merge_two(warp_best[w * MMA_ROWS + r], warp_label[w * MMA_ROWS + r],
                  warp_second[w * MMA_ROWS + r], row_best, row_label, row_second);
    const bool ambiguous =
        row >= 0 && certify && row_second - row_best <= 2.f * (a * sqrt(row_sq[r]) + b);
    // One atomic per warp reserves its ambiguous rows' places in the list (TF32 leaves 8-19 %
    // of rows ambiguous: one atomic each would queue on one address).
    const unsigned ambiguous_lanes = __ballot_sync(0xffffffffu, ambiguous);
    unsigned long long first_place = 0;
    if (lane == 0 && ambiguous_lanes)
        first_place = atomicAdd(n_listed, (unsigned long long)__popc(ambiguous_lanes));
    first_place = __shfl_sync(0xffffffffu, first_place, 0);
    if (ambiguous) {
        const unsigned long long at = first_place + __popc(ambiguous_lanes & ((1u << lane) - 1u));
        listed[at] = row;
        // 3 bounds rather than 2: room for the rounding of the scores themselves (a superset of
        // the candidates costs a few more exact distances, never a wrong label).
        const double bound = (double)a * sqrt((double)row_sq[r]) + (double)b;
        listed_threshold[at] = (double)row_best + 3.0 * bound;
    } else if (row >= 0) {
        labels[row] = row_label;
        partial[row] = row_best;
    }
}

#define DEFINE_ASSIGN_MMA(NAME, SPLIT, RESCORE, BOUNDS)                                        \
    extern "C" __global__ void BOUNDS NAME(                                                     \
        const float* x, const float* centers, const float* c_sq, const double* centers_wide,    \
        long long m, int k, int d, float a, float b, int certify, int vector, int* labels,      \
        float* partial, unsigned long long* n_listed, long long* listed,                        \
        double* listed_threshold) {                                                             \
        assign_mma<SPLIT, RESCORE>(x, centers, c_sq, centers_wide, m, k, d, a, b, certify,      \
                                   vector, labels, partial, n_listed, listed, listed_threshold); \
    }
#define NO_BOUNDS
DEFINE_ASSIGN_MMA(assign_mma_tf32, false, false, NO_BOUNDS)
DEFINE_ASSIGN_MMA(assign_mma_tf32x3, true, false, __launch_bounds__(MMA_THREADS, 2))
DEFINE_ASSIGN_MMA(rescore_mma_tf32, false, true, NO_BOUNDS)
DEFINE_ASSIGN_MMA(rescore_mma_tf32x3, true, true, NO_BOUNDS)
"""

KERNEL_SOURCE = _COMMON_SOURCE + _KERNELS_BODY
# The tensor-core kernels are a module of their own: they are new to every GPU this project has
# run on, and NVRTC compiles a module whole, so a card or compiler that refused them would
# otherwise take every other kernel down with them.
MMA_SOURCE = _COMMON_SOURCE + _MMA_BODY

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

# False sends every shape through cuBLAS; the benchmark's ``cupy:gemm`` compares the two.
use_small_pass = True
# False runs CuPy's k-means++ by the standard version (benchmarks.gpu_targets compares the two).
use_fused_kmeanspp = True
# False has CuPy's k-means++ draw its candidates as the standard version does (cumulative sums
# by CuPy's own operations) instead of kmeanspp_sample_*: benchmarks.gpu_targets times both.
use_fused_kmeanspp_sampling = True
# False reads every row of X at every k-means++ step (no pruning by the triangle inequality);
# benchmarks.gpu_targets times both.
use_kmeanspp_pruning = True
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
    ``_certified.CertifiedAssign`` whose centers gave the products (‖c‖², float64 centers,
    bound), with contiguous ``c_sq`` and ``centers_wide``."""
    m, d = X_block.shape
    k = products.shape[1]
    scalar = np.dtype(X_block.dtype).type
    vector = k % (16 // products.dtype.itemsize) == 0 and _aligned16(products, scorer.c_sq)
    arguments = (
        products, scorer.c_sq, X_block, scorer.centers_wide, np.int64(m), np.int32(k),
        np.int32(d), scalar(scorer.a), scalar(scorer.b), np.int32(scorer.certify and k > 1),
        np.int32(vector), labels, partial,
    )  # fmt: skip
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
    4 * (MMA_ROWS + MMA_CENTERS) * MMA_STRIDE + MMA_ROWS * (8 + 8) + 4 * MMA_ROWS * (8 + 4)
    + 4 * MMA_ROWS
)  # fmt: skip
# The lowest compute capability with TF32 mma (Ampere, sm_80).
MMA_MIN_COMPUTE_CAPABILITY = 80
# Off until a GPU run has checked the kernel on hardware and timed it against cuBLAS (the
# benchmark's ``cupy:high:mma`` / ``cupy:tf32x3:mma`` turn it on).
use_mma = False


def mma_applies(dtype: np.dtype, precision: str, compute_capability: int) -> bool:
    """Whether ``assign_mma`` scores blocks for this fit: float32 data, a tensor-core precision
    ("high" or "tf32x3"), a card with TF32 mma, and ``use_mma`` on."""
    return (
        use_mma
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
    thresholds. ``scorer`` is the ``_certified.CertifiedAssign`` of the centers (float32
    ``centers`` and ``c_sq``, float64 ``centers_wide``, the bound)."""
    m, d = X_block.shape
    k = scorer.centers.shape[0]
    vector = d % 4 == 0 and _aligned16(X_block, scorer.centers)  # 16-byte tile loads
    arguments = (
        X_block, scorer.centers, scorer.c_sq, scorer.centers_wide, np.int64(m), np.int32(k),
        np.int32(d), np.float32(scorer.a), np.float32(scorer.b),
        np.int32(scorer.certify and k > 1), np.int32(vector), labels, partial, n_listed, listed,
        listed_threshold,
    )  # fmt: skip
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
            X_block, weights, labels, np.int64(m), np.int32(d), np.int32(k), np.int64(rows),
            sums, counts,
        )  # fmt: skip
        shared = 8 * k * (d + 1) + 8 * k + 4 * rows
        return Launch(f"sum_shared_{suffix}", _blocks(m, rows), _SHARED_THREADS, arguments, shared)
    arguments = (
        X_block, weights, labels, order, np.int64(m), np.int32(d),
        np.int64(_SORTED_ROWS_PER_BLOCK), sums, counts,
    )  # fmt: skip
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
    ``use_small_pass`` off.

    Why: at small k·d the cuBLAS path is bound by memory, not arithmetic — its (m, k) products
    are written and read back, and X is read three times — while this kernel reads X once
    (twice from cache when it accumulates) and writes 8 bytes per row.
    """
    if not use_small_pass:
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
    plan: SmallPass, X_block, offset, centers, scorer, labels, partial, *,
    weights=None, sums=None, counts=None, n_changed=None, unused=None, multiprocessors: int,
) -> Launch:  # fmt: skip
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
        X_block, offset, np.int64(m), np.int32(d), centers, scorer.c_sq, scorer.centers_wide,
        np.int32(k), scalar(scorer.a), scalar(scorer.b), np.int32(scorer.certify and k > 1),
        weights if plan.accumulate else unused, np.int32(plan.accumulate),
        np.int32(count_changed), np.int32(vector_rows(X_block)), labels, partial,
        n_changed if count_changed else unused, sums if plan.accumulate else unused,
        counts if plan.accumulate else unused,
    )  # fmt: skip
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
    warps' potentials) fit a block's shared memory, and ``use_fused_kmeanspp`` is on."""
    fits = kmeanspp_shared_bytes(n_features, n_trials, dtype) <= SHARED_BYTES
    return use_fused_kmeanspp and fits and n_trials <= KMEANSPP_MAX_TRIALS


def _kmeanspp_grid(items: int, multiprocessors: int) -> int:
    return max(1, min(_blocks(items, _KMEANSPP_THREADS), _KMEANSPP_BLOCKS_PER_SM * multiprocessors))


def kmeanspp_trials_launch(
    X, offset, candidates, closest, weights, trial_sq, potentials, *, multiprocessors: int,
    nearest=None, gaps=None,
) -> Launch:  # fmt: skip
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
        X, offset, np.int64(m), np.int32(d), candidates, np.int32(t), closest, weights,
        trial_sq, potentials, *pruning,
    )  # fmt: skip
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
    """D²-sampling of a k-means++ step (``_init._sample_in_chunks`` with increments ``w`` when
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
        f"kmeanspp_sample_pick_{suffix}", uniforms.shape[0], threads,
        (*rows, np.int32(parts), flag, totals, uniforms, picked), 8 * (threads + 1),
    )  # fmt: skip
    return sums, pick


def kmeanspp_update_launch(
    trial_sq, potentials, candidates, closest, chosen, *, multiprocessors: int,
    nearest=None, index: int = 0,
) -> Launch:  # fmt: skip
    """``kmeanspp_update``: the best candidate into ``chosen`` (one int64), ``closest`` (n,)
    float64 lowered by its kept trial distances ``trial_sq`` (n, t), and where it is lowered
    ``nearest`` (n,) int32 set to ``index`` (the step), unless None."""
    m, t = trial_sq.shape
    arguments = (
        np.int64(m), np.int32(t), trial_sq, potentials, candidates, closest, chosen,
        NULL if nearest is None else nearest, np.int32(index),
    )  # fmt: skip
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
        X, offset, np.int64(m), np.int32(d), np.int32(t), potentials, candidates, closest, chosen
    )  # fmt: skip
    name = f"kmeanspp_update_from_x_{type_suffix(X.dtype)}"
    grid = _kmeanspp_grid(_KMEANSPP_GROUP * m, multiprocessors)
    return Launch(name, grid, _KMEANSPP_THREADS, arguments, 2 * d * X.dtype.itemsize)
