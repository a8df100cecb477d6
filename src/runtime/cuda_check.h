// cuda_check.h: CUDA_CHECK(call) for .cu files only.
//
// A failing CUDA call throws ittt::Error naming the call, the CUDA error string,
// the file and the line, so the first failure is the one reported (not a later
// "invalid argument" from a poisoned context). Kernel launches are checked with
// CUDA_CHECK(cudaGetLastError()) right after the launch.
//
// Also brings in ITTT_LAUNCH and ITTT_DYNAMIC_SHARED (runtime/cuda_launch.h), the
// launch syntax that builds with nvcc and with the CPU emulator alike.
#pragma once
#include <cuda_runtime.h>

#include "runtime/cuda_launch.h"
#include "runtime/error.h"

#define CUDA_CHECK(call)                                                              \
    do {                                                                              \
        cudaError_t ittt_cuda_status_ = (call);                                       \
        if (ittt_cuda_status_ != cudaSuccess)                                         \
            ::ittt::fail(::ittt::cat("CUDA error: ", #call, " failed with ",          \
                                     cudaGetErrorString(ittt_cuda_status_), " at ",   \
                                     __FILE__, ":", __LINE__));                       \
    } while (0)
