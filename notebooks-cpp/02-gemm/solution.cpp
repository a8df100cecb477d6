// Lab 02's reference solutions. Try the exercises in lab.cpp before you read this.
#include <algorithm>

#include "../lab_util.h"

LAB_SOLUTION_FILE;

namespace solution {

double gemm_flops(double M, double N, double K) { return 2 * M * N * K; }
double gemm_min_bytes(double M, double N, double K) { return 4 * (M * K + K * N + M * N); }
double roofline(double intensity, double peak, double bandwidth) { return std::min(peak, intensity * bandwidth); }

}  // namespace solution
