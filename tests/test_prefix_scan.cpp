// Tests of the exclusive chunk scan: a sequential loop, forward and reverse, ragged T.
#include <vector>

#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {
// out[i] = out[i-1] + in[i-1] one chunk at a time (reverse: from the end), in T.
template <class T>
Tensor sequential_scan(const Tensor& in, bool reverse) {
    const int64_t B = in.dim(0), n_chunks = in.dim(1), m = in.numel() / (B * n_chunks);
    Tensor out = Tensor::zeros(in.shape(), in.dtype());
    const T* x = in.data<T>();
    T* o = out.data<T>();
    for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < m; ++j) {
            T running = 0;
            for (int64_t k = 0; k < n_chunks; ++k) {
                int64_t i = reverse ? n_chunks - 1 - k : k;
                o[(b * n_chunks + i) * m + j] = running;
                running += x[(b * n_chunks + i) * m + j];
            }
        }
    return out;
}

// The definition summed in double: sum over j < i (or j > i).
std::vector<double> scan_definition(const Tensor& in, bool reverse) {
    const int64_t B = in.dim(0), n_chunks = in.dim(1), m = in.numel() / (B * n_chunks);
    std::vector<double> x = in.to_f64_vector(), out(x.size(), 0.0);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < n_chunks; ++i)
            for (int64_t j = 0; j < n_chunks; ++j)
                if (reverse ? j > i : j < i)
                    for (int64_t e = 0; e < m; ++e)
                        out[static_cast<size_t>((b * n_chunks + i) * m + e)] += x[static_cast<size_t>((b * n_chunks + j) * m + e)];
    return out;
}
}  // namespace

TEST_CASE("prefix_scan_exclusive equals a sequential loop, forward and reverse", "[prefix_scan]") {
    for (int64_t n_chunks : {1, 2, 7})
        for (Shape tail : {Shape{3, 5}, Shape{5000}, Shape{}})  // 5000: several column blocks, and parallel at T = 7
            for (bool reverse : {false, true})
                for (DType dtype : {DType::F32, DType::F64}) {
                    Shape shape = {2, n_chunks};
                    shape.insert(shape.end(), tail.begin(), tail.end());
                    INFO("shape " << shape_str(shape) << (reverse ? " reverse" : " forward") << " " << dtype_name(dtype));
                    Tensor in = random_tensor(shape, 11, 1.0, dtype);
                    Tensor out = random_tensor(shape, 12, 1.0, dtype);  // garbage: must be overwritten
                    ops::prefix_scan_exclusive(out, in, reverse);
                    Tensor seq = dtype == DType::F32 ? sequential_scan<float>(in, reverse) : sequential_scan<double>(in, reverse);
                    // Same additions in the same order: bit for bit.
                    CHECK(bitwise_equal(out, seq));
                    // And the definition itself; F32 sums of at most 6 unit normals.
                    double tol = dtype == DType::F32 ? 1e-6 : 1e-14;
                    CHECK(check_close(out.to_f64_vector(), scan_definition(in, reverse), tol, tol, "scan"));
                }
}

TEST_CASE("prefix_scan_exclusive: first (last) chunk is zero, a scan of ones counts", "[prefix_scan]") {
    Tensor ones = Tensor::zeros({1, 4, 2});
    ops::fill(ones, 1.0);
    Tensor out = Tensor::zeros({1, 4, 2});
    ops::prefix_scan_exclusive(out, ones, false);
    CHECK(out.to_f64_vector() == std::vector<double>{0, 0, 1, 1, 2, 2, 3, 3});
    ops::prefix_scan_exclusive(out, ones, true);
    CHECK(out.to_f64_vector() == std::vector<double>{3, 3, 2, 2, 1, 1, 0, 0});
}

TEST_CASE("prefix_scan_exclusive rejects in-place use and bad shapes", "[prefix_scan]") {
    Tensor x = Tensor::zeros({2, 3, 4});
    CHECK_THROWS_WITH(ops::prefix_scan_exclusive(x, x, false), Catch::Contains("share memory"));
    Tensor alias = x.view({2, 3, 4});
    CHECK_THROWS_WITH(ops::prefix_scan_exclusive(alias, x, true), Catch::Contains("share memory"));
    Tensor out_bad = Tensor::zeros({2, 4, 4});
    CHECK_THROWS_WITH(ops::prefix_scan_exclusive(out_bad, x, false), Catch::Contains("out") && Catch::Contains("(2, 4, 4)"));
    Tensor flat = Tensor::zeros({6}), flat_out = Tensor::zeros({6});
    CHECK_THROWS_WITH(ops::prefix_scan_exclusive(flat_out, flat, false), Catch::Contains("at least 2 dims"));
    Tensor out64 = Tensor::zeros({2, 3, 4}, DType::F64);
    CHECK_THROWS_AS(ops::prefix_scan_exclusive(out64, x, false), Error);
}
