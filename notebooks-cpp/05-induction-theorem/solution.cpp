// Lab 05's reference solutions. Try the exercises in lab.cpp before you read this.
#include <algorithm>
#include <cmath>

#include "driver/theory.h"

#include "../lab_util.h"

LAB_SOLUTION_FILE;

namespace solution {

using namespace ittt;
using theory::Matrix;

double measure_eps(const Matrix& E) {
    double eps = 0;
    for (int a = 0; a < E.rows; ++a)
        for (int b = a + 1; b < E.rows; ++b) eps = std::max(eps, std::fabs(theory::dot(E.row(a), E.row(b), E.cols)));
    return eps;
}
double measure_c_norm_sq(const Matrix& E) {
    double c = INFINITY;
    for (int a = 0; a < E.rows; ++a) c = std::min(c, theory::dot(E.row(a), E.row(a), E.cols));
    return c;
}

}  // namespace solution
