// cuda_runtime.h (CUDA emulator): the CUDA that the project's .cu files use, as host C++.
//
// `make CUDA=emu` compiles kernels/*/*.cu and src/*/*.cu with g++, with this folder
// first on the include path (so <cuda_runtime.h>, <mma.h> and <cub/...> are these
// files) and this header force-included, as nvcc does. No CUDA toolkit is needed.
// How it works and what it does not prove: docs/cuda-emulator.md.
//
// What is here, and nothing else:
//   keywords       __global__ __device__ __host__ __forceinline__ __launch_bounds__ __align__,
//                  __shared__ (a function-local static: blocks run one at a time), __CUDA_ARCH__ = 900
//   built-ins      threadIdx blockIdx blockDim gridDim warpSize, the vector types (vector_types.h)
//   barriers       __syncthreads, __syncthreads_count / _and / _or, __syncwarp
//   warp shuffles  __shfl_sync, __shfl_xor_sync, __shfl_down_sync, __shfl_up_sync
//   atomics        atomicAdd Sub Exch Min Max Inc Dec CAS And Or Xor on the usual types
//   math           <cmath>, the fast-math intrinsics (__expf, ...) as their exact versions,
//                  bit casts (__float_as_uint, ...), integer intrinsics (__popc, ...), min / max
//   runtime API    errors, devices (an sm_90 part, named as the emulator), memory (incl. the
//                  async allocator), memcpy / memset, streams and events (in order, host clock),
//                  function attributes
//   launches       ITTT_LAUNCH / ITTT_DYNAMIC_SHARED (runtime/cuda_launch.h) end up in launch() below
// Anything else a kernel uses fails to compile: either as an unknown name, or, for the
// CUDA features listed at the end of this file, with a message that says it is not emulated.
#pragma once

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "emulator.h"
#include "vector_types.h"

#define ITTT_CUDA_EMULATED 1

// ---------------------------------------------------------------- keywords

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// One static per kernel: correct because blocks run one at a time. (An `extern __shared__`
// array fails here with "conflicting specifiers": write ITTT_DYNAMIC_SHARED(type, name).)
#define __shared__ static
// The device code is compiled for an sm_90 part (gemm version 5's tensor-core path).
#define __CUDA_ARCH__ 900

// ---------------------------------------------------------------- barriers

namespace ittt::cuda_emu {

#ifdef ITTT_EMU_MUTANT_DROP_BARRIER_LINE
// The mutation test's seam: a build of one .cu file with -DITTT_EMU_MUTANT_DROP_BARRIER_LINE=L
// drops the barrier on line L of that file (not of the headers it includes); decided at
// compile time, so that barrier is compiled out.
constexpr bool same_string(const char* a, const char* b) {
    for (; *a != '\0' && *a == *b; ++a, ++b) {
    }
    return *a == *b;
}
constexpr bool barrier_dropped(const char* file, int line) {
    return line == ITTT_EMU_MUTANT_DROP_BARRIER_LINE && same_string(file, __BASE_FILE__);
}
#else
constexpr bool barrier_dropped(const char*, int) { return false; }
#endif

template <bool kDropped>
struct Barrier {
    static int run(BarrierKind kind, int predicate, Site site) { return block_barrier(kind, predicate, site); }
};
template <>
struct Barrier<true> {
    static int run(BarrierKind, int, Site site) {
        count_dropped_barrier(site.file, site.line);
        return 0;
    }
};

}  // namespace ittt::cuda_emu

// Macros (not functions) so that the mutant build can compile one of them out by file and line.
#define ITTT_EMU_BARRIER(kind, predicate)                                                                   \
    ::ittt::cuda_emu::Barrier<::ittt::cuda_emu::barrier_dropped(__FILE__, __LINE__)>::run(                  \
        ::ittt::cuda_emu::BarrierKind::kind, (predicate) ? 1 : 0, ::ittt::cuda_emu::Site{__FILE__, __LINE__})
#define __syncthreads() ((void)ITTT_EMU_BARRIER(Sync, 0))
#define __syncthreads_count(predicate) ITTT_EMU_BARRIER(Count, predicate)
#define __syncthreads_and(predicate) ITTT_EMU_BARRIER(And, predicate)
#define __syncthreads_or(predicate) ITTT_EMU_BARRIER(Or, predicate)

inline void __syncwarp(unsigned mask = 0xffffffffu, ittt::cuda_emu::Site site = ITTT_EMU_HERE) {
    ittt::cuda_emu::warp_shuffle(mask, 0, -1, "__syncwarp", site);
}

// ---------------------------------------------------------------- warp shuffles

namespace ittt::cuda_emu {

enum class ShuffleMode { Idx, Up, Down, Xor };

// The source lane of a shuffle, following PTX's shfl.sync: the warp splits into
// segments of `width` lanes; a source outside the caller's segment (past its end,
// or before its start for up) gives the caller its own value (returned as -1).
inline int shuffle_source(ShuffleMode mode, int lane, int b, int width) {
    const int segmask = ~(width - 1) & 31;
    const int clamp = mode == ShuffleMode::Up ? 0 : 31;
    const int min_lane = lane & segmask, max_lane = min_lane | (clamp & ~segmask);
    b &= 31;
    int j = lane;
    bool in_range = true;
    switch (mode) {
        case ShuffleMode::Up: j = lane - b, in_range = j >= max_lane; break;
        case ShuffleMode::Down: j = lane + b, in_range = j <= max_lane; break;
        case ShuffleMode::Xor: j = lane ^ b, in_range = j <= max_lane; break;
        case ShuffleMode::Idx: j = min_lane | (b & ~segmask), in_range = j <= max_lane; break;
    }
    return in_range ? j : -1;
}

template <class T>
T shuffle(ShuffleMode mode, unsigned mask, T var, int b, int width, const char* what, Site site) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "the emulated warp shuffles move values of up to 8 bytes");
    if (width <= 0 || width > 32 || (width & (width - 1)) != 0)
        fault(std::string(what) + ": width " + std::to_string(width) + " is not a power of two from 1 to 32", site);
    uint64_t bits = 0;
    std::memcpy(&bits, &var, sizeof(T));
    bits = warp_shuffle(mask, bits, shuffle_source(mode, lane_id(), b, width), what, site);
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}

}  // namespace ittt::cuda_emu

template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize, ittt::cuda_emu::Site site = ITTT_EMU_HERE) {
    return ittt::cuda_emu::shuffle(ittt::cuda_emu::ShuffleMode::Idx, mask, var, src_lane, width, "__shfl_sync", site);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, ittt::cuda_emu::Site site = ITTT_EMU_HERE) {
    return ittt::cuda_emu::shuffle(ittt::cuda_emu::ShuffleMode::Up, mask, var, static_cast<int>(delta), width, "__shfl_up_sync", site);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize, ittt::cuda_emu::Site site = ITTT_EMU_HERE) {
    return ittt::cuda_emu::shuffle(ittt::cuda_emu::ShuffleMode::Down, mask, var, static_cast<int>(delta), width, "__shfl_down_sync",
                                   site);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize, ittt::cuda_emu::Site site = ITTT_EMU_HERE) {
    return ittt::cuda_emu::shuffle(ittt::cuda_emu::ShuffleMode::Xor, mask, var, lane_mask, width, "__shfl_xor_sync", site);
}

// ---------------------------------------------------------------- atomics
// On host memory with GCC's __atomic builtins, relaxed like CUDA's atomics (and
// visible to ThreadSanitizer as atomics, not as races).

namespace ittt::cuda_emu {
template <class T, class F>
T atomic_update(T* address, F new_value) {  // compare-and-swap loop: returns the old value
    T old;
    __atomic_load(address, &old, __ATOMIC_RELAXED);
    T desired = new_value(old);
    while (!__atomic_compare_exchange(address, &old, &desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) desired = new_value(old);
    return old;
}
}  // namespace ittt::cuda_emu

inline float atomicAdd(float* a, float v) {
    return ittt::cuda_emu::atomic_update(a, [v](float old) { return old + v; });
}
inline double atomicAdd(double* a, double v) {
    return ittt::cuda_emu::atomic_update(a, [v](double old) { return old + v; });
}
inline float atomicExch(float* a, float v) {
    float old;
    __atomic_exchange(a, &v, &old, __ATOMIC_RELAXED);
    return old;
}

#define ITTT_EMU_INTEGER_ATOMICS(T)                                                                                       \
    inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }                                 \
    inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }                                 \
    inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }                               \
    inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }                                 \
    inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }                                   \
    inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }                                 \
    inline T atomicMin(T* a, T v) { return ittt::cuda_emu::atomic_update(a, [v](T old) { return v < old ? v : old; }); } \
    inline T atomicMax(T* a, T v) { return ittt::cuda_emu::atomic_update(a, [v](T old) { return v > old ? v : old; }); } \
    inline T atomicCAS(T* a, T compare, T v) {                                                                            \
        __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);                          \
        return compare;                                                                                                   \
    }
ITTT_EMU_INTEGER_ATOMICS(int)
ITTT_EMU_INTEGER_ATOMICS(unsigned int)
ITTT_EMU_INTEGER_ATOMICS(unsigned long long)
ITTT_EMU_INTEGER_ATOMICS(long long)
#undef ITTT_EMU_INTEGER_ATOMICS

// atomicInc / atomicDec: CUDA's wrap-around counters.
inline unsigned int atomicInc(unsigned int* a, unsigned int limit) {
    return ittt::cuda_emu::atomic_update(a, [limit](unsigned int old) { return old >= limit ? 0u : old + 1; });
}
inline unsigned int atomicDec(unsigned int* a, unsigned int limit) {
    return ittt::cuda_emu::atomic_update(a, [limit](unsigned int old) { return old == 0 || old > limit ? limit : old - 1; });
}

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---------------------------------------------------------------- math and bit intrinsics
// The fast-math intrinsics are the exact functions here: the emulator does not
// reproduce CUDA's approximations (docs/cuda-emulator.md, "what it does not prove").

// __expf, __logf, __log2f, __powf, __sinf, __cosf, __tanf and __sincosf need no definition:
// glibc's <math.h> declares them, as its exact functions.
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }

namespace ittt::cuda_emu {
template <class To, class From>
To bit_cast(From from) {
    static_assert(sizeof(To) == sizeof(From));
    To to;
    std::memcpy(&to, &from, sizeof(To));
    return to;
}
}  // namespace ittt::cuda_emu
inline unsigned int __float_as_uint(float x) { return ittt::cuda_emu::bit_cast<unsigned int>(x); }
inline int __float_as_int(float x) { return ittt::cuda_emu::bit_cast<int>(x); }
inline float __uint_as_float(unsigned int x) { return ittt::cuda_emu::bit_cast<float>(x); }
inline float __int_as_float(int x) { return ittt::cuda_emu::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return ittt::cuda_emu::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return ittt::cuda_emu::bit_cast<double>(x); }

inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned int>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
    unsigned int r = 0;
    for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}

template <class T>
T __ldg(const T* p) {
    return *p;
}

// CUDA's min / max overloads for the device (same-type arguments).
#define ITTT_EMU_MIN_MAX(T)                           \
    inline T min(T a, T b) { return b < a ? b : a; } \
    inline T max(T a, T b) { return a < b ? b : a; }
ITTT_EMU_MIN_MAX(int)
ITTT_EMU_MIN_MAX(unsigned int)
ITTT_EMU_MIN_MAX(long)
ITTT_EMU_MIN_MAX(unsigned long)
ITTT_EMU_MIN_MAX(long long)
ITTT_EMU_MIN_MAX(unsigned long long)
ITTT_EMU_MIN_MAX(float)
ITTT_EMU_MIN_MAX(double)
#undef ITTT_EMU_MIN_MAX

// Stops the kernel, as the trap instruction does.
[[noreturn]] inline void __trap(ittt::cuda_emu::Site site = ITTT_EMU_HERE) { ittt::cuda_emu::fault("__trap() called", site); }

// ---------------------------------------------------------------- runtime API: errors

enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorLaunchFailure = 719,
};
typedef enum cudaError cudaError_t;

// The last error of this process, reset by cudaGetLastError (kernel faults too:
// on a GPU they are sticky, here a later launch starts clean).
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
// For a kernel fault: the emulator's report (kernel, block, thread, what went wrong).
const char* cudaGetErrorString(cudaError_t error);
const char* cudaGetErrorName(cudaError_t error);

// ---------------------------------------------------------------- runtime API: devices

enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxBlockDimX = 2,
    cudaDevAttrMaxBlockDimY = 3,
    cudaDevAttrMaxBlockDimZ = 4,
    cudaDevAttrMaxGridDimX = 5,
    cudaDevAttrMaxGridDimY = 6,
    cudaDevAttrMaxGridDimZ = 7,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

// The properties of an H100-class sm_90 part, except the name, which says what it is.
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    size_t sharedMemPerMultiprocessor;
    int regsPerBlock;
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    int maxThreadsPerMultiProcessor;
    size_t totalConstMem;
    int major;
    int minor;
    int multiProcessorCount;
    int l2CacheSize;
    int memoryBusWidth;
};

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaDeviceReset();

// ---------------------------------------------------------------- runtime API: memory

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

// Device memory is host memory, 256-byte aligned like cudaMalloc's, registered so that
// memcpy directions, frees and kernel pointer arguments can be checked.
cudaError_t cudaMalloc(void** pointer, size_t bytes);
cudaError_t cudaFree(void* pointer);
cudaError_t cudaMallocAsync(void** pointer, size_t bytes, cudaStream_t stream);
cudaError_t cudaFreeAsync(void* pointer, cudaStream_t stream);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = 0);
cudaError_t cudaMemset(void* pointer, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream = 0);

template <class T>
cudaError_t cudaMalloc(T** pointer, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void**>(pointer), bytes);
}
template <class T>
cudaError_t cudaMallocAsync(T** pointer, size_t bytes, cudaStream_t stream) {
    return cudaMallocAsync(reinterpret_cast<void**>(pointer), bytes, stream);
}

// ---------------------------------------------------------------- runtime API: streams and events
// Work runs when it is issued, so streams only need to exist; events read a host clock.

typedef struct CUevent_st* cudaEvent_t;
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
// Host milliseconds between the two records: an emulator time, never a GPU figure.
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaEventDestroy(cudaEvent_t event);

// ---------------------------------------------------------------- runtime API: function attributes

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

struct cudaFuncAttributes {
    size_t sharedSizeBytes;  // static shared memory, measured from the kernel's __shared__ arrays
    size_t constSizeBytes;
    size_t localSizeBytes;
    int maxThreadsPerBlock;
    int numRegs;
    int ptxVersion;
    int binaryVersion;
    int maxDynamicSharedSizeBytes;
};

cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, const void* kernel);
cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attribute, int value);

template <class... P>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, void (*kernel)(P...)) {
    return cudaFuncGetAttributes(attributes, reinterpret_cast<const void*>(kernel));
}
template <class... P>
cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attribute, int value) {
    return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attribute, value);
}

// ---------------------------------------------------------------- launches

namespace ittt::cuda_emu {

// What ITTT_LAUNCH(kernel, grid, block, shared_bytes, stream)(args...) builds: the
// arguments are converted to the kernel's parameter types once, as a real launch
// copies them, and every CUDA thread calls the kernel on its own copy.
template <class... P>
class Launch {
public:
    Launch(void (*kernel)(P...), LaunchRequest request) : kernel_(kernel), request_(request) {}

    template <class... A>
    void operator()(A&&... args) const {
        static_assert(sizeof...(A) == sizeof...(P), "ITTT_LAUNCH: wrong number of kernel arguments");
        Frame frame{kernel_, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
        if (!pointers_ok(frame.params, std::index_sequence_for<P...>{})) return;
        run_grid(request_, &Launch::run_thread, &frame);
    }

private:
    struct Frame {
        void (*kernel)(P...);
        std::tuple<std::decay_t<P>...> params;
    };
    static void run_thread(void* context) {
        Frame& f = *static_cast<Frame*>(context);
        std::apply(f.kernel, f.params);
    }
    template <size_t... I>
    bool pointers_ok(const std::tuple<std::decay_t<P>...>& params, std::index_sequence<I...>) const {
        return (pointer_ok<I>(std::get<I>(params)) && ...);
    }
    template <size_t I, class T>
    bool pointer_ok(const T& value) const {
        if constexpr (std::is_pointer_v<T> && std::is_object_v<std::remove_pointer_t<T>>)
            return check_pointer_argument(request_, static_cast<int>(I), value);
        else return true;
    }

    void (*kernel_)(P...);
    LaunchRequest request_;
};

template <class... P>
Launch<P...> launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, const char* name,
                    const char* file, int line) {
    return Launch<P...>(kernel, LaunchRequest{reinterpret_cast<const void*>(kernel), name, file, line, grid, block, shared_bytes, stream});
}

// ITTT_DYNAMIC_SHARED's pointer: converts to whatever element type it declares.
struct DynamicShared {
    template <class T>
    operator T*() const {
        return static_cast<T*>(dynamic_shared_memory());
    }
};

}  // namespace ittt::cuda_emu

// ---------------------------------------------------------------- not emulated
// Each of these stops the build with a message naming it, instead of compiling to
// something that only looks right. Adding one: an implementation in this folder, a
// unit test in tests/test_cuda_emu.cpp, a line in docs/cuda-emulator.md.

namespace ittt::cuda_emu {
template <class...>
inline constexpr bool kNotEmulated = false;
}
#define ITTT_EMU_NOT_EMULATED(name)                                                                                  \
    template <class... A>                                                                                            \
    int name(A...) {                                                                                                 \
        static_assert(::ittt::cuda_emu::kNotEmulated<A...>,                                                          \
                      "the CUDA emulator does not provide " #name ": add it to src/runtime/cuda_emu/ (with a unit test) " \
                      "or do without it (docs/cuda-emulator.md)");                                                   \
        return 0;                                                                                                    \
    }
ITTT_EMU_NOT_EMULATED(__ballot_sync)
ITTT_EMU_NOT_EMULATED(__any_sync)
ITTT_EMU_NOT_EMULATED(__all_sync)
ITTT_EMU_NOT_EMULATED(__activemask)
ITTT_EMU_NOT_EMULATED(__match_any_sync)
ITTT_EMU_NOT_EMULATED(__match_all_sync)
ITTT_EMU_NOT_EMULATED(__reduce_add_sync)
ITTT_EMU_NOT_EMULATED(__reduce_min_sync)
ITTT_EMU_NOT_EMULATED(__reduce_max_sync)
ITTT_EMU_NOT_EMULATED(__nanosleep)
ITTT_EMU_NOT_EMULATED(clock64)
ITTT_EMU_NOT_EMULATED(__pipeline_memcpy_async)
ITTT_EMU_NOT_EMULATED(cudaMemcpyToSymbol)
ITTT_EMU_NOT_EMULATED(cudaMemcpyFromSymbol)
ITTT_EMU_NOT_EMULATED(cudaMallocManaged)
ITTT_EMU_NOT_EMULATED(cudaLaunchKernel)
ITTT_EMU_NOT_EMULATED(cudaLaunchCooperativeKernel)
ITTT_EMU_NOT_EMULATED(cudaOccupancyMaxActiveBlocksPerMultiprocessor)
#undef ITTT_EMU_NOT_EMULATED
#define __constant__ static_assert(false, "the CUDA emulator does not provide __constant__ memory (docs/cuda-emulator.md)");
#define __managed__ static_assert(false, "the CUDA emulator does not provide __managed__ memory (docs/cuda-emulator.md)");
