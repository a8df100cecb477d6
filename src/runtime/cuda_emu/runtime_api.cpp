// runtime_api.cpp (CUDA emulator): the CUDA runtime API on the host.
//
// Errors are per host thread, as in CUDA. Device memory is host memory from
// posix_memalign (exactly the size asked, so that AddressSanitizer sees an
// overrun), registered so that memcpy directions, frees and kernel arguments can
// be checked. Everything runs when it is issued: streams only need to exist, and
// an event records the host clock when it is recorded.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

#include "internal.h"

namespace ittt::cuda_emu {

const char* const kDeviceName = "ittt CUDA emulator on the CPU (not a GPU; sm_90 properties)";

namespace {

thread_local cudaError_t t_last_error = cudaSuccess;
thread_local cudaError_t t_detail_error = cudaSuccess;
thread_local std::string t_detail;
bool g_reports_printed = true;

std::mutex g_memory_mutex;
std::map<uintptr_t, size_t> g_allocations;  // base -> bytes
std::set<cudaStream_t> g_streams;

struct Event {
    bool recorded = false;
    std::chrono::steady_clock::time_point time;
};
std::set<Event*> g_events;

const char* standard_string(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDeviceFunction: return "invalid device function";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotReady: return "device not ready";
        case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}

cudaError_t fail_with(cudaError_t e, const std::string& what) { return set_error(e, cat(standard_string(e), ": ", what)); }

// The allocation holding p, if any: its base and size.
bool find_allocation(const void* p, uintptr_t* base, size_t* bytes) {
    const auto a = reinterpret_cast<uintptr_t>(p);
    auto it = g_allocations.upper_bound(a);
    if (it == g_allocations.begin()) return false;
    --it;
    if (a > it->first + it->second) return false;  // one past the end still belongs to it
    *base = it->first;
    *bytes = it->second;
    return true;
}

cudaError_t check_device_range(const void* p, size_t bytes, const char* call, const char* role) {
    if (is_device_memory(p, bytes)) return cudaSuccess;
    return fail_with(cudaErrorInvalidValue, cat(call, ": the ", role, " (", p, ", ", bytes, " bytes) is not inside memory from cudaMalloc"));
}

}  // namespace

cudaError_t set_error(cudaError_t error, const std::string& detail) {
    t_last_error = error;
    t_detail_error = error;
    t_detail = detail;
    return error;
}

void print_report(const std::string& report) {
    if (g_reports_printed) std::fprintf(stderr, "%s\n", report.c_str());
}

void set_reports_printed(bool printed) { g_reports_printed = printed; }

void set_shared_poisoning(bool on) { options().poison_shared = on; }

bool is_device_memory(const void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    uintptr_t base = 0;
    size_t size = 0;
    return find_allocation(p, &base, &size) && reinterpret_cast<uintptr_t>(p) + bytes <= base + size;
}

bool is_stream(cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    return g_streams.count(stream) > 0;
}

Options& options() {
    static Options o = [] {
        Options r;
        const char* poison = std::getenv("ITTT_EMU_POISON_SHARED");
        r.poison_shared = poison && *poison && std::string(poison) != "0";
        return r;
    }();
    return o;
}

}  // namespace ittt::cuda_emu

using namespace ittt::cuda_emu;
using ittt::cat;

// ---------------------------------------------------------------- errors

cudaError_t cudaGetLastError() {
    const cudaError_t e = t_last_error;
    t_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError() { return t_last_error; }

const char* cudaGetErrorString(cudaError_t error) {
    if (error == t_detail_error && !t_detail.empty()) return t_detail.c_str();
    return standard_string(error);
}

const char* cudaGetErrorName(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
        case cudaErrorNoDevice: return "cudaErrorNoDevice";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

// ---------------------------------------------------------------- devices

cudaError_t cudaGetDeviceCount(int* count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    return device == 0 ? cudaSuccess : fail_with(cudaErrorInvalidDevice, cat("cudaSetDevice(", device, "): the emulator has device 0 only"));
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
    if (device != 0) return fail_with(cudaErrorInvalidDevice, cat("cudaGetDeviceProperties: device ", device));
    *p = cudaDeviceProp{};
    std::snprintf(p->name, sizeof p->name, "%s", kDeviceName);
    p->totalGlobalMem = size_t(80) << 30;
    p->sharedMemPerBlock = kDefaultSharedPerBlock;
    p->sharedMemPerBlockOptin = kMaxSharedPerBlockOptin;
    p->sharedMemPerMultiprocessor = 233472;
    p->regsPerBlock = 65536;
    p->warpSize = warpSize;
    p->maxThreadsPerBlock = kMaxThreadsPerBlock;
    for (int i = 0; i < 3; ++i) {
        p->maxThreadsDim[i] = static_cast<int>(kMaxBlockDim[i]);
        p->maxGridSize[i] = static_cast<int>(kMaxGridDim[i]);
    }
    p->maxThreadsPerMultiProcessor = 2048;
    p->totalConstMem = 65536;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 132;
    p->l2CacheSize = 50 << 20;
    p->memoryBusWidth = 5120;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return cudaErrorInvalidDevice;
    switch (attr) {
        case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
        case cudaDevAttrMaxBlockDimX: *value = p.maxThreadsDim[0]; break;
        case cudaDevAttrMaxBlockDimY: *value = p.maxThreadsDim[1]; break;
        case cudaDevAttrMaxBlockDimZ: *value = p.maxThreadsDim[2]; break;
        case cudaDevAttrMaxGridDimX: *value = p.maxGridSize[0]; break;
        case cudaDevAttrMaxGridDimY: *value = p.maxGridSize[1]; break;
        case cudaDevAttrMaxGridDimZ: *value = p.maxGridSize[2]; break;
        case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(p.sharedMemPerBlock); break;
        case cudaDevAttrWarpSize: *value = p.warpSize; break;
        case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
        case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
        case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(p.sharedMemPerBlockOptin); break;
        default: return fail_with(cudaErrorInvalidValue, cat("cudaDeviceGetAttribute: attribute ", static_cast<int>(attr), " is not emulated"));
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }  // every launch has finished when it returns
cudaError_t cudaDeviceReset() { return cudaSuccess; }

// ---------------------------------------------------------------- memory

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
    void* p = nullptr;
    if (posix_memalign(&p, 256, bytes == 0 ? 1 : bytes) != 0 || p == nullptr) {
        *pointer = nullptr;
        return fail_with(cudaErrorMemoryAllocation, cat("cudaMalloc of ", bytes, " bytes"));
    }
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    g_allocations[reinterpret_cast<uintptr_t>(p)] = bytes;
    *pointer = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
    if (pointer == nullptr) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lock(g_memory_mutex);
        auto it = g_allocations.find(reinterpret_cast<uintptr_t>(pointer));
        if (it == g_allocations.end())
            return fail_with(cudaErrorInvalidValue, cat("cudaFree(", pointer, "): not a pointer from cudaMalloc, or freed already"));
        g_allocations.erase(it);
    }
    std::free(pointer);
    return cudaSuccess;
}

cudaError_t cudaMallocAsync(void** pointer, size_t bytes, cudaStream_t) { return cudaMalloc(pointer, bytes); }
cudaError_t cudaFreeAsync(void* pointer, cudaStream_t) { return cudaFree(pointer); }

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    *total_bytes = size_t(80) << 30;
    size_t used = 0;
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    for (const auto& a : g_allocations) used += a.second;
    *free_bytes = used < *total_bytes ? *total_bytes - used : 0;
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    if (bytes == 0) return cudaSuccess;
    const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) {
        // unified addressing: the emulator knows which side each pointer is on
    } else if (kind != cudaMemcpyHostToHost) {
        if (dst_device && check_device_range(dst, bytes, "cudaMemcpy", "destination") != cudaSuccess) return cudaErrorInvalidValue;
        if (src_device && check_device_range(src, bytes, "cudaMemcpy", "source") != cudaSuccess) return cudaErrorInvalidValue;
    }
    std::memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void* pointer, int value, size_t bytes) {
    if (bytes == 0) return cudaSuccess;
    if (check_device_range(pointer, bytes, "cudaMemset", "range") != cudaSuccess) return cudaErrorInvalidValue;
    std::memset(pointer, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t) { return cudaMemset(pointer, value, bytes); }

// ---------------------------------------------------------------- streams and events

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
    *stream = reinterpret_cast<cudaStream_t>(new char);
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    g_streams.insert(*stream);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    if (g_streams.erase(stream) == 0) return fail_with(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: unknown stream");
    delete reinterpret_cast<char*>(stream);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (stream != nullptr && !is_stream(stream)) return fail_with(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: unknown stream");
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned int) { return cudaSuccess; }

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
    Event* e = new Event;
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    g_events.insert(e);
    *event = reinterpret_cast<cudaEvent_t>(e);
    return cudaSuccess;
}

namespace {
Event* find_event(cudaEvent_t event) {
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    Event* e = reinterpret_cast<Event*>(event);
    return g_events.count(e) ? e : nullptr;
}
}  // namespace

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
    Event* e = find_event(event);
    if (!e) return fail_with(cudaErrorInvalidResourceHandle, "cudaEventRecord: unknown event");
    e->recorded = true;
    e->time = std::chrono::steady_clock::now();
    return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
    return find_event(event) ? cudaSuccess : fail_with(cudaErrorInvalidResourceHandle, "cudaEventQuery: unknown event");
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    return find_event(event) ? cudaSuccess : fail_with(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: unknown event");
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    Event *a = find_event(start), *b = find_event(end);
    if (!a || !b) return fail_with(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: unknown event");
    if (!a->recorded || !b->recorded) return fail_with(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event was never recorded");
    *ms = std::chrono::duration<float, std::milli>(b->time - a->time).count();
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    Event* e = find_event(event);
    if (!e) return fail_with(cudaErrorInvalidResourceHandle, "cudaEventDestroy: unknown event");
    {
        std::lock_guard<std::mutex> lock(g_memory_mutex);
        g_events.erase(e);
    }
    delete e;
    return cudaSuccess;
}

// ---------------------------------------------------------------- function attributes

cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, const void* kernel) {
    KernelInfo& k = kernel_info(kernel, "(kernel)");
    *attributes = cudaFuncAttributes{};
    attributes->sharedSizeBytes = k.static_shared_bytes;
    attributes->maxThreadsPerBlock = kMaxThreadsPerBlock;
    attributes->ptxVersion = attributes->binaryVersion = 90;
    attributes->maxDynamicSharedSizeBytes = k.max_dynamic_shared;
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attribute, int value) {
    KernelInfo& k = kernel_info(kernel, "(kernel)");
    if (attribute == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || static_cast<size_t>(value) + k.static_shared_bytes > kMaxSharedPerBlockOptin)
            return fail_with(cudaErrorInvalidValue, cat("cudaFuncSetAttribute: ", value, " bytes of dynamic shared memory for ", k.name, " (with ",
                                                        k.static_shared_bytes, " static) exceed the device's ", kMaxSharedPerBlockOptin));
        k.max_dynamic_shared = value;
    }
    return cudaSuccess;  // the carveout preference has no effect here
}
