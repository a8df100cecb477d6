// chunk_batches.h: the per-chunk products of the parallel TTT form as few strided-batched GEMM
// calls as the layout allows (the GEMM versions of ttt_delta.cu and ttt_apply.cu).
//
// Chunk i of sequence b holds token rows b*n + i*C .. b*n + i*C + rows - 1 of the (B*n)-row
// activations and owns matrix k = b*T + i of the (B*T, d, f) tensors. A strided-batched GEMM
// steps each operand by one fixed stride, so one call can cover matrices whose first rows and
// indices advance by fixed steps:
//
//   n % C == 0    every chunk is full and row b*n + i*C = k*C: ONE call, count B*T, steps (C rows, 1 matrix)
//   otherwise     the full chunks: per sequence b (count T-1, steps C and 1) or per chunk index
//                 i (count B, steps n and T), whichever makes fewer calls; then ONE more call
//                 for the short last chunks (count B, steps n and T)
//
// Host code only: it plans the calls, the caller issues them.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace ittt::kernels {

// One strided-batched call: `count` chunks of `rows` rows each; the first starts at token row
// `row0` and owns matrix `k0`; each next one starts `row_step` rows and `k_step` matrices later.
struct ChunkBatch {
    int64_t row0, rows, k0, count, row_step, k_step;
};

inline std::vector<ChunkBatch> chunk_batches(int64_t batch, int64_t n, int64_t chunk) {
    std::vector<ChunkBatch> calls;
    if (batch <= 0 || n <= 0) return calls;
    const int64_t n_chunks = (n + chunk - 1) / chunk, last_rows = n - (n_chunks - 1) * chunk;
    if (last_rows == chunk) return {{0, chunk, 0, batch * n_chunks, chunk, 1}};
    const int64_t full = n_chunks - 1;  // complete chunks per sequence
    if (full > 0 && full <= batch) {
        for (int64_t i = 0; i < full; ++i) calls.push_back({i * chunk, chunk, i, batch, n, n_chunks});
    } else {
        for (int64_t b = 0; b < batch && full > 0; ++b) calls.push_back({b * n, chunk, b * n_chunks, full, chunk, 1});
    }
    calls.push_back({full * chunk, last_rows, full, batch, n, n_chunks});
    return calls;
}

}  // namespace ittt::kernels
