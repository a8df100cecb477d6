// device_cuda.cu: the CUDA half of the device layer (built with nvcc, or as host C++
// against the CPU emulator with make CUDA=emu).
#include <string>

#include "runtime/cuda_check.h"
#include "runtime/error.h"

namespace ittt::cuda_backend {

bool available() {
    int count = 0;
    // cudaGetDeviceCount fails (rather than returning 0) when no driver is
    // installed, as on a CI machine with nvcc but no GPU: treat that as "none".
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky error so later calls are not poisoned
        return false;
    }
    return count > 0;
}

bool emulated() {
#if defined(ITTT_CUDA_EMULATED)
    return true;
#else
    return false;
#endif
}

void* allocate(size_t bytes) {
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
}

void release(void* p) { cudaFree(p); }  // never throws from a destructor path

void copy(void* dst, bool dst_on_gpu, const void* src, bool src_on_gpu, size_t bytes) {
    cudaMemcpyKind kind = dst_on_gpu ? (src_on_gpu ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                     : cudaMemcpyDeviceToHost;
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, kind));
}

void fill_zero(void* p, size_t bytes) { CUDA_CHECK(cudaMemset(p, 0, bytes)); }

void fill(void* p, int byte, size_t bytes) { CUDA_CHECK(cudaMemset(p, byte, bytes)); }

void synchronize() { CUDA_CHECK(cudaDeviceSynchronize()); }

std::string describe() {
    if (!available()) return "CUDA (no device)";
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    if (emulated())  // prop.name says so too; this says what it is for
        return cat("CUDA emulator on the CPU (EMULATED, not a GPU: emulates an sm_", prop.major, prop.minor,
                   " device; checks the kernels, no GPU timings)");
    return cat(prop.name, " (sm_", prop.major, prop.minor, ", ", prop.multiProcessorCount, " SMs)");
}

}  // namespace ittt::cuda_backend
