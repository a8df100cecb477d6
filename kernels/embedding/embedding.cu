// embedding.cu: token embedding lookup and its scatter-add gradient on the GPU, F32.
//
// Two versions (their rows: src/ops/embedding.cpp, `build/ittt info --kernels`):
//   atomic  forward: embedding_gather_kernel, one thread per output element
//           backward: embedding_scatter_atomic_kernel, one thread per dout element, atomicAdd
//   sorted  forward: the same gather
//           backward: sort the ids (stable), then embedding_scatter_sorted_kernel, one block
//           per vocab row adding its tokens' rows in token order
//
// Run: ops::embedding_forward / embedding_backward on CUDA tensors with --kernel embedding=v;
// tests: build/ittt_tests "[cuda][embedding]";
// profile: ncu --kernel-name regex:embedding --set full build/ittt_tests "[cuda][embedding]"
//
// The backward's problem: tokens with the same id add into the same dtable row.
// The atomic version lets the hardware sort it out with atomics. The sum is right, but float
// addition is not associative and the order in which the atomics land changes
// from run to run, so dtable is NOT bitwise reproducible (the last bits move),
// which breaks exact --resume and bit-for-bit comparisons with the CPU.
// The sorted version removes the race instead: after a stable sort of (id, position) pairs,
// each id's tokens sit next to each other in position order, and the block that
// owns the id adds them in that order. That is the CPU's order (embedding_cpu.cpp),
// so the sorted version gives the same bits as the CPU, every run.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cstdint>

#include "kernels/embedding/embedding.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {

constexpr int kThreads = 256;

int grid_for(int64_t count) { return static_cast<int>(std::min<int64_t>((count + kThreads - 1) / kThreads, 1 << 16)); }

// out: (n_tokens, dim); table: (vocab, dim); tokens: (n_tokens).
// Consecutive threads copy consecutive columns of a row: coalesced on both sides.
__global__ void embedding_gather_kernel(float* out, const float* table, const int32_t* tokens, int64_t n_tokens, int64_t dim) {
    const int64_t total = n_tokens * dim;
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t t = e / dim, j = e % dim;
        out[e] = table[static_cast<int64_t>(tokens[t]) * dim + j];
    }
}

// Version 1. dtable: (vocab, dim) accumulated; dout: (n_tokens, dim); tokens: (n_tokens).
__global__ void embedding_scatter_atomic_kernel(float* dtable, const float* dout, const int32_t* tokens, int64_t n_tokens,
                                                int64_t dim) {
    const int64_t total = n_tokens * dim;
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t t = e / dim, j = e % dim;
        atomicAdd(&dtable[static_cast<int64_t>(tokens[t]) * dim + j], dout[e]);
    }
}

// position: (n) = 0, 1, ..., n-1: the values that travel with the ids through the sort.
__global__ void iota_kernel(int32_t* position, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        position[i] = static_cast<int32_t>(i);
}

// First index k in [0, n) with sorted[k] >= value (n if none).
__device__ int64_t lower_bound(const uint32_t* sorted, int64_t n, uint32_t value) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] < value) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

// Version 2. dtable: (vocab, dim) accumulated; dout: (n_tokens, dim);
// sorted_ids: (n_tokens) ascending; position: (n_tokens) the token each sorted id came
// from, ascending within a run of equal ids (the sort is stable).
// Block v owns dtable row v, so no other block writes it; each thread owns columns
// and adds the run's dout rows in token order: no race, a fixed order.
__global__ void embedding_scatter_sorted_kernel(float* dtable, const float* dout, const uint32_t* sorted_ids,
                                                const int32_t* position, int64_t n_tokens, int64_t dim) {
    const uint32_t id = blockIdx.x;
    // Every thread finds the run itself: log2(n) reads that hit the same cached lines.
    const int64_t begin = lower_bound(sorted_ids, n_tokens, id);
    const int64_t end = lower_bound(sorted_ids, n_tokens, id + 1);
    if (begin == end) return;  // an id that no token uses: its row is left as it is
    float* row = dtable + static_cast<int64_t>(id) * dim;
    for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
        float acc = row[j];
        for (int64_t k = begin; k < end; ++k) acc += dout[static_cast<int64_t>(position[k]) * dim + j];
        row[j] = acc;
    }
}

// Bits needed to hold every id in [0, vocab): the radix sort looks at no more.
int id_bits(int64_t vocab) {
    int bits = 1;
    while (bits < 32 && (int64_t(1) << bits) < vocab) ++bits;
    return bits;
}

void scatter_sorted(float* dtable, const float* dout, const int32_t* tokens, int64_t n_tokens, int64_t vocab, int64_t dim) {
    ITTT_CHECK(n_tokens <= INT32_MAX, "embedding_backward_cuda: ", n_tokens, " tokens exceed the sort's int count");
    ITTT_CHECK(vocab <= INT32_MAX, "embedding_backward_cuda: vocab ", vocab, " exceeds the grid");
    const int n = static_cast<int>(n_tokens);
    // Ids are checked to be in [0, vocab) by the caller, so reading them as unsigned
    // keeps their order and lets the sort skip the sign handling of signed keys.
    const uint32_t* ids = reinterpret_cast<const uint32_t*>(tokens);

    // Scratch for this call only, from the stream-ordered pool (no device-wide sync).
    uint32_t* sorted_ids = nullptr;
    int32_t *position = nullptr, *sorted_position = nullptr;
    CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&sorted_ids), sizeof(uint32_t) * n, 0));
    CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&position), sizeof(int32_t) * n, 0));
    CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&sorted_position), sizeof(int32_t) * n, 0));
    ITTT_LAUNCH(iota_kernel, grid_for(n), kThreads, 0, 0)(position, n);
    CUDA_CHECK(cudaGetLastError());

    // CUB's radix sort is stable: equal ids keep their positions in ascending order.
    // The first call only reports how much temporary storage the second one needs.
    const int end_bit = id_bits(vocab);
    size_t temp_bytes = 0;
    CUDA_CHECK(
        cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, ids, sorted_ids, position, sorted_position, n, 0, end_bit, 0));
    void* temp = nullptr;
    CUDA_CHECK(cudaMallocAsync(&temp, std::max<size_t>(temp_bytes, 1), 0));
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, ids, sorted_ids, position, sorted_position, n, 0, end_bit, 0));

    ITTT_LAUNCH(embedding_scatter_sorted_kernel, static_cast<unsigned>(vocab), 128, 0, 0)(dtable, dout, sorted_ids, sorted_position,
                                                                                          n_tokens, dim);
    CUDA_CHECK(cudaGetLastError());

    CUDA_CHECK(cudaFreeAsync(temp, 0));
    CUDA_CHECK(cudaFreeAsync(sorted_position, 0));
    CUDA_CHECK(cudaFreeAsync(position, 0));
    CUDA_CHECK(cudaFreeAsync(sorted_ids, 0));
}

}  // namespace

void embedding_forward_cuda(float* out, const float* table, const int32_t* tokens, int64_t n_tokens, int64_t dim) {
    if (n_tokens == 0 || dim == 0) return;  // a zero-sized grid is a launch error
    ITTT_LAUNCH(embedding_gather_kernel, grid_for(n_tokens * dim), kThreads, 0, 0)(out, table, tokens, n_tokens, dim);
    CUDA_CHECK(cudaGetLastError());
}

void embedding_backward_atomic_cuda(float* dtable, const float* dout, const int32_t* tokens, int64_t n_tokens, int64_t vocab,
                                    int64_t dim) {
    if (n_tokens == 0 || dim == 0 || vocab == 0) return;
    ITTT_LAUNCH(embedding_scatter_atomic_kernel, grid_for(n_tokens * dim), kThreads, 0, 0)(dtable, dout, tokens, n_tokens, dim);
    CUDA_CHECK(cudaGetLastError());
}

void embedding_backward_sorted_cuda(float* dtable, const float* dout, const int32_t* tokens, int64_t n_tokens, int64_t vocab,
                                    int64_t dim) {
    if (n_tokens == 0 || dim == 0 || vocab == 0) return;
    scatter_sorted(dtable, dout, tokens, n_tokens, vocab, dim);
}

}  // namespace ittt::kernels
