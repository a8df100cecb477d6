// [cuda_emu] tests of the CUDA emulator itself (src/runtime/cuda_emu/, docs/cuda-emulator.md),
// each on a tiny kernel with a known answer: barriers (and the _count/_and/_or forms,
// threads that exit before one), the deadlock and divergent-barrier reports, the four warp
// shuffles against the PTX rule at several widths (and a shuffle that names an exited
// lane), WMMA against a scalar product (every layout; the scrambled fragment layout; the
// alignment and ldm rules), atomics, dynamic and static shared memory (limits, overruns,
// poisoning), launch checks, cub's sort and the runtime API.
//
// This file is CUDA source: it is compiled only by `make CUDA=emu` (the Makefile's emulator
// block), because what it tests is the emulator, not a GPU.
#include <catch2/catch.hpp>
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cub/device/device_radix_sort.cuh>
#include <string>
#include <vector>

#include "runtime/cuda_check.h"
#include "runtime/device.h"

using Catch::Contains;

namespace {

// Device memory holding a copy of a host vector, copied back by download().
template <class T>
class DeviceBuffer {
public:
    explicit DeviceBuffer(const std::vector<T>& host) : n_(host.size()) {
        CUDA_CHECK(cudaMalloc(&p_, n_ * sizeof(T) + 64));  // 64 spare bytes: misaligned views stay inside
        CUDA_CHECK(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
    }
    explicit DeviceBuffer(size_t n, T value = T()) : DeviceBuffer(std::vector<T>(n, value)) {}
    ~DeviceBuffer() { cudaFree(p_); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    T* get() const { return p_; }
    std::vector<T> download() const {
        std::vector<T> host(n_);
        CUDA_CHECK(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
        return host;
    }

private:
    T* p_ = nullptr;
    size_t n_;
};

// The launch's error as text ("" when it succeeded), clearing it.
std::string launch_error() {
    const cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? std::string() : std::string(cudaGetErrorString(e));
}

// For tests that provoke a fault on purpose: no report on stderr while they run.
struct QuietReports {
    QuietReports() { ittt::cuda_emu::set_reports_printed(false); }
    ~QuietReports() { ittt::cuda_emu::set_reports_printed(true); }
};
struct PoisonedShared {
    PoisonedShared() { ittt::cuda_emu::set_shared_poisoning(true); }
    ~PoisonedShared() { ittt::cuda_emu::set_shared_poisoning(false); }
};

std::string line(int l) { return ":" + std::to_string(l); }

// ---------------------------------------------------------------- barriers

// out[t] = in[n - 1 - t] through shared memory: thread t reads what thread n-1-t wrote.
__global__ void reverse_kernel(int* out, const int* in) {
    __shared__ int tile[256];
    const int t = threadIdx.x, n = blockDim.x, base = blockIdx.x * n;
    tile[t] = in[base + t];
    __syncthreads();
    out[base + t] = tile[n - 1 - t];
}

// The same without the barrier: a race.
__global__ void reverse_without_barrier_kernel(int* out, const int* in) {
    __shared__ int tile[256];
    const int t = threadIdx.x, n = blockDim.x, base = blockIdx.x * n;
    tile[t] = in[base + t];
    out[base + t] = tile[n - 1 - t];
}

// results = count of t % 3 == 0, and(t < 1000), or(t == 77), and(t != 5)
__global__ void barrier_forms_kernel(int* results) {
    const int t = threadIdx.x;
    const int count = __syncthreads_count(t % 3 == 0);
    const int all = __syncthreads_and(t < 1000);
    const int any = __syncthreads_or(t == 77);
    const int not_all = __syncthreads_and(t != 5);
    if (t == 0) results[0] = count, results[1] = all, results[2] = any, results[3] = not_all;
}

// Threads 40.. return before the barrier; as on a GPU, the others still pass it.
__global__ void early_exit_kernel(int* out) {
    __shared__ int s[64];
    const int t = threadIdx.x;
    if (t >= 40) return;
    s[t] = t;
    __syncthreads();
    out[t] = s[39 - t];
}

}  // namespace

TEST_CASE("emulator: __syncthreads orders shared memory across blocks of threads", "[cuda_emu]") {
    std::vector<int> in(3 * 256);
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i * 7 + 1);
    DeviceBuffer<int> d_in(in), d_out(in.size());
    ITTT_LAUNCH(reverse_kernel, 3, 256, 0, 0)(d_out.get(), d_in.get());
    REQUIRE(launch_error() == "");
    const std::vector<int> out = d_out.download();
    for (int b = 0; b < 3; ++b)
        for (int t = 0; t < 256; ++t) REQUIRE(out[static_cast<size_t>(b * 256 + t)] == in[static_cast<size_t>(b * 256 + 255 - t)]);
}

#if !defined(__SANITIZE_THREAD__)  // ThreadSanitizer reports this race (and stops), which is its job
TEST_CASE("emulator: the same kernel without its barrier gives wrong results", "[cuda_emu]") {
    // Thread 0 runs to its end before thread 255 starts, so it reads an unwritten slot
    // (NaN bytes, with shared memory poisoned; otherwise whatever the last block left).
    PoisonedShared poisoned;
    std::vector<int> in(256);
    for (int i = 0; i < 256; ++i) in[static_cast<size_t>(i)] = i;
    DeviceBuffer<int> d_in(in), d_out(256);
    ITTT_LAUNCH(reverse_without_barrier_kernel, 1, 256, 0, 0)(d_out.get(), d_in.get());
    REQUIRE(launch_error() == "");
    const std::vector<int> out = d_out.download();
    CHECK(out[0] == -1);     // 0xFFFFFFFF: thread 255 had not written yet
    CHECK(out[255] == 0);    // the last thread runs when all the others have written
}
#endif

TEST_CASE("emulator: __syncthreads_count, _and and _or combine the block's predicates", "[cuda_emu]") {
    DeviceBuffer<int> results(4, -7);
    ITTT_LAUNCH(barrier_forms_kernel, 1, 200, 0, 0)(results.get());
    REQUIRE(launch_error() == "");
    const std::vector<int> r = results.download();
    CHECK(r[0] == 67);  // 0, 3, ..., 198
    CHECK(r[1] != 0);
    CHECK(r[2] != 0);
    CHECK(r[3] == 0);
}

TEST_CASE("emulator: threads that exited count as arrived at __syncthreads", "[cuda_emu]") {
    DeviceBuffer<int> out(40, -1);
    ITTT_LAUNCH(early_exit_kernel, 1, 64, 0, 0)(out.get());
    REQUIRE(launch_error() == "");
    const std::vector<int> r = out.download();
    for (int t = 0; t < 40; ++t) CHECK(r[static_cast<size_t>(t)] == 39 - t);
}

// ---------------------------------------------------------------- deadlock and divergence

namespace {

// In each warp, lanes 0-15 wait at a barrier that lanes 16-31 never reach, because those
// wait in a shuffle for lanes 0-15.
constexpr int kDeadlockBarrierLine = __LINE__ + 5;
constexpr int kDeadlockShuffleLine = __LINE__ + 6;
__global__ void deadlock_kernel(int* out) {
    int v = static_cast<int>(threadIdx.x);
    if (threadIdx.x % 32 < 16) {
        __syncthreads();
    } else {
        v = __shfl_xor_sync(0xffffffffu, v, 1);
    }
    out[threadIdx.x] = v;
}

constexpr int kDivergentLine = __LINE__ + 3;
__global__ void divergent_barrier_kernel(int* out) {
    if (threadIdx.x < 5) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1;
}

}  // namespace

TEST_CASE("emulator: a deadlock is reported with kernel, block, threads and barrier lines", "[cuda_emu]") {
    QuietReports quiet;
    DeviceBuffer<int> out(64);
    ITTT_LAUNCH(deadlock_kernel, dim3(2, 1, 1), 64, 0, 0)(out.get());
    const std::string report = launch_error();
    INFO(report);
    CHECK_THAT(report, Contains("deadlock") && Contains("deadlock_kernel") && Contains("block (0, 0, 0)"));
    CHECK_THAT(report, Contains("threads 0-15") && Contains("__syncthreads at tests/test_cuda_emu.cu" + line(kDeadlockBarrierLine)));
    CHECK_THAT(report, Contains("threads 16-31") && Contains("__shfl_xor_sync at tests/test_cuda_emu.cu" + line(kDeadlockShuffleLine)));
    // the emulator recovers: the next launch runs normally
    DeviceBuffer<int> results(4);
    ITTT_LAUNCH(barrier_forms_kernel, 1, 200, 0, 0)(results.get());
    CHECK(launch_error() == "");
    CHECK(results.download()[0] == 67);
}

TEST_CASE("emulator: threads reaching different __syncthreads are reported", "[cuda_emu]") {
    QuietReports quiet;
    DeviceBuffer<int> out(32);
    ITTT_LAUNCH(divergent_barrier_kernel, 1, 32, 0, 0)(out.get());
    const std::string report = launch_error();
    INFO(report);
    CHECK_THAT(report, Contains("divergent_barrier_kernel") && Contains("different paths to __syncthreads"));
    CHECK_THAT(report, Contains(line(kDivergentLine)) && Contains(line(kDivergentLine + 2)));
}

// ---------------------------------------------------------------- warp shuffles

namespace {

enum Mode { kXor, kDown, kUp, kIdx };

template <class T>
__global__ void shuffle_kernel(T* out, int mode, int b, int width) {
    const T v = static_cast<T>(100 + threadIdx.x) + static_cast<T>(0.5);
    T r = v;
    switch (mode) {
        case kXor: r = __shfl_xor_sync(0xffffffffu, v, b, width); break;
        case kDown: r = __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(b), width); break;
        case kUp: r = __shfl_up_sync(0xffffffffu, v, static_cast<unsigned>(b), width); break;
        case kIdx: r = __shfl_sync(0xffffffffu, v, b, width); break;
    }
    out[threadIdx.x] = r;
}

// The CUDA programming guide's rule, written out per mode: the lane whose value lane l
// gets, in segments of `width` lanes; a source outside l's segment gives l its own value.
int expected_source(int mode, int lane, int b, int width) {
    const int segment = lane / width, offset = lane % width;
    switch (mode) {
        case kXor: return (lane ^ b) / width > segment ? lane : (lane ^ b);
        case kDown: return offset + b >= width ? lane : lane + b;
        case kUp: return offset < b ? lane : lane - b;
        default: return segment * width + b % width;
    }
}

template <class T>
void check_shuffles() {
    DeviceBuffer<T> out(64);
    for (int mode : {kXor, kDown, kUp, kIdx})
        for (int width : {32, 16, 8})
            for (int b : {0, 1, 3, 5, 16, 31}) {
                INFO("mode " << mode << ", width " << width << ", b " << b);
                ITTT_LAUNCH((shuffle_kernel<T>), 1, 64, 0, 0)(out.get(), mode, b, width);
                REQUIRE(launch_error() == "");
                const std::vector<T> r = out.download();
                for (int t = 0; t < 64; ++t) {
                    const int src = (t / 32) * 32 + expected_source(mode, t % 32, b, width);
                    REQUIRE(r[static_cast<size_t>(t)] == static_cast<T>(100 + src) + static_cast<T>(0.5));
                }
            }
}

constexpr int kExitedLaneLine = __LINE__ + 4;
__global__ void exited_lane_kernel(int* out) {
    const int t = static_cast<int>(threadIdx.x);
    if (t % 32 >= 16) return;  // half the warp leaves; the other half shuffles with all 32 named
    out[t] = __shfl_xor_sync(0xffffffffu, t, 1);
}

__global__ void outside_mask_kernel(int* out) {
    const int t = static_cast<int>(threadIdx.x);
    if (t >= 16) return;
    out[t] = __shfl_sync(0x0000ffffu, t, 20);  // lane 20 is not in the mask
}

}  // namespace

TEST_CASE("emulator: warp shuffles (xor, down, up, idx) follow CUDA's rule at widths 32, 16, 8", "[cuda_emu]") {
    check_shuffles<int>();
    check_shuffles<double>();  // 8-byte values move whole
}

TEST_CASE("emulator: a shuffle that names an exited lane is reported", "[cuda_emu]") {
    QuietReports quiet;
    DeviceBuffer<int> out(32);
    ITTT_LAUNCH(exited_lane_kernel, 1, 32, 0, 0)(out.get());
    const std::string report = launch_error();
    INFO(report);
    CHECK_THAT(report, Contains("exited_lane_kernel") && Contains("exit") && Contains("__shfl_xor_sync"));
    CHECK_THAT(report, Contains(line(kExitedLaneLine)));
}

TEST_CASE("emulator: a shuffle reading a lane outside its mask is reported", "[cuda_emu]") {
    QuietReports quiet;
    DeviceBuffer<int> out(32);
    ITTT_LAUNCH(outside_mask_kernel, 1, 32, 0, 0)(out.get());
    CHECK_THAT(launch_error(), Contains("reads lane 20, which is not in the mask 0x0000ffff"));
}

// ---------------------------------------------------------------- WMMA

namespace {

namespace wmma = nvcuda::wmma;

// D = 2 * (A B + C) on one 16 x 16 x 8 tile, A and B rounded to TF32 in the kernel.
template <class LA, class LB>
__global__ void wmma_kernel(float* d, const float* a, unsigned lda, const float* b, unsigned ldb, const float* c) {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, LA> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, LB> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> fc;
    wmma::load_matrix_sync(fa, a, lda);
    for (int i = 0; i < fa.num_elements; ++i) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
    wmma::load_matrix_sync(fb, b, ldb);
    for (int i = 0; i < fb.num_elements; ++i) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
    wmma::load_matrix_sync(fc, c, 16, wmma::mem_row_major);
    wmma::mma_sync(fc, fa, fb, fc);
    for (int i = 0; i < fc.num_elements; ++i) fc.x[i] *= 2.0f;  // element-wise, whatever the layout
    wmma::store_matrix_sync(d, fc, 16, wmma::mem_row_major);
}

// Lane l writes l * 8 + i into element i of its accumulator fragment.
__global__ void fragment_layout_kernel(float* d) {
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> f;
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = static_cast<float>(threadIdx.x * 8 + i);
    wmma::store_matrix_sync(d, f, 16, wmma::mem_row_major);
}

float tf32_host(float x) {  // the rounding the kernel applies, done on the host: to nearest, ties away
    uint32_t u;
    std::memcpy(&u, &x, 4);
    u = (u + 0x1000u) & 0xffffe000u;
    std::memcpy(&x, &u, 4);
    return x;
}

template <class LA, class LB>
void check_wmma(bool a_row_major, bool b_row_major) {
    // A (16, 8) stored row-major (lda 8) or as A^T (lda 16); B (8, 16) row-major (ldb 16) or as B^T (ldb 8).
    std::vector<float> a(128), b(128), c(256);
    for (int i = 0; i < 128; ++i) a[static_cast<size_t>(i)] = std::sin(0.37f * static_cast<float>(i)) * 1.7f;
    for (int i = 0; i < 128; ++i) b[static_cast<size_t>(i)] = std::cos(0.23f * static_cast<float>(i)) - 0.2f;
    for (int i = 0; i < 256; ++i) c[static_cast<size_t>(i)] = 0.01f * static_cast<float>(i % 17);
    auto A = [&](int r, int k) { return a[static_cast<size_t>(a_row_major ? r * 8 + k : k * 16 + r)]; };
    auto B = [&](int k, int n) { return b[static_cast<size_t>(b_row_major ? k * 16 + n : n * 8 + k)]; };
    DeviceBuffer<float> da(a), db(b), dc(c), dd(256);
    ITTT_LAUNCH((wmma_kernel<LA, LB>), 1, 32, 0, 0)(dd.get(), da.get(), a_row_major ? 8u : 16u, db.get(), b_row_major ? 16u : 8u, dc.get());
    REQUIRE(launch_error() == "");
    const std::vector<float> d = dd.download();
    for (int r = 0; r < 16; ++r)
        for (int n = 0; n < 16; ++n) {
            double ref = c[static_cast<size_t>(r * 16 + n)];
            for (int k = 0; k < 8; ++k) ref += static_cast<double>(tf32_host(A(r, k))) * tf32_host(B(k, n));
            ref *= 2;
            // 8 float products and adds of O(1) terms: a few 1e-7; the TF32 inputs are exact here
            REQUIRE(std::fabs(d[static_cast<size_t>(r * 16 + n)] - ref) <= 1e-5 + 1e-6 * std::fabs(ref));
        }
}

}  // namespace

TEST_CASE("emulator: WMMA m16n16k8 TF32 matches a scalar product in every layout", "[cuda_emu]") {
    check_wmma<wmma::row_major, wmma::row_major>(true, true);
    check_wmma<wmma::row_major, wmma::col_major>(true, false);
    check_wmma<wmma::col_major, wmma::row_major>(false, true);
    check_wmma<wmma::col_major, wmma::col_major>(false, false);
}

TEST_CASE("emulator: WMMA fragments hold their elements in a scrambled layout", "[cuda_emu]") {
    DeviceBuffer<float> d(256);
    ITTT_LAUNCH(fragment_layout_kernel, 1, 32, 0, 0)(d.get());
    REQUIRE(launch_error() == "");
    std::vector<float> tile = d.download();
    int in_place = 0;
    for (int p = 0; p < 256; ++p) in_place += tile[static_cast<size_t>(p)] == static_cast<float>(p);
    CHECK(in_place < 16);  // neither "lane-major" nor any other obvious layout
    std::sort(tile.begin(), tile.end());
    for (int p = 0; p < 256; ++p) REQUIRE(tile[static_cast<size_t>(p)] == static_cast<float>(p));  // still a permutation
}

TEST_CASE("emulator: WMMA checks the hardware's pointer alignment and ldm rules", "[cuda_emu]") {
    QuietReports quiet;
    DeviceBuffer<float> a(256, 1.0f), b(256, 1.0f), c(256, 0.0f), d(256);
    ITTT_LAUNCH((wmma_kernel<wmma::row_major, wmma::row_major>), 1, 32, 0, 0)(d.get(), a.get() + 4, 8u, b.get(), 16u, c.get());
    CHECK_THAT(launch_error(), Contains("load_matrix_sync") && Contains("not 256-bit (32-byte) aligned"));
    ITTT_LAUNCH((wmma_kernel<wmma::row_major, wmma::row_major>), 1, 32, 0, 0)(d.get(), a.get(), 6u, b.get(), 16u, c.get());
    CHECK_THAT(launch_error(), Contains("ldm 6 is not a multiple of 4"));
    ITTT_LAUNCH((wmma_kernel<wmma::row_major, wmma::row_major>), 1, 16, 0, 0)(d.get(), a.get(), 8u, b.get(), 16u, c.get());
    CHECK_THAT(launch_error(), Contains("that do not exist"));  // WMMA needs the whole warp
}

TEST_CASE("emulator: __float_to_tf32 rounds to 10 mantissa bits, to nearest, ties away from zero", "[cuda_emu]") {
    CHECK(wmma::__float_to_tf32(1.0f + 0x1p-11f) == 1.0f + 0x1p-10f);    // a tie: away from zero
    CHECK(wmma::__float_to_tf32(-1.0f - 0x1p-11f) == -1.0f - 0x1p-10f);
    CHECK(wmma::__float_to_tf32(1.0f + 0x1p-12f) == 1.0f);               // below half an ulp
    CHECK(wmma::__float_to_tf32(3.0f) == 3.0f);
    CHECK(std::isinf(wmma::__float_to_tf32(INFINITY)));
    CHECK(std::isnan(wmma::__float_to_tf32(NAN)));
}

// ---------------------------------------------------------------- atomics

namespace {

__global__ void atomics_kernel(int* i, float* f, double* d, unsigned long long* u, int* hi, int* lo, unsigned* wrap, int* winner) {
    const int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    atomicAdd(i, 1);
    atomicAdd(f, 0.5f);
    atomicAdd(d, 0.25);
    atomicAdd(u, 1ull << 40);
    atomicMax(hi, t);
    atomicMin(lo, -t);
    atomicInc(wrap, 9u);  // counts 0..9 and wraps
    atomicCAS(winner, -1, t);
}

}  // namespace

TEST_CASE("emulator: atomics from every thread of several blocks add up", "[cuda_emu]") {
    DeviceBuffer<int> i(1, 0), hi(1, -1), lo(1, 0), winner(1, -1);
    DeviceBuffer<float> f(1, 0.0f);
    DeviceBuffer<double> d(1, 0.0);
    DeviceBuffer<unsigned long long> u(1, 0);
    DeviceBuffer<unsigned> wrap(1, 0);
    ITTT_LAUNCH(atomics_kernel, 4, 64, 0, 0)(i.get(), f.get(), d.get(), u.get(), hi.get(), lo.get(), wrap.get(), winner.get());
    REQUIRE(launch_error() == "");
    CHECK(i.download()[0] == 256);
    CHECK(f.download()[0] == 128.0f);
    CHECK(d.download()[0] == 64.0);
    CHECK(u.download()[0] == 256ull << 40);
    CHECK(hi.download()[0] == 255);
    CHECK(lo.download()[0] == -255);
    CHECK(wrap.download()[0] == 256u % 10u);
    const int w = winner.download()[0];
    CHECK((w >= 0 && w < 256));  // exactly one compare-and-swap saw -1
}

// ---------------------------------------------------------------- shared memory

namespace {

// out = in reversed, through n floats of dynamic shared memory.
__global__ void dynamic_reverse_kernel(float* out, const float* in, int n) {
    ITTT_DYNAMIC_SHARED(float, buffer);
    for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) buffer[i] = in[i];
    __syncthreads();
    for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) out[i] = buffer[n - 1 - i];
}

__global__ void uninitialised_shared_kernel(float* out) {
    __shared__ float never_written[64];
    __shared__ double other[3];
    if (threadIdx.x == 1u << 30) never_written[0] = 1, other[0] = 1;  // never runs (else g++ would fold the reads to 0)
    out[threadIdx.x] = never_written[threadIdx.x] + static_cast<float>(other[0] * 0.0);
}

}  // namespace

TEST_CASE("emulator: dynamic shared memory, its 48 KB default and the opt-in limit", "[cuda_emu]") {
    for (int n : {1000, 13000}) {  // 4 KB, then 52 KB (more than a kernel gets without asking)
        INFO("n " << n);
        std::vector<float> in(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i) in[static_cast<size_t>(i)] = static_cast<float>(i);
        DeviceBuffer<float> d_in(in), d_out(static_cast<size_t>(n));
        const size_t bytes = static_cast<size_t>(n) * sizeof(float);
        if (n > 12288) {
            QuietReports quiet;
            ITTT_LAUNCH(dynamic_reverse_kernel, 1, 128, bytes, 0)(d_out.get(), d_in.get(), n);
            CHECK_THAT(launch_error(), Contains("cudaFuncAttributeMaxDynamicSharedMemorySize"));
            REQUIRE(cudaFuncSetAttribute(dynamic_reverse_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)) ==
                    cudaSuccess);
        }
        ITTT_LAUNCH(dynamic_reverse_kernel, 1, 128, bytes, 0)(d_out.get(), d_in.get(), n);
        REQUIRE(launch_error() == "");
        const std::vector<float> out = d_out.download();
        for (int i = 0; i < n; ++i) REQUIRE(out[static_cast<size_t>(i)] == static_cast<float>(n - 1 - i));
    }
    CHECK(cudaFuncSetAttribute(dynamic_reverse_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300000) == cudaErrorInvalidValue);
    cudaGetLastError();
}

#if !defined(__SANITIZE_ADDRESS__)  // under AddressSanitizer the overrun is ASan's report (and stops the run)
TEST_CASE("emulator: a write past the end of dynamic shared memory is reported", "[cuda_emu]") {
    QuietReports quiet;
    std::vector<float> in(1000, 1.0f);
    DeviceBuffer<float> d_in(in), d_out(1000);
    ITTT_LAUNCH(dynamic_reverse_kernel, 1, 128, 999 * sizeof(float), 0)(d_out.get(), d_in.get(), 1000);  // one float short
    CHECK_THAT(launch_error(), Contains("dynamic_reverse_kernel") && Contains("wrote past the end of its 3996 bytes of dynamic shared memory"));
}
#endif

TEST_CASE("emulator: static shared memory is measured, and poisoned with NaN on request", "[cuda_emu]") {
    cudaFuncAttributes attributes{};
    REQUIRE(cudaFuncGetAttributes(&attributes, uninitialised_shared_kernel) == cudaSuccess);
    CHECK(attributes.sharedSizeBytes == 64 * sizeof(float) + 3 * sizeof(double));  // from the symbol table
    DeviceBuffer<float> out(64, 1.0f);
    {
        PoisonedShared poisoned;
        ITTT_LAUNCH(uninitialised_shared_kernel, 1, 64, 0, 0)(out.get());
        REQUIRE(launch_error() == "");
    }
    for (float v : out.download()) CHECK(std::isnan(v));  // read before any thread wrote it
}

// ---------------------------------------------------------------- launches and the runtime API

TEST_CASE("emulator: bad launch configurations and host pointers are launch errors", "[cuda_emu]") {
    QuietReports quiet;
    DeviceBuffer<int> results(4);
    ITTT_LAUNCH(barrier_forms_kernel, 1, 1025, 0, 0)(results.get());
    CHECK_THAT(launch_error(), Contains("invalid configuration argument") && Contains("block (1025, 1, 1)"));
    ITTT_LAUNCH(barrier_forms_kernel, 1, dim3(32, 33), 0, 0)(results.get());
    CHECK_THAT(launch_error(), Contains("invalid configuration argument") && Contains("1056 threads"));
    ITTT_LAUNCH(barrier_forms_kernel, dim3(0, 1, 1), 32, 0, 0)(results.get());
    CHECK_THAT(launch_error(), Contains("invalid configuration argument") && Contains("grid (0, 1, 1)"));
    int host_results[4];
    ITTT_LAUNCH(barrier_forms_kernel, 1, 32, 0, 0)(host_results);
    CHECK_THAT(launch_error(), Contains("pointer argument 0") && Contains("does not point into memory from cudaMalloc"));
}

TEST_CASE("emulator: cub::DeviceRadixSort::SortPairs sorts stably by the key bits asked for", "[cuda_emu]") {
    const int n = 1000;
    std::vector<uint32_t> keys(n);
    std::vector<int32_t> values(n);
    for (int i = 0; i < n; ++i) keys[static_cast<size_t>(i)] = static_cast<uint32_t>((i * 7919) % 13) | 0x100u, values[static_cast<size_t>(i)] = i;
    DeviceBuffer<uint32_t> keys_in(keys), keys_out(n);
    DeviceBuffer<int32_t> values_in(values), values_out(n);
    size_t temp_bytes = 0;
    REQUIRE(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in.get(), keys_out.get(), values_in.get(), values_out.get(), n, 0, 4) ==
            cudaSuccess);
    DeviceBuffer<char> temp(temp_bytes);
    REQUIRE(cub::DeviceRadixSort::SortPairs(temp.get(), temp_bytes, keys_in.get(), keys_out.get(), values_in.get(), values_out.get(), n, 0, 4) ==
            cudaSuccess);
    const std::vector<uint32_t> k = keys_out.download();
    const std::vector<int32_t> v = values_out.download();
    for (int i = 1; i < n; ++i) {
        REQUIRE((k[static_cast<size_t>(i - 1)] & 15u) <= (k[static_cast<size_t>(i)] & 15u));
        if ((k[static_cast<size_t>(i - 1)] & 15u) == (k[static_cast<size_t>(i)] & 15u)) REQUIRE(v[static_cast<size_t>(i - 1)] < v[static_cast<size_t>(i)]);
    }
    for (int i = 0; i < n; ++i) REQUIRE(keys[static_cast<size_t>(v[static_cast<size_t>(i)])] == k[static_cast<size_t>(i)]);  // whole keys travel
}

TEST_CASE("emulator: the runtime API names the device as emulated and checks memory calls", "[cuda_emu]") {
    cudaDeviceProp prop{};
    REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
    CHECK_THAT(std::string(prop.name), Contains("emulator") && Contains("not a GPU"));
    CHECK(prop.major == 9);
    CHECK(prop.sharedMemPerBlockOptin == 232448);
    CHECK(ittt::cuda_emulated());
    int host[4] = {};
    void* device = nullptr;
    REQUIRE(cudaMalloc(&device, 8) == cudaSuccess);
    CHECK(cudaMemcpy(host, host + 2, 8, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // destination is host memory
    CHECK_THAT(std::string(cudaGetErrorString(cudaGetLastError())), Contains("not inside memory from cudaMalloc"));
    CHECK(cudaMemcpy(device, host, 16, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // past the end of the allocation
    CHECK(cudaFree(device) == cudaSuccess);
    CHECK(cudaFree(device) == cudaErrorInvalidValue);  // freed twice
    cudaGetLastError();
    cudaEvent_t start, stop;
    REQUIRE(cudaEventCreate(&start) == cudaSuccess);
    REQUIRE(cudaEventCreate(&stop) == cudaSuccess);
    cudaEventRecord(start);
    cudaEventRecord(stop);
    float ms = -1;
    CHECK(cudaEventElapsedTime(&ms, start, stop) == cudaSuccess);
    CHECK(ms >= 0);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
}
