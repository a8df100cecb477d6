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

}  // namespace solution
