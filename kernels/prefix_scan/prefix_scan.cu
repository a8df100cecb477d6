// prefix_scan.cu: exclusive scans on the GPU, F32.
//
// 1. The TTT chunk scan (ops::prefix_scan_exclusive; ops::set_version("prefix_scan", 0 or 1)):
//      1  chunk_scan_kernel   one thread per column (b, j) walking the T chunks in order
//    T = n / C is a handful while m = d * f is large, so there is plenty of
//    parallelism across columns and none is needed along T. Adjacent threads take
//    adjacent columns, so each step down T is one coalesced row read and write.
//    Each output is the previous output plus one input, as on the CPU: the result
//    is bit-identical to the CPU kernel.
//
// 2. For the labs: one long 1-D array, where the scan direction itself must be
//    split across blocks. Two launchers, not used by the model:
//      prefix_scan_1d_blelloch_cuda   blelloch_tile_kernel + add_tile_offsets_kernel,
//                                     recursing on the tile totals (3 passes over memory + recursion)
//      prefix_scan_1d_lookback_cuda   lookback_scan_kernel, one pass (2 memory passes: read and write)
//    Both scan 512-element tiles with the same Blelloch block scan in shared memory.
//    Float rounding: both add in a tree order, not left to right, so they differ
//    from a sequential loop in the last bits; integer-valued inputs (exact in
//    float up to 2^24) give exactly the same answer. The look-back result can
//    also differ between runs (how far back a block looks depends on timing); use
//    the Blelloch version where run-to-run bits matter.
//
// Run: tests build/ittt_tests "[cuda][prefix_scan]".
#include <algorithm>

#include "kernels/prefix_scan/prefix_scan.h"
#include "runtime/cuda_check.h"

namespace ittt::kernels {

namespace {
constexpr int kThreads = 256;

// ---- 1. the chunk scan ----

// out, in: (B, T, m); one thread per (b, j).
__global__ void chunk_scan_kernel(float* out, const float* in, int64_t n_chunks, int64_t m, bool reverse, int64_t total) {
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t j = e % m, b = e / m;
        const float* x = in + b * n_chunks * m + j;  // column j of sequence b, stride m
        float* o = out + b * n_chunks * m + j;
        float running = 0.0f;
        for (int64_t k = 0; k < n_chunks; ++k) {
            const int64_t i = reverse ? n_chunks - 1 - k : k;
            o[i * m] = running;
            running += x[i * m];
        }
    }
}

// ---- 2. long 1-D scans ----

constexpr int kScanThreads = 256;
constexpr int kScanTile = 2 * kScanThreads;  // two elements per thread

// The Blelloch work-efficient scan of one tile in shared memory: an up-sweep builds partial sums in a tree
// (n - 1 adds), a down-sweep pushes prefixes back down it (n - 1 adds), so the work is O(n) rather than the
// O(n log n) of the simpler Hillis-Steele scan (GPU Gems 3, ch. 39).
// tile: (kScanTile) in shared memory, replaced by its exclusive scan. Returns the tile's total to every thread.
// (Next step for a lab: pad the indices to remove the shared-memory bank conflicts of the deep levels.)
__device__ float blelloch_scan_shared(float* tile) {
    const int tid = threadIdx.x;
    int offset = 1;
    // Up-sweep: at each level, 'active' threads add the left child into the right one.
    for (int active = kScanTile / 2; active > 0; active /= 2) {
        __syncthreads();
        if (tid < active) {
            const int left = offset * (2 * tid + 1) - 1, right = offset * (2 * tid + 2) - 1;
            tile[right] += tile[left];
        }
        offset *= 2;
    }
    __syncthreads();
    const float total = tile[kScanTile - 1];  // the root holds the sum of the tile
    __syncthreads();                          // every thread has read it before it is cleared
    if (tid == 0) tile[kScanTile - 1] = 0.0f;
    // Down-sweep: each node passes its prefix to its left child and prefix + left sum to its right child.
    for (int active = 1; active < kScanTile; active *= 2) {
        offset /= 2;
        __syncthreads();
        if (tid < active) {
            const int left = offset * (2 * tid + 1) - 1, right = offset * (2 * tid + 2) - 1;
            const float left_sum = tile[left];
            tile[left] = tile[right];
            tile[right] += left_sum;
        }
    }
    __syncthreads();
    return total;
}

// Pass 1 of the Blelloch version: scan each tile on its own.
// out, in: (n); tile_totals: (tiles). In place (out == in) is safe: a block reads
// its whole tile before writing it and touches no other tile (the recursion uses this).
__global__ void blelloch_tile_kernel(float* out, const float* in, int64_t n, float* tile_totals) {
    __shared__ float tile[kScanTile];
    const int64_t base = blockIdx.x * int64_t(kScanTile);
    const int tid = threadIdx.x;
    // Two coalesced half-tile loads; past the end, zeros (they change no prefix).
    tile[tid] = base + tid < n ? in[base + tid] : 0.0f;
    tile[tid + kScanThreads] = base + tid + kScanThreads < n ? in[base + tid + kScanThreads] : 0.0f;
    const float total = blelloch_scan_shared(tile);
    if (tid == 0) tile_totals[blockIdx.x] = total;
    if (base + tid < n) out[base + tid] = tile[tid];
    if (base + tid + kScanThreads < n) out[base + tid + kScanThreads] = tile[tid + kScanThreads];
}

// Pass 3: add each tile's offset (the exclusive scan of the tile totals) to its elements.
// out: (n); tile_offsets: (tiles).
__global__ void add_tile_offsets_kernel(float* out, int64_t n, const float* tile_offsets) {
    const int64_t base = blockIdx.x * int64_t(kScanTile);
    const float offset = tile_offsets[blockIdx.x];
    for (int k = threadIdx.x; k < kScanTile; k += blockDim.x)
        if (base + k < n) out[base + k] += offset;
}

int64_t tile_count(int64_t n) { return (n + kScanTile - 1) / kScanTile; }

// Floats of workspace for a scan of n: the tile totals of every level of the recursion.
int64_t blelloch_workspace_floats(int64_t n) {
    if (n <= 0) return 0;
    const int64_t tiles = tile_count(n);
    return tiles + (tiles > 1 ? blelloch_workspace_floats(tiles) : 0);
}

void blelloch_scan(float* out, const float* in, int64_t n, float* workspace) {
    const int64_t tiles = tile_count(n);
    ITTT_CHECK(tiles <= 2147483647LL, "prefix_scan_1d_blelloch_cuda: n = ", n, " exceeds the grid limit");
    float* tile_totals = workspace;  // (tiles), then the deeper levels' workspace
    ITTT_LAUNCH(blelloch_tile_kernel, static_cast<unsigned>(tiles), kScanThreads, 0, 0)(out, in, n, tile_totals);
    CUDA_CHECK(cudaGetLastError());
    if (tiles == 1) return;  // one tile: its offset is 0
    // Pass 2: the tile totals are a scan problem 512 times smaller; scan them in place.
    blelloch_scan(tile_totals, tile_totals, tiles, workspace + tiles);
    ITTT_LAUNCH(add_tile_offsets_kernel, static_cast<unsigned>(tiles), kScanThreads, 0, 0)(out, n, tile_totals);
    CUDA_CHECK(cudaGetLastError());
}

// A tile's status word: flag in the high 32 bits, the float's bits in the low 32.
// One 64-bit word publishes the flag and the value together, so a reader can
// never see the flag without its value (no fence between two words needed).
constexpr unsigned long long kStatusNotReady = 0;  // what cudaMemset(0) leaves
constexpr unsigned long long kStatusAggregate = 1;  // the value is this tile's own total
constexpr unsigned long long kStatusPrefix = 2;     // the value is the sum of this tile and every tile before it

__device__ void publish(unsigned long long* status, float value, unsigned long long flag) {
    atomicExch(status, (flag << 32) | __float_as_uint(value));
}

// Decoupled look-back (Merrill and Garland 2016): each tile publishes its own total at once, then walks back over its
// predecessors adding their totals until it meets one that already knows its full prefix, so no block waits for a
// separate pass over the tile totals and the array is read and written once.
// out, in: (n); status: (tiles) words, zeroed; tile_counter: (1), zeroed.
__global__ void lookback_scan_kernel(float* out, const float* in, int64_t n, unsigned long long* status,
                                     unsigned int* tile_counter) {
    __shared__ float tile[kScanTile];
    __shared__ unsigned int tile_index_shared;
    __shared__ float tile_prefix;
    const int tid = threadIdx.x;
    // Tiles are numbered in the order blocks START, not by blockIdx: a block then only
    // ever waits for blocks that are already running, so the spin cannot deadlock
    // however the hardware schedules blocks.
    if (tid == 0) tile_index_shared = atomicAdd(tile_counter, 1u);
    __syncthreads();
    const int64_t t = tile_index_shared, base = t * kScanTile;
    tile[tid] = base + tid < n ? in[base + tid] : 0.0f;
    tile[tid + kScanThreads] = base + tid + kScanThreads < n ? in[base + tid + kScanThreads] : 0.0f;
    const float total = blelloch_scan_shared(tile);
    if (tid == 0) {
        float prefix = 0.0f;
        if (t == 0) {
            publish(status, total, kStatusPrefix);
        } else {
            publish(status + t, total, kStatusAggregate);  // lets later tiles look past this one already
            for (int64_t j = t - 1;; --j) {                 // tile 0 always ends the walk with a prefix
                unsigned long long word;
                do {
                    word = *reinterpret_cast<volatile unsigned long long*>(status + j);
                } while ((word >> 32) == kStatusNotReady);
                prefix += __uint_as_float(static_cast<unsigned int>(word & 0xffffffffull));
                if ((word >> 32) == kStatusPrefix) break;
            }
            publish(status + t, prefix + total, kStatusPrefix);
        }
        tile_prefix = prefix;
    }
    __syncthreads();
    if (base + tid < n) out[base + tid] = tile[tid] + tile_prefix;
    if (base + tid + kScanThreads < n) out[base + tid + kScanThreads] = tile[tid + kScanThreads] + tile_prefix;
}
}  // namespace

void prefix_scan_exclusive_cuda(float* out, const float* in, int64_t batch, int64_t n_chunks, int64_t m, bool reverse) {
    ITTT_CHECK(batch >= 0 && n_chunks >= 0 && m >= 0, "prefix_scan_exclusive_cuda: bad sizes B ", batch, ", T ", n_chunks, ", m ", m);
    const int64_t total = batch * m;
    if (total == 0 || n_chunks == 0) return;
    const int blocks = static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 1 << 16));
    ITTT_LAUNCH(chunk_scan_kernel, blocks, kThreads, 0, 0)(out, in, n_chunks, m, reverse, total);
    CUDA_CHECK(cudaGetLastError());
}

int64_t prefix_scan_1d_blelloch_workspace_bytes(int64_t n) {
    return blelloch_workspace_floats(n) * static_cast<int64_t>(sizeof(float));
}

void prefix_scan_1d_blelloch_cuda(float* out, const float* in, int64_t n, void* workspace) {
    ITTT_CHECK(n >= 0, "prefix_scan_1d_blelloch_cuda: n = ", n);
    if (n == 0) return;
    ITTT_CHECK(workspace != nullptr, "prefix_scan_1d_blelloch_cuda: no workspace (size: prefix_scan_1d_blelloch_workspace_bytes)");
    blelloch_scan(out, in, n, static_cast<float*>(workspace));
}

int64_t prefix_scan_1d_lookback_workspace_bytes(int64_t n) {
    // One status word per tile, then the tile counter in its own 8-byte slot.
    return (tile_count(std::max<int64_t>(n, 0)) + 1) * static_cast<int64_t>(sizeof(unsigned long long));
}

void prefix_scan_1d_lookback_cuda(float* out, const float* in, int64_t n, void* workspace) {
    ITTT_CHECK(n >= 0, "prefix_scan_1d_lookback_cuda: n = ", n);
    if (n == 0) return;
    ITTT_CHECK(workspace != nullptr, "prefix_scan_1d_lookback_cuda: no workspace (size: prefix_scan_1d_lookback_workspace_bytes)");
    const int64_t tiles = tile_count(n);
    ITTT_CHECK(tiles < 2147483647LL, "prefix_scan_1d_lookback_cuda: n = ", n, " exceeds the grid limit");
    auto* status = static_cast<unsigned long long*>(workspace);
    auto* tile_counter = reinterpret_cast<unsigned int*>(status + tiles);
    // Every status starts "not ready" and the counter at 0; the memset is queued on
    // the same (default) stream, so it completes before the kernel starts.
    CUDA_CHECK(cudaMemsetAsync(workspace, 0, static_cast<size_t>(prefix_scan_1d_lookback_workspace_bytes(n))));
    ITTT_LAUNCH(lookback_scan_kernel, static_cast<unsigned>(tiles), kScanThreads, 0, 0)(out, in, n, status, tile_counter);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace ittt::kernels
