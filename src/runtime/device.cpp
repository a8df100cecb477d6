// device.cpp: the host half of the device layer, and CUDA stubs for CPU-only builds.
#include "runtime/device.h"

#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

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
void fill(void* p, int byte, size_t bytes);
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
void fill(void*, int, size_t) { no_cuda(); }
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

std::atomic<int64_t> g_allocations{0}, g_hits{0}, g_waits{0}, g_uploads{0};

// The CUDA caching allocator. cudaMalloc is slow and cudaFree waits for the whole device, so
// a training step that allocated its activations afresh would time the allocator and stall
// the GPU at every free. A freed block is kept here, by size, and handed to the next tensor
// that fits it. No event is needed to know when the GPU is done with it: every kernel and
// copy of ittt runs on the one legacy default stream, so whatever the next owner queues runs
// after every kernel that used the block before (the order a stream keeps). A second stream
// would need an event per block (cudaFreeAsync's rule).
class BlockCache {
public:
    void* take(size_t bytes) {
        const size_t size = round_up(bytes);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = free_.lower_bound(size);
            if (it != free_.end() && it->first <= 2 * size) {  // at most half of a block wasted
                void* p = it->second;
                cached_ -= it->first;
                free_.erase(it);
                ++g_hits;
                return p;
            }
        }
        void* p = nullptr;
        try {
            p = cuda_backend::allocate(size);
        } catch (const Error&) {
            empty();  // out of memory: give the cached blocks back, then try once more
            p = cuda_backend::allocate(size);
        }
        ++g_allocations;
        std::lock_guard<std::mutex> lock(mutex_);
        size_of_[p] = size;
        return p;
    }
    void give(void* p) {
        std::lock_guard<std::mutex> lock(mutex_);
        const size_t size = size_of_.at(p);
        // The emulator fills a returned block with NaN bytes, so a kernel that reads a reused
        // buffer before writing it shows, as it would on freshly malloc'd emulator memory.
        if (cuda_backend::emulated()) cuda_backend::fill(p, 0xFF, size);
        free_.emplace(size, p);
        cached_ += size;
    }
    void empty() {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& [size, p] : free_) {
            cuda_backend::release(p);
            size_of_.erase(p);
        }
        free_.clear();
        cached_ = 0;
    }
    size_t cached() {
        std::lock_guard<std::mutex> lock(mutex_);
        return cached_;
    }

private:
    // 512-byte steps below 1 MiB, 1 MiB steps above: few distinct sizes, little waste.
    static size_t round_up(size_t bytes) {
        const size_t step = bytes < (1u << 20) ? 512 : (1u << 20);
        return (bytes + step - 1) / step * step;
    }
    std::mutex mutex_;
    std::multimap<size_t, void*> free_;       // size -> freed block
    std::unordered_map<void*, size_t> size_of_;  // every block this cache allocated
    size_t cached_ = 0;
};

// Never destroyed: freeing GPU memory while the CUDA runtime shuts down at exit is an error.
BlockCache& block_cache() {
    static BlockCache* cache = new BlockCache;
    return *cache;
}
}  // namespace

Counters counters() { return {g_allocations.load(), g_hits.load(), g_waits.load(), g_uploads.load()}; }
void reset_counters() { g_allocations = g_hits = g_waits = g_uploads = 0; }
void count_host_wait() { ++g_waits; }
void empty_cache() { block_cache().empty(); }
size_t cached_bytes() { return block_cache().cached(); }

void* allocate(size_t bytes, Device d) {
    static const bool heap_configured = keep_freed_memory_for_reuse();
    (void)heap_configured;
    if (bytes == 0) bytes = 64;  // a valid, unique pointer for empty tensors
    if (d == Device::CUDA) return block_cache().take(bytes);
    // 64-byte alignment: one cache line, and what AVX-512 loads like.
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    ITTT_CHECK(p != nullptr, "out of host memory allocating ", bytes, " bytes");
    return p;
}

void release(void* p, Device d) {
    if (d == Device::CUDA) block_cache().give(p);
    else std::free(p);
}

void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
    if (bytes == 0) return;
    if (dst_device == Device::CPU && src_device == Device::CPU) {
        std::memcpy(dst, src, bytes);
        return;
    }
    if (dst_device == Device::CPU) ++g_waits;
    else if (src_device == Device::CPU) ++g_uploads;
    cuda_backend::copy(dst, dst_device == Device::CUDA, src, src_device == Device::CUDA, bytes);
}

void fill_zero(void* p, size_t bytes, Device d) {
    if (d == Device::CUDA) cuda_backend::fill_zero(p, bytes);
    else std::memset(p, 0, bytes);
}

void synchronize(Device d) {
    if (d != Device::CUDA) return;
    ++g_waits;
    cuda_backend::synchronize();
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
