// Runs CUDA kernels written for NVRTC on the CPU, one OS thread per CUDA thread, so their own
// sources (kmeans_xp/_backends/cuda_launch.py's KERNEL_SOURCE and MMA_SOURCE) are tested on
// machines without a GPU.
//
// What is emulated: threadIdx/blockIdx/blockDim/gridDim (x only), __syncthreads, the warp
// intrinsics __shfl_sync/__shfl_up_sync/__shfl_down_sync/__shfl_xor_sync/__ballot_sync (32 lanes
// meeting at a barrier), the TF32 mma.sync instruction (emulated_mma_m16n8k8_tf32, for kernels
// that test CUDA_EMULATOR), the 16-byte vector types float4/double2, atomicAdd
// (std::atomic_ref), dynamic shared memory (one `extern __shared__` buffer named
// `shared_memory`, filled with 0xff bytes before each block so reads of unset values show up
// as NaN), and the bit casts the kernels use. Blocks run one after another; the threads of a
// block run at once, so a missing __syncthreads can (not must) show up as a wrong result.
// Not emulated: FMA contraction (nvcc fuses a*b + c; g++ here does not), memory-model
// subtleties, __launch_bounds__ (ignored), and anything a kernel does not use.
// tests/cuda_emulator.py compiles it.
#pragma once

#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

using std::sqrt;

// Kernel source may ask whether it runs here (assign_mma's tensor-core instruction).
#define CUDA_EMULATOR 1

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

namespace emulator {

constexpr std::size_t kSharedBytes = 64 * 1024;

struct Warp {
    explicit Warp(int lanes) : lanes(lanes), meet(lanes) {}
    int lanes;
    std::barrier<> meet;
    alignas(8) unsigned char slot[32][8];
    unsigned fragments[32][6];  // each lane's A and B registers of one mma
};

struct Block {
    explicit Block(int threads) : meet(threads) {
        for (int w = 0; w < (threads + 31) / 32; ++w)
            warps.push_back(std::make_unique<Warp>(threads - 32 * w < 32 ? threads - 32 * w : 32));
    }
    std::barrier<> meet;
    std::vector<std::unique_ptr<Warp>> warps;
};

inline thread_local Block* current_block = nullptr;

}  // namespace emulator

struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) double2 {
    double x, y;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }

inline thread_local dim3 threadIdx;
inline dim3 blockIdx, blockDim, gridDim;
alignas(16) inline double shared_memory[emulator::kSharedBytes / sizeof(double)];

inline void __syncthreads() { emulator::current_block->meet.arrive_and_wait(); }

namespace emulator {

inline Warp& my_warp() { return *current_block->warps[threadIdx.x / 32]; }

// Every lane of the warp posts a value, then reads lane `source(lane)`'s (its own when out of
// range), then all meet again so no slot is overwritten before it was read.
template <typename T, typename Source>
T exchange(T v, Source source) {
    static_assert(sizeof(T) <= 8, "warp exchange of more than 8 bytes");
    Warp& warp = my_warp();
    const int lane = threadIdx.x % 32;
    std::memcpy(warp.slot[lane], &v, sizeof(T));
    warp.meet.arrive_and_wait();
    T out = v;
    const int from = source(lane);
    if (from >= 0 && from < warp.lanes) std::memcpy(&out, warp.slot[from], sizeof(T));
    warp.meet.arrive_and_wait();
    return out;
}

}  // namespace emulator

template <typename T>
T __shfl_down_sync(unsigned, T v, int delta) {
    return emulator::exchange(v, [delta](int lane) { return lane + delta; });
}

template <typename T>
T __shfl_up_sync(unsigned, T v, int delta) {
    return emulator::exchange(v, [delta](int lane) { return lane - delta; });
}

template <typename T>
T __shfl_xor_sync(unsigned, T v, int mask) {
    return emulator::exchange(v, [mask](int lane) { return lane ^ mask; });
}

template <typename T>
T __shfl_sync(unsigned, T v, int source) {
    return emulator::exchange(v, [source](int) { return source; });
}

inline unsigned __ballot_sync(unsigned, int predicate) {
    emulator::Warp& warp = emulator::my_warp();
    const int lane = threadIdx.x % 32;
    warp.slot[lane][0] = predicate ? 1 : 0;
    warp.meet.arrive_and_wait();
    unsigned bits = 0;
    for (int i = 0; i < warp.lanes; ++i) bits |= unsigned(warp.slot[i][0]) << i;
    warp.meet.arrive_and_wait();
    return bits;
}

inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __ffs(int v) { return __builtin_ffs(v); }  // 1 + the lowest set bit, 0 for 0

template <typename T>
T atomicAdd(T* address, T value) {
    return std::atomic_ref<T>(*address).fetch_add(value);
}

template <typename To, typename From>
To emulator_bit_cast(From v) {
    static_assert(sizeof(To) == sizeof(From));
    To out;
    std::memcpy(&out, &v, sizeof(To));
    return out;
}
inline float __int_as_float(int v) { return emulator_bit_cast<float>(v); }
inline float __uint_as_float(unsigned v) { return emulator_bit_cast<float>(v); }
inline unsigned __float_as_uint(float v) { return emulator_bit_cast<unsigned>(v); }
inline double __longlong_as_double(long long v) { return emulator_bit_cast<double>(v); }

inline void __trap() { std::abort(); }

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 as the PTX ISA defines it: acc (C, 16 x 8)
// += A (16 x 8) . B (8 x 8), with g = lane / 4, t = lane % 4 holding a = A[g][t], A[g+8][t],
// A[g][t+4], A[g+8][t+4], b = B[t][g], B[t+4][g] and acc = C[g][2t], C[g][2t+1], C[g+8][2t],
// C[g+8][2t+1]. Inputs are TF32 (the low 13 bits of each float are ignored); TF32 products are
// exact in float32, added in order of k here (a tensor core's order and rounding may differ).
// One exchange of all lanes' fragments, where a version by __shfl_sync would take 32.
inline void emulated_mma_m16n8k8_tf32(float* acc, const unsigned* a, const unsigned* b) {
    emulator::Warp& warp = emulator::my_warp();
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    std::memcpy(warp.fragments[lane], a, 4 * sizeof(unsigned));
    std::memcpy(warp.fragments[lane] + 4, b, 2 * sizeof(unsigned));
    warp.meet.arrive_and_wait();
    auto tf32 = [](unsigned v) { return __uint_as_float(v & 0xffffe000u); };
    for (int k = 0; k < 8; ++k) {
        const unsigned* a_from = warp.fragments[4 * g + k % 4];       // A[g][k], A[g+8][k]
        const unsigned* b0_from = warp.fragments[4 * (2 * t) + k % 4];  // B[k][2t]
        const unsigned* b1_from = warp.fragments[4 * (2 * t + 1) + k % 4];
        const float a_lo = tf32(a_from[k < 4 ? 0 : 2]), a_hi = tf32(a_from[k < 4 ? 1 : 3]);
        const float b_0 = tf32(b0_from[4 + (k < 4 ? 0 : 1)]);
        const float b_1 = tf32(b1_from[4 + (k < 4 ? 0 : 1)]);
        acc[0] += a_lo * b_0;
        acc[1] += a_lo * b_1;
        acc[2] += a_hi * b_0;
        acc[3] += a_hi * b_1;
    }
    warp.meet.arrive_and_wait();
}

namespace emulator {

template <typename... A, std::size_t... I>
void call_unpacked(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

// Ends the process when a launch runs for longer than `seconds` (a kernel whose threads wait at
// different barriers would otherwise hang the test run).
class Watchdog {
  public:
    explicit Watchdog(int seconds) : thread_([this, seconds] {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!done_cv_.wait_for(lock, std::chrono::seconds(seconds), [this] { return done_; })) {
            std::fprintf(stderr, "cuda_emulator: a launch ran for over %d s (deadlock?)\n", seconds);
            std::_Exit(3);
        }
    }) {}
    ~Watchdog() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            done_ = true;
        }
        done_cv_.notify_one();
        thread_.join();
    }

  private:
    std::mutex mutex_;
    std::condition_variable done_cv_;
    bool done_ = false;
    std::thread thread_;
};

// cuLaunchKernel's convention: args[i] points to the i-th argument. Returns 0, or 1 when the
// launch asks for more than the emulator can give.
template <typename... A>
int launch(void (*kernel)(A...), unsigned grid, unsigned threads, std::size_t shared_bytes,
           void** args) {
    if (shared_bytes > kSharedBytes || threads == 0 || threads > 1024) return 1;
    Watchdog watchdog(120);
    gridDim.x = grid;
    blockDim.x = threads;
    for (unsigned b = 0; b < grid; ++b) {
        blockIdx.x = b;
        std::memset(shared_memory, 0xff, sizeof(shared_memory));
        Block block{static_cast<int>(threads)};
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (unsigned t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                threadIdx.x = t;
                current_block = &block;
                call_unpacked(kernel, args, std::index_sequence_for<A...>{});
                // A thread that has returned no longer takes part in barriers (as on the GPU).
                my_warp().meet.arrive_and_drop();
                block.meet.arrive_and_drop();
            });
        }
        for (auto& thread : pool) thread.join();
    }
    return 0;
}

}  // namespace emulator

#define EMULATOR_EXPORT(name)                                                               \
    extern "C" int emulate_##name(unsigned grid, unsigned threads, std::size_t shared_bytes, \
                                  void** args) {                                            \
        return emulator::launch(name, grid, threads, shared_bytes, args);                   \
    }
