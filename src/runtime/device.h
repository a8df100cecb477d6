// device.h: where memory lives and how bytes move between host and GPU.
//
// The model code never calls CUDA directly: tensors carry a Device, and the ops
// layer (src/ops/) picks the CPU or CUDA kernel from it. This header is plain
// C++ so every file can include it; the CUDA half is in device_cuda.cu and is
// compiled only when nvcc is found (ITTT_WITH_CUDA=1). In a CPU-only build the
// CUDA functions throw an Error that says so.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace ittt {

enum class Device { CPU, CUDA };

// "cpu", "cuda", or "cuda-emu" for the CUDA emulator's device (make CUDA=emu).
const char* device_name(Device d);

// True when this binary was compiled with the CUDA side.
bool built_with_cuda();
// True when built with CUDA and at least one GPU answers.
bool cuda_available();
// True when this binary's CUDA device is the CPU emulator (make CUDA=emu, docs/cuda-emulator.md):
// the .cu kernels run on the CPU to be checked; nothing it times is a GPU figure.
bool cuda_emulated();
// "cpu" -> CPU, "cuda" -> CUDA (error if unavailable; a note on stderr when it is the
// emulator), "auto" -> CUDA if a real GPU is available (never the emulator: it is slow).
Device resolve_device(const std::string& name);

namespace device {
void* allocate(size_t bytes, Device d);
void release(void* p, Device d);
// Copies `bytes` from src (on src_device) to dst (on dst_device), any direction.
void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void fill_zero(void* p, size_t bytes, Device d);
// Waits for all queued GPU work (no-op for CPU).
void synchronize(Device d);
// What the device layer has done since the start (or reset_counters()), for the tests and
// the benchmarks: a steady-state CUDA training step should allocate nothing and wait for
// the GPU once (docs/profiling.md).
struct Counters {
    int64_t device_allocations = 0;  // cudaMalloc calls (cache misses)
    int64_t cache_hits = 0;          // CUDA buffers served from the cache of freed blocks
    int64_t host_waits = 0;          // device-to-host copies and synchronize(CUDA): the host waits for the GPU
    int64_t uploads = 0;             // host-to-device copies
};
Counters counters();
void reset_counters();
// Counted by kernels that copy a result to the host themselves (a reduction's scalar).
void count_host_wait();
// Frees every cached CUDA block (cudaFree); the cache refills as tensors are freed.
void empty_cache();
size_t cached_bytes();
// A one-line description, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" or
// "CPU Intel(R) Xeon(R) Processor (2 cores, 2 OpenMP threads), ISA AVX-512 (cpuid: AVX-512)".
std::string describe(Device d);
}  // namespace device

}  // namespace ittt
