#include "common.cuh"

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
