// device.cpp: the host half of the device layer, and CUDA stubs for CPU-only builds.
#include "runtime/device.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "runtime/cpu_isa.h"
#include "runtime/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ittt {

const char* device_name(Device d) {
    if (d == Device::CPU) return "cpu";
    return cuda_emulated() ? "cuda-emu" : "cuda";  // an emulated device is never named as a GPU
}

Device resolve_device(const std::string& name) {
    if (name == "cpu") return Device::CPU;
    if (name == "cuda") {
        ITTT_CHECK(built_with_cuda(), "--device cuda: this binary was built without CUDA (nvcc was not found at build time)");
        ITTT_CHECK(cuda_available(), "--device cuda: no CUDA device is present");
        if (cuda_emulated())
            std::fprintf(stderr, "note: --device cuda is the CUDA emulator (this binary was built with make CUDA=emu): the CUDA kernels run "
                                 "on the CPU to check them; its timings are not GPU figures\n");
        return Device::CUDA;
    }
    if (name == "auto") return cuda_available() && !cuda_emulated() ? Device::CUDA : Device::CPU;
    fail(cat("--device: expected cpu, cuda or auto, found '", name, "'"));
}

// The CUDA entry points, implemented in device_cuda.cu when built with nvcc.
namespace cuda_backend {
bool available();
bool emulated();
void* allocate(size_t bytes);
void release(void* p);
void copy(void* dst, bool dst_on_gpu, const void* src, bool src_on_gpu, size_t bytes);
void fill_zero(void* p, size_t bytes);
void synchronize();
std::string describe();
}  // namespace cuda_backend

#if !ITTT_WITH_CUDA
bool built_with_cuda() { return false; }
namespace cuda_backend {
[[noreturn]] static void no_cuda() { fail("this binary was built without CUDA: rebuild on a machine with nvcc (make CUDA=1)"); }
bool available() { return false; }
bool emulated() { return false; }
void* allocate(size_t) { no_cuda(); }
void release(void*) {}
void copy(void*, bool, const void*, bool, size_t) { no_cuda(); }
void fill_zero(void*, size_t) { no_cuda(); }
void synchronize() {}
std::string describe() { return "CUDA (not built)"; }
}  // namespace cuda_backend
#else
bool built_with_cuda() { return true; }
#endif

bool cuda_available() { return cuda_backend::available(); }
bool cuda_emulated() { return cuda_backend::emulated(); }

namespace device {

namespace {
// Keep freed tensor buffers in the heap for the next step to reuse. With glibc's
// defaults a block above the mmap threshold (128 KB, growing adaptively) is
// mapped fresh and unmapped on free, so each training step's multi-MB
// activations page-fault again and the kernel zeroes every page: measured at
// several times the cost of the TTT ops themselves (docs/benchmarks.md).
bool keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
    return true;
}
}  // namespace

void* allocate(size_t bytes, Device d) {
    static const bool heap_configured = keep_freed_memory_for_reuse();
    (void)heap_configured;
    if (bytes == 0) bytes = 64;  // a valid, unique pointer for empty tensors
    if (d == Device::CUDA) return cuda_backend::allocate(bytes);
    // 64-byte alignment: one cache line, and what AVX-512 loads like.
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    ITTT_CHECK(p != nullptr, "out of host memory allocating ", bytes, " bytes");
    return p;
}

void release(void* p, Device d) {
    if (d == Device::CUDA) cuda_backend::release(p);
    else std::free(p);
}

void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
    if (bytes == 0) return;
    if (dst_device == Device::CPU && src_device == Device::CPU) {
        std::memcpy(dst, src, bytes);
        return;
    }
    cuda_backend::copy(dst, dst_device == Device::CUDA, src, src_device == Device::CUDA, bytes);
}

void fill_zero(void* p, size_t bytes, Device d) {
    if (d == Device::CUDA) cuda_backend::fill_zero(p, bytes);
    else std::memset(p, 0, bytes);
}

void synchronize(Device d) {
    if (d == Device::CUDA) cuda_backend::synchronize();
}

std::string describe(Device d) {
    if (d == Device::CUDA) return cuda_backend::describe();
#ifdef _OPENMP
    int threads = omp_get_max_threads();
#else
    int threads = 1;
#endif
    return cat("CPU ", cpu_model_name(), " (", std::thread::hardware_concurrency(), " cores, ", threads, " OpenMP threads), ISA ",
               describe_cpu_isa());
}

}  // namespace device
}  // namespace ittt
