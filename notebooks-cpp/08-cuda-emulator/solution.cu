// Lab 08's reference kernel. Try the exercise in lab.cu before you read this.
// Compiled like lab.cu: host C++ against the CPU emulator (notebooks-cpp/labs.mk).
#include "../lab_util.h"

LAB_SOLUTION_FILE;

namespace solution {

// The bug: lanes past the end of a short row returned before __shfl_xor_sync, whose mask
// 0xffffffff names all 32 lanes: every named lane must reach the shuffle. Now only whole
// warps leave; a lane with no element of the row keeps v = 0 and still shuffles.
__global__ void row_sums(float* sums, const float* x, int rows, int len) {
    const int row = static_cast<int>(blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
    if (row >= rows) return;  // whole warps leave together, so the shuffles stay full-warp
    float v = 0.0f;
    for (int j = lane; j < len; j += 32) v += x[row * len + j];  // a lane past the end adds nothing
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (lane == 0) sums[row] = v;
}


constexpr int kTile = 16;

// One block per kTile x kTile tile of dW_i. The chunk's rows go through shared memory kTile at a
// time: each thread loads one element of the V tile and one of the Z tile, and after the barrier
// every thread reads a whole row of each (kTile uses per load). The second barrier keeps the next
// step's loads from overwriting a tile that slower threads are still reading.
__global__ void chunk_delta(float* dW, const float* V, const float* Z, int n, int d, int f, int C) {
    __shared__ float v_tile[kTile][kTile];  // [row of the chunk][r]
    __shared__ float z_tile[kTile][kTile];  // [row of the chunk][c]
    const int tiles_d = (d + kTile - 1) / kTile, tiles_f = (f + kTile - 1) / kTile;
    const int block = static_cast<int>(blockIdx.x);
    const int chunk = block / (tiles_d * tiles_f), tile_r = block / tiles_f % tiles_d, tile_c = block % tiles_f;
    const int tr = static_cast<int>(threadIdx.x) / kTile, tc = static_cast<int>(threadIdx.x) % kTile;
    const int r = tile_r * kTile + tr, c = tile_c * kTile + tc;  // this thread's element of dW_i
    const int begin = chunk * C, end = min(begin + C, n);
    float acc = 0.0f;
    for (int t0 = begin; t0 < end; t0 += kTile) {
        // thread (tr, tc) loads row t0 + tr: column tile_r*kTile + tc of V, column tile_c*kTile + tc of Z
        const int t = t0 + tr, vr = tile_r * kTile + tc, zc = tile_c * kTile + tc;
        v_tile[tr][tc] = t < end && vr < d ? V[t * d + vr] : 0.0f;
        z_tile[tr][tc] = t < end && zc < f ? Z[t * f + zc] : 0.0f;
        __syncthreads();
        for (int k = 0; k < kTile; ++k) acc += v_tile[k][tr] * z_tile[k][tc];
        __syncthreads();
    }
    if (r < d && c < f) dW[(static_cast<size_t>(chunk) * d + r) * f + c] = acc;
}

}  // namespace solution
