// [cuda] tests of the 1-D exclusive scans of kernels/prefix_scan (Blelloch's tree and a
// decoupled look-back), which are CUDA launchers outside the op table: the chunk scan the
// model runs (ops::prefix_scan_exclusive) is in the op harness (tests/test_ops_harness.cpp).
// Every case starts with ITTT_SKIP_WITHOUT_CUDA(): without a GPU it is skipped.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/prefix_scan/prefix_scan.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {
enum class Scan1d { Blelloch, Lookback };

// out = exclusive scan of in (both CUDA, F32, (n)) by the chosen 1-D launcher.
// The launchers exist only in a CUDA build; without one every caller was skipped.
void scan_1d(Scan1d which, Tensor& out, const Tensor& in) {
#if !ITTT_WITH_CUDA
    (void)which, (void)out, (void)in;
    FAIL("scan_1d: built without CUDA");
#else
    const int64_t n = in.numel();
    const int64_t bytes = which == Scan1d::Blelloch ? kernels::prefix_scan_1d_blelloch_workspace_bytes(n)
                                                    : kernels::prefix_scan_1d_lookback_workspace_bytes(n);
    Tensor workspace = Tensor::empty({(bytes + 7) / 8}, DType::F64, Device::CUDA);  // 8-byte units keep it aligned
    if (which == Scan1d::Blelloch) kernels::prefix_scan_1d_blelloch_cuda(out.data<float>(), in.data<float>(), n, workspace.raw());
    else kernels::prefix_scan_1d_lookback_cuda(out.data<float>(), in.data<float>(), n, workspace.raw());
#endif
}

const char* scan_name(Scan1d which) { return which == Scan1d::Blelloch ? "blelloch" : "lookback"; }

// n = 1, one tile +- 1 (512), one tile of tiles +- 1 (512^2, two recursion levels), and a few million.
// (Small shapes: one length of two recursion levels, none of millions.)
std::vector<int64_t> scan_lengths() {
    if (small_shapes()) return {1, 17, 511, 512, 513, 1000, 262145};
    return {1, 17, 511, 512, 513, 1000, 262144, 262145, 3000001};
}
}  // namespace

TEST_CASE("CUDA 1-D scans (Blelloch, look-back) are exact on integer-valued inputs", "[cuda][prefix_scan]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (Scan1d which : {Scan1d::Blelloch, Scan1d::Lookback})
        for (int64_t n : scan_lengths()) {
            INFO(scan_name(which) << ", n " << n);
            // Integers in [-2, 2]: every partial sum, in any order, is an integer below
            // 2 * 3e6 < 2^24, so float represents it exactly and the order cannot matter.
            Tensor in = random_ints({n}, 151, -2, 3).to_dtype(DType::F32);  // I32 -> F32 on the host
            std::vector<double> ref(static_cast<size_t>(n));
            const float* x = in.data<float>();
            double running = 0;
            for (int64_t i = 0; i < n; ++i) {
                ref[static_cast<size_t>(i)] = running;
                running += x[i];
            }
            Tensor out = gpu(random_tensor({n}, 152));
            scan_1d(which, out, gpu(in));
            CHECK(check_close(out.to_f64_vector(), ref, 0, 0, std::string(scan_name(which)) + " integer scan"));
        }
}

TEST_CASE("CUDA 1-D scans match a sequential loop on normal floats", "[cuda][prefix_scan]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (Scan1d which : {Scan1d::Blelloch, Scan1d::Lookback})
        for (int64_t n : scan_lengths()) {
            INFO(scan_name(which) << ", n " << n);
            Tensor in = random_tensor({n}, 161);
            const float* x = in.data<float>();
            std::vector<double> ref(static_cast<size_t>(n)), abs_prefix(static_cast<size_t>(n));
            double running = 0, running_abs = 0;
            for (int64_t i = 0; i < n; ++i) {
                ref[static_cast<size_t>(i)] = running;
                abs_prefix[static_cast<size_t>(i)] = running_abs;
                running += x[i];
                running_abs += std::fabs(x[i]);
            }
            Tensor out_g = Tensor::zeros({n}, DType::F32, Device::CUDA);
            scan_1d(which, out_g, gpu(in));
            std::vector<double> out = out_g.to_f64_vector();
            // Each addition of a tree (or look-back chain) rounds by at most eps times a
            // partial sum <= sum_{j<i} |x_j|; 1e-4 of that allows ~800 rounding steps,
            // far more than the ~30 levels plus a look-back chain that can occur.
            int64_t bad = 0;
            double worst = 0;
            for (int64_t i = 0; i < n; ++i) {
                const double err = std::fabs(out[static_cast<size_t>(i)] - ref[static_cast<size_t>(i)]);
                const double tol = 1e-4 * abs_prefix[static_cast<size_t>(i)] + 1e-6;
                if (!(err <= tol)) ++bad;  // NaN counts as bad
                worst = std::max(worst, err / tol);
            }
            INFO("elements out of tolerance: " << bad << ", worst err/tol " << worst);
            CHECK(bad == 0);
        }
}

TEST_CASE("CUDA Blelloch 1-D scan is the same bits on every run", "[cuda][prefix_scan]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const int64_t n = small_shapes() ? 100003 : 1000003;
    Tensor in = gpu(random_tensor({n}, 171));
    Tensor a = Tensor::zeros({n}, DType::F32, Device::CUDA), b = Tensor::zeros({n}, DType::F32, Device::CUDA);
    scan_1d(Scan1d::Blelloch, a, in);
    scan_1d(Scan1d::Blelloch, b, in);
    CHECK(bitwise_equal(a, b));
}
