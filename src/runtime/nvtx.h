// nvtx.h: named ranges for Nsight Systems / Nsight Compute.
//
//   { ITTT_NVTX_RANGE("layer3/attention"); ... }   // range closes at scope exit
//
// Built with NVTX (ITTT_WITH_NVTX=1, set by the Makefile when the NVTX v3
// headers are found) the range is pushed and popped on the calling thread; NVTX
// v3 is header-only and costs almost nothing when no profiler is attached.
// Without NVTX the macro compiles to an empty object.
#pragma once

#if ITTT_WITH_NVTX
#include <nvtx3/nvToolsExt.h>
#endif

namespace ittt {

class NvtxRange {
public:
#if ITTT_WITH_NVTX
    explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
    ~NvtxRange() { nvtxRangePop(); }
#else
    explicit NvtxRange(const char*) {}
#endif
    NvtxRange(const NvtxRange&) = delete;
    NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace ittt

#define ITTT_NVTX_CONCAT2(a, b) a##b
#define ITTT_NVTX_CONCAT(a, b) ITTT_NVTX_CONCAT2(a, b)
#define ITTT_NVTX_RANGE(name) ::ittt::NvtxRange ITTT_NVTX_CONCAT(ittt_nvtx_range_, __LINE__)(name)
