// Lab 03's reference solutions. Try the exercises in lab.cpp before you read this.
#include <cstdint>

#include "../lab_util.h"

LAB_SOLUTION_FILE;

namespace solution {

double visible_pairs(int64_t n, int64_t w) {
    if (w <= 0 || w >= n) return 0.5 * static_cast<double>(n) * static_cast<double>(n + 1);  // the causal triangle
    // queries 0..w-1 see t+1 keys, the other n-w see w keys each
    return 0.5 * static_cast<double>(w) * static_cast<double>(w + 1) + static_cast<double>(n - w) * static_cast<double>(w);
}

}  // namespace solution
