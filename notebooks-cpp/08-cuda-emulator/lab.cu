// Lab 08: break a CUDA kernel, read what the emulator says, fix it.
// The kernels in this file are CUDA. Every build compiles them as host C++ against the
// CPU emulator (src/runtime/cuda_emu/, docs/cuda-emulator.md), which runs each CUDA thread
// as a fiber, so the lab runs on any machine. Your TODO: the row sums of section 2.
//   build/labs/08-cuda-emulator [--solution] [--check]
#include <cmath>
#include <string>
#include <vector>

#include "../lab_util.h"
#include "runtime/cuda_check.h"

namespace {

constexpr int kThreads = 256;

// ---- 1. a shared-memory tree reduction, with and without one of its barriers ----
// sums[b] = x[256 b] + ... + x[256 b + 255]. Each step halves the threads that add:
// thread t adds partial[t + stride] into partial[t]. The barrier in the loop makes one
// step's writes visible to the next step's reads; kBarrier = false leaves it out.
template <bool kBarrier>
__global__ void block_sums_kernel(float* sums, const float* x, int n) {
    __shared__ float partial[kThreads];
    const int t = static_cast<int>(threadIdx.x), i = static_cast<int>(blockIdx.x) * kThreads + t;
    partial[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (int stride = kThreads / 2; stride > 0; stride /= 2) {
        if (t < stride) partial[t] += partial[t + stride];
        if (kBarrier) __syncthreads();
    }
    if (t == 0) sums[blockIdx.x] = partial[0];
}

// ---- 2. one warp per row, for rows shorter than a warp ----
// sums[r] = x[r, 0] + ... + x[r, len - 1]: the 32 lanes of warp r stride along the row,
// then a butterfly of __shfl_xor_sync adds their partial sums (every lane ends with the total).

// TODO (exercise): this kernel has a bug that only rows shorter than a warp show. Run the lab,
// read what the emulator reports, work out which CUDA rule the kernel breaks, and fix it
// without changing what it computes.
__global__ void row_sums_student(float* sums, const float* x, int rows, int len) {
    const int row = static_cast<int>(blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
    if (row >= rows || lane >= len) return;
    float v = 0.0f;
    for (int j = lane; j < len; j += 32) v += x[row * len + j];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (lane == 0) sums[row] = v;
}

}  // namespace

// The reference kernel (solution.cu).
namespace solution {
LAB_SOLUTION __global__ void row_sums(float* sums, const float* x, int rows, int len);
}  // namespace solution

namespace {

// ---- host side: device buffers and the CPU oracle ----

std::vector<float> inputs(int n) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) x[static_cast<size_t>(i)] = static_cast<float>(std::sin(0.7 * i) + 0.25);
    return x;
}

float* to_device(const std::vector<float>& host) {
    float* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, host.size() * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(p, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
    return p;
}

std::vector<float> to_host(const float* p, size_t n) {
    std::vector<float> host(n);
    CUDA_CHECK(cudaMemcpy(host.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost));
    return host;
}

// sums of consecutive groups of `group` elements, in double
std::vector<double> cpu_sums(const std::vector<float>& x, int group) {
    std::vector<double> s((x.size() + static_cast<size_t>(group) - 1) / static_cast<size_t>(group), 0.0);
    for (size_t i = 0; i < x.size(); ++i) s[i / static_cast<size_t>(group)] += x[i];
    return s;
}

// Rows (blocks) whose sum is off by more than float rounding (a sum of <= 256 terms of size ~1).
int count_wrong(const std::vector<float>& got, const std::vector<double>& want) {
    int wrong = 0;
    for (size_t r = 0; r < want.size(); ++r) wrong += !(std::fabs(got[r] - want[r]) <= 1e-4 * (1 + std::fabs(want[r])));
    return wrong;
}

}  // namespace

int main(int argc, char** argv) {
    const lab::Options o = lab::parse_flags(argc, argv, "Lab 08: the CUDA emulator (break a kernel, read the report, fix it)");
    return lab::run([&] {
        lab::Checks checks;
        ittt::cuda_emu::set_reports_printed(false);  // the lab prints them (cudaGetErrorString), once
        cudaDeviceProp prop{};
        CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
        std::printf("device: %s\n", prop.name);

        lab::section(1, "A tree reduction in shared memory, with and without a barrier");
        const int n = o.check ? 4 * kThreads : 64 * kThreads, blocks = n / kThreads;
        const std::vector<float> x = inputs(n);
        const std::vector<double> want = cpu_sums(x, kThreads);
        float* d_x = to_device(x);
        float* d_sums = to_device(std::vector<float>(static_cast<size_t>(blocks), 0.0f));
        ITTT_LAUNCH((block_sums_kernel<true>), blocks, kThreads, 0, 0)(d_sums, d_x, n);
        CUDA_CHECK(cudaGetLastError());
        const int wrong_with = count_wrong(to_host(d_sums, static_cast<size_t>(blocks)), want);
        std::printf("  with every barrier:        %d of %d block sums wrong\n", wrong_with, blocks);
        ITTT_LAUNCH((block_sums_kernel<false>), blocks, kThreads, 0, 0)(d_sums, d_x, n);
        CUDA_CHECK(cudaGetLastError());
        const std::vector<float> broken = to_host(d_sums, static_cast<size_t>(blocks));
        const int wrong_without = count_wrong(broken, want);
        std::printf("  without the loop's barrier: %d of %d block sums wrong (block 0: %.4f, expected %.4f)\n", wrong_without, blocks,
                    broken[0], want[0]);
        std::printf("  The emulator runs a block's threads one after another between barriers, so thread 0\n"
                    "  finishes the whole loop before thread 64 has done its first step: a missing barrier\n"
                    "  gives the same wrong sums every run. On a GPU the result would depend on timing.\n");
        checks.expect(wrong_with == 0, "the reduction with its barriers matches the CPU");
        checks.expect(wrong_without > 0, "the reduction without the loop's barrier is caught (wrong sums)");

        lab::section(2, "Exercise: lanes that leave before a warp shuffle");
        const int rows = 10;
        for (int len : {50, 20}) {  // a row longer than a warp, then one shorter
            const std::vector<float> y = inputs(rows * len);
            float* d_y = to_device(y);
            float* d_rows = to_device(std::vector<float>(rows, 0.0f));
            const int warps_per_block = 4, grid = (rows + warps_per_block - 1) / warps_per_block;
            if (o.solution) ITTT_LAUNCH(solution::row_sums, grid, 32 * warps_per_block, 0, 0)(d_rows, d_y, rows, len);
            else ITTT_LAUNCH(row_sums_student, grid, 32 * warps_per_block, 0, 0)(d_rows, d_y, rows, len);
            const cudaError_t status = cudaGetLastError();
            std::printf("  rows of %d: %s\n", len, status == cudaSuccess ? "the launch completed" : "the launch failed, the emulator says:");
            if (status != cudaSuccess) std::printf("    %s\n", cudaGetErrorString(status));
            const int wrong = status == cudaSuccess ? count_wrong(to_host(d_rows, rows), cpu_sums(y, len)) : rows;
            checks.expect(status == cudaSuccess && wrong == 0, lab::fmt("row sums of %.0f elements match the CPU", len));
            CUDA_CHECK(cudaFree(d_y));
            CUDA_CHECK(cudaFree(d_rows));
        }
        CUDA_CHECK(cudaFree(d_x));
        CUDA_CHECK(cudaFree(d_sums));
        return checks.finish();
    });
}
