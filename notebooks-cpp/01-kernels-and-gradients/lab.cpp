// Lab 01: kernels and gradients. RMSNorm through ops, F32 against F64, a
// finite-difference gradient check (your TODO), and why that check runs in double.
//   build/labs/01-kernels-and-gradients [--solution] [--check]
#include <algorithm>
#include <cmath>

#include "../lab_util.h"
#include "ops/ops.h"

using namespace ittt;

namespace {

constexpr int kRows = 4, kDim = 8;
constexpr double kEps = 1e-6;

// out (rows, dim) = x * rstd * weight, through the op the model uses.
Tensor rmsnorm(const Tensor& x, const Tensor& weight) {
    Tensor out = Tensor::empty(x.shape(), x.dtype()), rstd = Tensor::empty({x.dim(0)}, x.dtype());
    ops::rmsnorm_forward(out, rstd, x, weight, kEps);
    return out;
}

// The scalar every gradient check needs: L = sum(out * R), summed in double, so dL/dout = R.
double loss_of(const Tensor& x, const Tensor& weight, const Tensor& R) {
    std::vector<double> o = rmsnorm(x, weight).to_f64_vector(), r = R.to_f64_vector();
    double s = 0;
    for (size_t i = 0; i < o.size(); ++i) s += o[i] * r[i];
    return s;
}

// ---- TODO (exercise 1): central finite differences ----
// For each element i of x:  g[i] = (L(x + h e_i) - L(x - h e_i)) / (2h),
// where loss() recomputes L from the current x. Put x[i] back afterwards.
// Read and write elements with lab::get(x, i) / lab::set(x, i, v): they work in F32 and F64.
// Return an empty vector until it is written ("not implemented").
std::vector<double> finite_difference_student([[maybe_unused]] Tensor& x, [[maybe_unused]] const std::function<double()>& loss,
                                              [[maybe_unused]] double h) {
    return {};  // TODO
}

std::vector<double> finite_difference_reference(Tensor& x, const std::function<double()>& loss, double h) {
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

// max |a - b| / max |b|: one relative number for a whole gradient.
double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
    double err = 0, scale = 0;
    for (size_t i = 0; i < b.size(); ++i) err = std::max(err, std::fabs(a[i] - b[i])), scale = std::max(scale, std::fabs(b[i]));
    return err / scale;
}

}  // namespace

int main(int argc, char** argv) {
    lab::Options opt = lab::parse_flags(argc, argv, "Lab 01: kernels and gradients (rmsnorm, F32 vs F64, finite differences)");
    auto finite_difference = opt.solution ? finite_difference_reference : finite_difference_student;
    return lab::run([&] {
        lab::Checks checks;

        lab::section(1, "RMSNorm through ops::rmsnorm_forward (F64)");
        Tensor x = lab::random_tensor({kRows, kDim}, 1, 1.0, DType::F64);
        Tensor w = lab::random_tensor({kDim}, 2, 0.1, DType::F64);
        for (int64_t i = 0; i < kDim; ++i) lab::set(w, i, 1.0 + lab::get(w, i));  // weights near 1, as after init
        Tensor out = Tensor::empty({kRows, kDim}, DType::F64), rstd = Tensor::empty({kRows}, DType::F64);
        ops::rmsnorm_forward(out, rstd, x, w, kEps);
        double ms = 0;
        for (int j = 0; j < kDim; ++j) ms += lab::get(x, j) * lab::get(x, j) / kDim;
        std::printf("  row 0 of x:   ");
        for (int j = 0; j < kDim; ++j) std::printf("%+.4f ", lab::get(x, j));
        std::printf("\n  row 0 of out: ");
        for (int j = 0; j < kDim; ++j) std::printf("%+.4f ", lab::get(out, j));
        std::printf("\n  rstd[0] from the op: %.12f,  by hand 1/sqrt(mean(x^2) + eps): %.12f\n", lab::get(rstd, 0),
                    1 / std::sqrt(ms + kEps));
        checks.expect(std::fabs(lab::get(rstd, 0) - 1 / std::sqrt(ms + kEps)) < 1e-12, "rstd matches the formula");

        lab::section(2, "The same op in F32: how far from F64?");
        Tensor out32 = rmsnorm(x.to_dtype(DType::F32), w.to_dtype(DType::F32));
        double diff = lab::max_abs_diff(out32, out);
        std::printf("  max |out_F32 - out_F64| = %.3g   (F32 unit roundoff 2^-24 = %.3g, values are O(1))\n", diff,
                    std::ldexp(1.0, -24));
        checks.expect(diff < 1e-5, "F32 agrees with F64 to a few units of F32 roundoff");

        lab::section(3, "The backward: ops::rmsnorm_backward for L = sum(out * R)");
        Tensor R = lab::random_tensor({kRows, kDim}, 3, 1.0, DType::F64);
        Tensor dx = Tensor::empty({kRows, kDim}, DType::F64), dw = Tensor::zeros({kDim}, DType::F64);
        ops::rmsnorm_backward(dx, dw, R, x, w, rstd);  // dout = R; dw accumulates, so it starts at 0
        std::vector<double> dx_analytic = dx.to_f64_vector(), dw_analytic = dw.to_f64_vector();
        std::printf("  dL/dx row 0: ");
        for (int j = 0; j < kDim; ++j) std::printf("%+.4f ", dx_analytic[static_cast<size_t>(j)]);
        std::printf("\n  dL/dweight:  ");
        for (int j = 0; j < kDim; ++j) std::printf("%+.4f ", dw_analytic[static_cast<size_t>(j)]);
        std::printf("\n");

        lab::section(4, "Exercise 1: check the backward with central differences (F64, h = 1e-6)");
        std::vector<double> gx = finite_difference(x, [&] { return loss_of(x, w, R); }, 1e-6);
        if (checks.todo_done(!gx.empty(), "exercise 1 (finite_difference)", opt)) {
            std::vector<double> gw = finite_difference(w, [&] { return loss_of(x, w, R); }, 1e-6);
            double ex = relative_error(gx, dx_analytic), ew = relative_error(gw, dw_analytic);
            std::printf("  relative error dx: %.2e, dweight: %.2e\n", ex, ew);
            checks.expect(ex < 1e-7 && ew < 1e-7, "the analytic backward matches finite differences in F64");

            // A classic bug: drop the term that comes from rstd depending on x.
            std::vector<double> wrong(dx_analytic.size());
            for (int r = 0; r < kRows; ++r)
                for (int j = 0; j < kDim; ++j)
                    wrong[static_cast<size_t>(r * kDim + j)] = lab::get(R, r * kDim + j) * lab::get(w, j) * lab::get(rstd, r);
            double eb = relative_error(wrong, gx);
            std::printf("  a backward that forgets d rstd / dx: relative error %.2e  <- the check catches it\n", eb);
            checks.expect(eb > 1e-2, "the check flags the buggy backward");
        }

        lab::section(5, "Why gradient checks run in double: error against the step h");
        std::printf("  Truncation error shrinks like h^2; rounding error grows like u*|L|/h (u = unit roundoff).\n");
        if (checks.todo_done(!gx.empty(), "exercise 1 (finite_difference)", opt)) {
            Tensor x32 = x.to_dtype(DType::F32), w32 = w.to_dtype(DType::F32), R32 = R.to_dtype(DType::F32);
            double best32 = 1e300, best64 = 1e300;
            std::printf("  %8s  %14s  %14s\n", "h", "F32 rel. err", "F64 rel. err");
            for (double h : {1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8}) {
                double e32 = relative_error(finite_difference(x32, [&] { return loss_of(x32, w32, R32); }, h), dx_analytic);
                double e64 = relative_error(finite_difference(x, [&] { return loss_of(x, w, R); }, h), dx_analytic);
                best32 = std::min(best32, e32), best64 = std::min(best64, e64);
                std::printf("  %8.0e  %14.2e  %14.2e\n", h, e32, e64);
            }
            std::printf("  best F32 %.1e (at one well-chosen h), best F64 %.1e. In F32 a gradient bug smaller than\n"
                        "  ~1e-4 hides in rounding; at the h that is right for F64 (1e-6) F32 is off by percents.\n",
                        best32, best64);
            checks.expect(best64 < 1e-8 && best32 > 100 * best64, "F64 resolves gradients far better than F32");
        }
        return checks.finish();
    });
}
