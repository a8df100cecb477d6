// Lab 01's reference solutions. Try the exercises in lab.cpp before you read this.
#include <cmath>
#include <functional>
#include <vector>

#include "../lab_util.h"

LAB_SOLUTION_FILE;

namespace solution {

using ittt::Tensor;

// g[i] = (L(x + h e_i) - L(x - h e_i)) / (2h): the symmetric difference cancels the h^2 term of
// the Taylor series, so its error is O(h^2) where a one-sided difference's is O(h).
std::vector<double> finite_difference(Tensor& x, const std::function<double()>& loss, double h) {
    std::vector<double> g(static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) {
        double saved = lab::get(x, i);
        lab::set(x, i, saved + h);
        double up = loss();
        lab::set(x, i, saved - h);
        double down = loss();
        lab::set(x, i, saved);
        g[static_cast<size_t>(i)] = (up - down) / (2 * h);
    }
    return g;
}

// Row by row, with g = dout and D = dim:
//   out_j = x_j r w_j,  r = (mean(x^2) + eps)^(-1/2),  dr/dx_j = -r^3 x_j / D
//   dL/dx_j = g_j w_j r + sum_k g_k w_k x_k dr/dx_j = r (g_j w_j - x_j r^2 mean(g w x))
bool rmsnorm_backward_dx(Tensor& dx, const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& rstd) {
    const int64_t rows = x.dim(0), dim = x.dim(1);
    for (int64_t r = 0; r < rows; ++r) {
        const double rs = lab::get(rstd, r);
        double mean_gwx = 0;
        for (int64_t j = 0; j < dim; ++j) mean_gwx += lab::get(dout, r * dim + j) * lab::get(weight, j) * lab::get(x, r * dim + j);
        mean_gwx /= static_cast<double>(dim);
        for (int64_t j = 0; j < dim; ++j)
            lab::set(dx, r * dim + j, rs * (lab::get(dout, r * dim + j) * lab::get(weight, j) - lab::get(x, r * dim + j) * rs * rs * mean_gwx));
    }
    return true;
}

}  // namespace solution
