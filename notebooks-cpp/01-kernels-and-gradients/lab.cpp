// Lab 01: kernels and gradients. RMSNorm through ops, F32 against F64, a
// finite-difference gradient check and the RMSNorm backward derived by hand (your
// TODOs; the reference solutions are in solution.cpp), and why the check runs in double.
//   build/labs/01-kernels-and-gradients [--solution] [--check]
#include <algorithm>
#include <cmath>

#include "../lab_plot.h"
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
// Estimate every partial derivative dL/dx_i of loss() (which recomputes L from the current x)
// with a symmetric difference of step h, and leave x exactly as you found it. Elements are
// read and written with lab::get(x, i) / lab::set(x, i, v), in F32 and F64 alike.
// Return an empty vector until it is written ("not implemented").
std::vector<double> finite_difference_student([[maybe_unused]] Tensor& x, [[maybe_unused]] const std::function<double()>& loss,
                                              [[maybe_unused]] double h) {
    return {};  // TODO
}

// ---- TODO (exercise 2): the RMSNorm backward by hand ----
// Fill dx (rows, dim) with dL/dx for out = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps),
// given dout = dL/dout and the forward's rstd (rows). Derive it on paper first: rstd depends on
// every element of its row, so dout/dx is not diagonal. Return false until written.
bool rmsnorm_backward_dx_student([[maybe_unused]] Tensor& dx, [[maybe_unused]] const Tensor& dout, [[maybe_unused]] const Tensor& x,
                                 [[maybe_unused]] const Tensor& weight, [[maybe_unused]] const Tensor& rstd) {
    return false;  // TODO
}

}  // namespace

// The reference solutions (solution.cpp).
namespace solution {
LAB_SOLUTION std::vector<double> finite_difference(Tensor& x, const std::function<double()>& loss, double h);
LAB_SOLUTION bool rmsnorm_backward_dx(Tensor& dx, const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& rstd);
}  // namespace solution

namespace {

// max |a - b| / max |b|: one relative number for a whole gradient.
double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
    double err = 0, scale = 0;
    for (size_t i = 0; i < b.size(); ++i) err = std::max(err, std::fabs(a[i] - b[i])), scale = std::max(scale, std::fabs(b[i]));
    return err / scale;
}

}  // namespace

int main(int argc, char** argv) {
    lab::Options opt = lab::parse_flags(argc, argv, "Lab 01: kernels and gradients (rmsnorm, F32 vs F64, finite differences)");
    auto finite_difference = opt.solution ? solution::finite_difference : finite_difference_student;
    auto rmsnorm_backward_dx = opt.solution ? solution::rmsnorm_backward_dx : rmsnorm_backward_dx_student;
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
        const Tensor x_saved = x.clone(), w_saved = w.clone();
        std::vector<double> gx = finite_difference(x, [&] { return loss_of(x, w, R); }, 1e-6);
        if (checks.todo_done(!gx.empty(), "exercise 1 (finite_difference)", opt)) {
            std::vector<double> gw = finite_difference(w, [&] { return loss_of(x, w, R); }, 1e-6);
            double ex = relative_error(gx, dx_analytic), ew = relative_error(gw, dw_analytic);
            std::printf("  relative error dx: %.2e, dweight: %.2e\n", ex, ew);
            double max_dx = 0;
            for (double v : dx_analytic) max_dx = std::max(max_dx, std::fabs(v));
            std::vector<double> twice(dx_analytic);
            for (double& v : twice) v *= 2;
            checks.expect_close(gx, dx_analytic, 1e-7 * max_dx, "finite differences match the analytic dL/dx in F64",
                                {{twice, "twice the gradient: the two points x + h and x - h are 2h apart, not h"}}, kDim, "row");
            if (ex > 1e-7 && ex < 1e-3)
                std::printf("         hint: an error of order h (1e-6) is what a one-sided difference gives: the symmetric\n"
                            "         difference cancels the h^2 term of the Taylor series and is off by O(h^2) only\n");
            checks.expect(ew < 1e-7, "finite differences match the analytic dL/dweight in F64");
            checks.expect(lab::bitwise_equal(x, x_saved) && lab::bitwise_equal(w, w_saved), "x and weight are put back exactly");

            // A classic bug: drop the term that comes from rstd depending on x.
            std::vector<double> wrong(dx_analytic.size());
            for (int r = 0; r < kRows; ++r)
                for (int j = 0; j < kDim; ++j)
                    wrong[static_cast<size_t>(r * kDim + j)] = lab::get(R, r * kDim + j) * lab::get(w, j) * lab::get(rstd, r);
            double eb = relative_error(wrong, gx);
            std::printf("  a backward that forgets d rstd / dx: relative error %.2e  <- the check catches it\n", eb);
            checks.expect(eb > 1e-2, "the check flags the buggy backward");
        }

        lab::section(5, "Exercise 2: the RMSNorm backward, derived by hand");
        Tensor dx_mine = Tensor::zeros({kRows, kDim}, DType::F64);
        if (checks.todo_done(rmsnorm_backward_dx(dx_mine, R, x, w, rstd), "exercise 2 (rmsnorm_backward_dx)", opt)) {
            // Typical wrong answers, built from the op's dx: the direct path g*w*rstd plus the path through rstd.
            std::vector<double> direct(dx_analytic.size()), via_rstd(dx_analytic.size());
            for (size_t i = 0; i < direct.size(); ++i) {
                const size_t r = i / kDim, j = i % kDim;
                direct[i] = lab::get(R, static_cast<int64_t>(i)) * lab::get(w, static_cast<int64_t>(j)) * lab::get(rstd, static_cast<int64_t>(r));
                via_rstd[i] = dx_analytic[i] - direct[i];
            }
            auto with_rstd_path = [&](double factor) {
                std::vector<double> v(direct.size());
                for (size_t i = 0; i < v.size(); ++i) v[i] = direct[i] + factor * via_rstd[i];
                return v;
            };
            checks.expect_close(dx_mine.to_f64_vector(), dx_analytic, 1e-12, "your dL/dx equals ops::rmsnorm_backward's",
                                {{direct, "you have only the direct path g*w*rstd: rstd depends on every x of its row, so each x_j "
                                          "also moves every output of the row through rstd"},
                                 {with_rstd_path(2), "the path through rstd is twice too large: d mean(x^2)/dx_j = 2 x_j / D and "
                                                     "d rstd/d mean = -rstd^3 / 2, so the 2s cancel"},
                                 {with_rstd_path(0.5), "the path through rstd is half what it should be: a factor 2 from d(x^2)/dx lost?"},
                                 {with_rstd_path(-1), "the path through rstd has the wrong sign: a larger mean(x^2) makes rstd smaller"}},
                                kDim, "row");
            checks.expect(relative_error(dx_mine.to_f64_vector(), gx.empty() ? dx_analytic : gx) < 1e-7,
                          "your dL/dx matches the finite differences (exercise 1's, or the op's without them)");
        }

        lab::section(6, "Why gradient checks run in double: error against the step h");
        std::printf("  Truncation error shrinks like h^2; rounding error grows like u*|L|/h (u = unit roundoff).\n");
        if (checks.todo_done(!gx.empty(), "exercise 1 (finite_difference)", opt)) {
            Tensor x32 = x.to_dtype(DType::F32), w32 = w.to_dtype(DType::F32), R32 = R.to_dtype(DType::F32);
            double best32 = 1e300, best64 = 1e300;
            plots::Series s32 = lab::series("F32"), s64 = lab::series("F64");
            std::printf("  %8s  %14s  %14s\n", "h", "F32 rel. err", "F64 rel. err");
            for (double h : {1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8}) {
                double e32 = relative_error(finite_difference(x32, [&] { return loss_of(x32, w32, R32); }, h), dx_analytic);
                double e64 = relative_error(finite_difference(x, [&] { return loss_of(x, w, R); }, h), dx_analytic);
                best32 = std::min(best32, e32), best64 = std::min(best64, e64);
                std::printf("  %8.0e  %14.2e  %14.2e\n", h, e32, e64);
                s32.x.push_back(h), s32.y.push_back(e32), s64.x.push_back(h), s64.y.push_back(e64);
            }
            plots::LinePlot fig;
            fig.title = "Central differences of RMSNorm: relative error of dL/dx against the step h";
            fig.xlabel = "h", fig.ylabel = "max |finite difference - analytic| / max |analytic|";
            fig.log_x = fig.log_y = true, fig.series = {s32, s64};
            lab::plot(opt, fig, "01-kernels-and-gradients", "gradient_error_vs_h");
            std::printf("  best F32 %.1e (at one well-chosen h), best F64 %.1e. In F32 a gradient bug smaller than\n"
                        "  ~1e-4 hides in rounding; at the h that is right for F64 (1e-6) F32 is off by percents.\n",
                        best32, best64);
            checks.expect(best64 < 1e-8 && best32 > 100 * best64, "F64 resolves gradients far better than F32");
        }
        return checks.finish();
    });
}
