// internal.h (CUDA emulator): shared between the engine's .cpp files, not part of the shim.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "runtime/error.h"

namespace ittt::cuda_emu {

// ---- the device this emulates (runtime_api.cpp) ----
constexpr int kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxBlockDim[3] = {1024, 1024, 64};
constexpr unsigned kMaxGridDim[3] = {2147483647u, 65535u, 65535u};
constexpr size_t kDefaultSharedPerBlock = 48 * 1024;  // without cudaFuncSetAttribute
constexpr size_t kMaxSharedPerBlockOptin = 232448;    // 227 KB, an H100's opt-in ceiling
extern const char* const kDeviceName;

// ---- errors (runtime_api.cpp) ----
// Records an error for cudaGetLastError; `detail` becomes its cudaGetErrorString.
cudaError_t set_error(cudaError_t error, const std::string& detail);
// Prints an emulator report on stderr (unless the unit tests silenced it).
void print_report(const std::string& report);

// ---- device memory (runtime_api.cpp) ----
// True for a stream from cudaStreamCreate that has not been destroyed.
bool is_stream(cudaStream_t stream);

// ---- kernels: attributes and what the executable's symbol table says (kernels.cpp) ----
struct StaticShared {
    uintptr_t address;
    size_t bytes;
    std::string name;  // the array's name, for reports
};
struct KernelInfo {
    std::string name;                  // demangled, with template arguments; the launch-site text if unknown
    std::vector<StaticShared> shared;  // the kernel's own __shared__ arrays (function-local statics)
    size_t static_shared_bytes = 0;
    int max_dynamic_shared = static_cast<int>(kDefaultSharedPerBlock);  // cudaFuncSetAttribute
    bool symbols_known = false;
};
// Looked up on first use; `fallback_name` names the kernel when the symbol table has no entry.
KernelInfo& kernel_info(const void* kernel, const char* fallback_name);

// ---- options, read once from the environment ----
struct Options {
    bool poison_shared = false;  // ITTT_EMU_POISON_SHARED=1: NaN (0xFF bytes) in shared memory before every block
};
Options& options();

}  // namespace ittt::cuda_emu
