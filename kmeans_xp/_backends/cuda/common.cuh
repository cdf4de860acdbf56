// Helpers that every kmeans_xp CUDA source includes (each source is its own compilation unit).
// Compiled by NVRTC through CuPy, and on the CPU by the tests' emulator: no host headers.
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
