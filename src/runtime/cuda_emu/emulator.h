// emulator.h (CUDA emulator): what the shim headers (cuda_runtime.h, mma.h) call in
// the engine (emulator.cpp). Kernel code never includes this directly.
//
// The model (docs/cuda-emulator.md): a launch runs its blocks one after another on
// the calling host thread. Inside a block, every CUDA thread is a fiber: it runs as
// a plain call until it reaches a barrier or a warp operation, where it is suspended
// and the next thread runs. A barrier releases when every thread of the block that
// has not exited has arrived; a warp operation when every lane of its mask has. When
// nothing can run and the block is not finished, that is a deadlock, reported with
// the kernel, the block, and what each thread waits for (barrier and source line).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "vector_types.h"

typedef struct CUstream_st* cudaStream_t;  // streams are accepted; everything runs in order on the host

// CUDA's built-in variables. The scheduler sets them whenever it switches to a
// thread, so each CUDA thread sees its own threadIdx (and its block's blockIdx).
extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;
constexpr int warpSize = 32;

namespace ittt::cuda_emu {

// A source location: where a barrier or warp operation is in the kernel's code.
struct Site {
    const char* file;
    int line;
    // Called in a default argument, the builtins give the caller's file and line
    // (written inline as Site{__builtin_FILE(), ...} they would give this header's).
    static constexpr Site here(const char* file = __builtin_FILE(), int line = __builtin_LINE()) { return {file, line}; }
};
// The call site, when used as a default argument.
#define ITTT_EMU_HERE (::ittt::cuda_emu::Site::here())

// ---- launches (host side) ----

struct LaunchRequest {
    const void* kernel;     // the __global__ function: its identity for attributes and names
    const char* name;       // the kernel as written at the launch site, e.g. "(gemm_smem_kernel<TA, TB>)"
    const char* file;       // the launch site
    int line;
    dim3 grid, block;
    size_t shared_bytes;    // dynamic shared memory
    cudaStream_t stream;
};

using ThreadBody = void (*)(void* context);

// Checks the configuration, then runs every block of the grid, calling body(context)
// once per CUDA thread. Errors and faults are recorded for cudaGetLastError.
void run_grid(const LaunchRequest& launch, ThreadBody body, void* context);

// Pointer argument `index` of a launch must be null or point into memory from
// cudaMalloc (a host pointer would fault on a GPU). Records a launch error and
// returns false otherwise.
bool check_pointer_argument(const LaunchRequest& launch, int index, const void* pointer);

// True when [p, p + bytes) lies inside one live cudaMalloc allocation.
bool is_device_memory(const void* p, size_t bytes);

// The running block's dynamic shared memory (ITTT_DYNAMIC_SHARED).
void* dynamic_shared_memory();

// ---- inside a kernel ----

enum class BarrierKind { Sync, Count, And, Or };
// __syncthreads and its _count/_and/_or forms. Returns the count or flag (0 for Sync).
int block_barrier(BarrierKind kind, int predicate, Site site);

// Warp operations take the participating lanes' mask, as the _sync intrinsics do.
// Every lane of the mask must reach the same operation; naming a lane that has
// exited (or does not exist) is reported. `what` names the operation in reports.
//
// The value of lane src_lane (itself when src_lane < 0) once every lane of the
// mask has arrived; reading a lane outside the mask is reported.
uint64_t warp_shuffle(unsigned mask, uint64_t value, int src_lane, const char* what, Site site);

// A warp-wide operation on per-lane data (WMMA): the last lane of the mask to
// arrive calls combine(lane_data, mask) once for the whole warp, where
// lane_data[l] is what lane l passed (null for lanes outside the mask).
using WarpCombine = void (*)(void* const* lane_data, unsigned mask);
void warp_collective(unsigned mask, void* lane_data, WarpCombine combine, const char* what, Site site);

// Stops the launch: the report names the kernel, block and thread, then `message`.
// cudaGetLastError returns cudaErrorLaunchFailure with the report as its string.
[[noreturn]] void fault(const std::string& message, Site site);

// The calling thread's lane (its linear index in the block, modulo 32).
int lane_id();

// ---- for the layer's own tests (tests/test_cuda_emu.cu) ----

// Fault and deadlock reports go to stderr as they happen (besides cudaGetErrorString);
// a test that provokes them on purpose turns that off.
void set_reports_printed(bool printed);
// ITTT_EMU_POISON_SHARED=1 turns poisoning on for the whole run; this, for one test.
void set_shared_poisoning(bool on);

// Mutation tests (tests/cuda_emu_mutants.sh): a build of one .cu file with
// -DITTT_EMU_MUTANT_DROP_BARRIER_LINE=L compiles the __syncthreads on its line L out;
// each time a thread passes the dropped barrier it calls this, and the program
// prints the count at exit, so a mutant that is never reached shows as such.
void count_dropped_barrier(const char* file, int line);

}  // namespace ittt::cuda_emu
