// Lab 08: break a CUDA kernel, read what the emulator says, fix it.
// The kernels in this file are CUDA. Every build compiles them as host C++ against the
// CPU emulator (src/runtime/cuda_emu/, docs/cuda-emulator.md), which runs each CUDA thread
// as a fiber, so the lab runs on any machine. Your TODOs: fix the row sums of section 2,
// and write the TTT chunk update dW_i = V_[i]^T Z_[i] as a tiled kernel (section 3).
// The reference kernels are in solution.cu.
//   build/labs/08-cuda-emulator [--solution] [--check]
#include <algorithm>
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

// ---- 3. the TTT layer's chunk update as a CUDA kernel ----
// dW (T, d, f), V (n, d), Z (n, f), row-major; chunk i is rows [i C, min((i + 1) C, n)):
//   dW[i][r][c] = sum over the rows t of chunk i of V[t][r] * Z[t][c]     (dW_i = V_[i]^T Z_[i])
// The launch (section 3 below): one block of kTile * kTile = 256 threads per kTile x kTile tile
// of one chunk's dW_i, blockIdx.x = (i * tiles_d + tile_r) * tiles_f + tile_c with tiles_d =
// ceil(d / kTile), tiles_f = ceil(f / kTile).
constexpr int kTile = 16;

// TODO (exercise 2): write this kernel. Each element of V and Z that a block reads from global
// memory should be read once per block and used kTile times: stage the chunk's rows through
// shared memory, kTile rows at a time. Mind the edges (d, f and the last chunk need not be
// multiples of kTile or C) and what makes shared memory safe to read and to overwrite. Section 3
// compares the result with the CPU chunk by chunk; README.md shows how to run it under the race
// detector.
__global__ void chunk_delta_student([[maybe_unused]] float* dW, [[maybe_unused]] const float* V, [[maybe_unused]] const float* Z,
                                    [[maybe_unused]] int n, [[maybe_unused]] int d, [[maybe_unused]] int f, [[maybe_unused]] int C) {
    // TODO
}

}  // namespace

// The reference kernel (solution.cu).
namespace solution {
LAB_SOLUTION __global__ void row_sums(float* sums, const float* x, int rows, int len);
LAB_SOLUTION __global__ void chunk_delta(float* dW, const float* V, const float* Z, int n, int d, int f, int C);
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

// dW (T, d, f) in double on the CPU, the oracle of section 3; `cumulative` sums rows 0 .. the
// chunk's end instead (a typical mistake: that is the scan's job), `transposed` writes (T, f, d).
std::vector<double> cpu_chunk_delta(const std::vector<float>& V, const std::vector<float>& Z, int n, int d, int f, int C,
                                    bool cumulative = false, bool transposed = false) {
    const int T = (n + C - 1) / C;
    std::vector<double> dW(static_cast<size_t>(T) * d * f, 0.0);
    for (int i = 0; i < T; ++i)
        for (int t = cumulative ? 0 : i * C; t < std::min(n, (i + 1) * C); ++t)
            for (int r = 0; r < d; ++r)
                for (int c = 0; c < f; ++c) {
                    const size_t at = transposed ? (static_cast<size_t>(i) * f + c) * d + r : (static_cast<size_t>(i) * d + r) * f + c;
                    dW[at] += static_cast<double>(V[static_cast<size_t>(t) * d + r]) * Z[static_cast<size_t>(t) * f + c];
                }
    return dW;
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

        lab::section(3, "Exercise 2: the TTT chunk update dW_i = V_[i]^T Z_[i] as a tiled kernel");
        {
            const int n = 56, d = 20, f = 36, C = 24, T = (n + C - 1) / C;  // chunks of 24, 24, 8 rows: no size a multiple of 16
            std::vector<float> V(static_cast<size_t>(n) * d), Z(static_cast<size_t>(n) * f);
            for (size_t i = 0; i < V.size(); ++i) V[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
            for (size_t i = 0; i < Z.size(); ++i) Z[i] = static_cast<float>(std::cos(0.23 * static_cast<double>(i)) + 0.1);
            float* d_v = to_device(V);
            float* d_z = to_device(Z);
            // NaN: an element the kernel never writes shows up as wrong, not as a lucky zero.
            float* d_dw = to_device(std::vector<float>(static_cast<size_t>(T) * d * f, NAN));
            const int tiles_d = (d + kTile - 1) / kTile, tiles_f = (f + kTile - 1) / kTile;
            const int grid = T * tiles_d * tiles_f;
            if (o.solution) ITTT_LAUNCH(solution::chunk_delta, grid, kTile * kTile, 0, 0)(d_dw, d_v, d_z, n, d, f, C);
            else ITTT_LAUNCH(chunk_delta_student, grid, kTile * kTile, 0, 0)(d_dw, d_v, d_z, n, d, f, C);
            const cudaError_t status = cudaGetLastError();
            std::printf("  n = %d, d = %d, f = %d, C = %d: %d chunks, grid of %d blocks of %d threads: %s\n", n, d, f, C, T, grid,
                        kTile * kTile, status == cudaSuccess ? "the launch completed" : "the launch failed, the emulator says:");
            if (status != cudaSuccess) std::printf("    %s\n", cudaGetErrorString(status));
            checks.expect(status == cudaSuccess, "the chunk-update kernel runs to the end on the emulator");
            std::vector<float> got = to_host(d_dw, static_cast<size_t>(T) * d * f);
            const std::vector<double> want = cpu_chunk_delta(V, Z, n, d, f, C);
            double scale = 0;
            for (double w : want) scale = std::max(scale, std::fabs(w));
            checks.expect_close(std::vector<double>(got.begin(), got.end()), want, 1e-5 * scale,
                                "dW_i matches the CPU for every chunk (F32 rounding of 16-term sums)",
                                {{cpu_chunk_delta(V, Z, n, d, f, C, true),
                                  "each chunk sums from row 0: dW_i holds chunk i's rows only (the prefix sum is the scan's job)"},
                                 {cpu_chunk_delta(V, Z, n, d, f, C, false, true), "this is Z_[i]^T V_[i], (f, d): dW_i is (d, f)"}},
                                static_cast<size_t>(d) * f, "chunk");
            // The last chunk (8 rows) takes one trip through shared memory, the others two.
            bool last_ok = true, others_ok = true;
            for (int i = 0; i < T; ++i)
                for (size_t e = static_cast<size_t>(i) * d * f; e < static_cast<size_t>(i + 1) * d * f; ++e)
                    (i == T - 1 ? last_ok : others_ok) &= std::fabs(got[e] - want[e]) <= 1e-5 * scale;
            if (last_ok && !others_ok)
                std::printf("         hint: the chunk that fits in one tile of rows is right and the longer ones are not: does a\n"
                            "         thread overwrite a shared tile while others still read the previous rows?\n");
            CUDA_CHECK(cudaFree(d_v));
            CUDA_CHECK(cudaFree(d_z));
            CUDA_CHECK(cudaFree(d_dw));
        }

        CUDA_CHECK(cudaFree(d_x));
        CUDA_CHECK(cudaFree(d_sums));
        return checks.finish();
    });
}
