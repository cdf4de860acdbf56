#include "common.cuh"

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
    // own candidates (and of |x|^2) alone, one dependent load after another, the many rows TF32
    // leaves ambiguous would each wait on a chain of loads.
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
// registers; at D = 32 two rows take so many registers (double: one block of 256 per SM instead
// of two; float: 128) that one row a thread runs faster (benchmarks/RESULTS.md). No launch bound:
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

// One step of greedy k-means++ over all rows (kmeans_xp/_algorithms/init.py's kmeans_plusplus_indices):
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
// of loads at a time, several times slower than reading X.
// A group's loads are 8 consecutive values of its row: four rows make four full 32-byte
// sectors. Every lane keeps its candidates' potentials in registers across its rows; the block
// adds them up in shared memory and into `potentials` once.
//
// The feature loop is unrolled 4 times, and `offset` is read from shared memory:
// compiled with d unknown and not unrolled (SASS, sm_90, CUDA 13.0), each pass of the loop
// loaded one value of the row and one of `offset` from global memory and used them at once, so
// a warp had one load in flight and waited for it d / 8 times a row.
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
// temporary (the standard version, kmeans_xp/_core/seeding.py's sample_in_chunks, makes the increments
// and their cumulative sum in float64 and searches it: about ten small launches a center).
// Row i's increment is w_i (the first step: `weights_only`, D² still +inf) or w_i * closest_i,
// in float64 as there. The rows are cut into n_parts <= blockDim.x contiguous parts of part_rows
// rows (Python's kmeanspp_sample_parts), each part into one contiguous slice a thread.
// kmeanspp_sample_totals (a block a part) sums each slice in row order and scans the slices:
// the part's total. kmeanspp_sample_pick (a block a target u * total) scans the parts' totals
// and takes the first part whose cumulative total exceeds the target (the last if none), as
// sample_in_chunks takes a chunk; inside it, the slices' sums again (bit for bit the same), and
// the first row of positive increment whose cumulative sum (its slice's start by the scan, plus
// its slice's running sum) exceeds the target's remainder — searchsorted's side "right", and a
// row of zero weight or zero D² is never picked, also where the scan's rounding leaves a slice's
// start above the previous slice's end. If no row qualifies (a remainder at the part's very end,
// which sample_in_chunks keeps below the chunk's total), the part's last row of positive
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
        // before its add (SASS, sm_90: one load in flight per warp, a pass several times slower
        // than reading X).
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
