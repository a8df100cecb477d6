// Tests of the per-chunk TTT update delta_i = V_[i]^T Z_[i] and of its clipping.
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {
// delta[b,i,a,c] = sum over t in chunk i of v[b,t,a] z[b,t,c], in double.
std::vector<double> delta_reference(const Tensor& v, const Tensor& z, int64_t chunk) {
    const int64_t B = z.dim(0), n = z.dim(1), d = v.dim(2), f = z.dim(2), T = (n + chunk - 1) / chunk;
    std::vector<double> vv = v.to_f64_vector(), zv = z.to_f64_vector(), out(static_cast<size_t>(B * T * d * f), 0.0);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < n; ++t)
            for (int64_t a = 0; a < d; ++a)
                for (int64_t c = 0; c < f; ++c)
                    out[static_cast<size_t>(((b * T + t / chunk) * d + a) * f + c)] +=
                        vv[static_cast<size_t>((b * n + t) * d + a)] * zv[static_cast<size_t>((b * n + t) * f + c)];
    return out;
}

int64_t chunk_count(int64_t n, int64_t chunk) { return (n + chunk - 1) / chunk; }

double frobenius(const double* m, int64_t size) {
    double s = 0;
    for (int64_t j = 0; j < size; ++j) s += m[j] * m[j];
    return std::sqrt(s);
}
}  // namespace

TEST_CASE("ttt_chunk_delta matches the explicit loop on ragged shapes", "[ttt_delta]") {
    const int64_t B = 2, d = 3, f = 5;
    for (int64_t n : {1, 17, 24})
        for (int chunk : {1, 4, 5, 17, 32})
            for (DType dtype : {DType::F32, DType::F64}) {
                const int64_t T = (n + chunk - 1) / chunk;
                INFO("n " << n << ", chunk " << chunk << ", " << dtype_name(dtype));
                Tensor v = random_tensor({B, n, d}, 21, 1.0, dtype);
                Tensor z = random_tensor({B, n, f}, 22, 1.0, dtype);
                Tensor delta = random_tensor({B, T, d, f}, 23, 1.0, dtype);  // garbage: must be overwritten
                ops::ttt_chunk_delta(delta, v, z, chunk);
                Tensor ref = Tensor::from_vector(delta_reference(v, z, chunk), delta.shape());
                // F32: sums of up to 32 products of unit normals, ~sqrt(32) * 6e-8 * |terms|.
                double tol = dtype == DType::F32 ? 1e-5 : 1e-13;
                CHECK(check_close(delta, ref, tol, tol, "delta"));
            }
}

TEST_CASE("ttt_chunk_delta on a shape large enough to run in parallel", "[ttt_delta]") {
    const int64_t B = 2, n = 70, d = 32, f = 32;  // B*n*d*f above the kernel's OpenMP threshold
    const int chunk = 16;
    Tensor v = random_tensor({B, n, d}, 24);
    Tensor z = random_tensor({B, n, f}, 25);
    Tensor delta = Tensor::zeros({B, chunk_count(n, chunk), d, f});
    ops::ttt_chunk_delta(delta, v, z, chunk);
    // F32 sums of 16 products of unit normals.
    CHECK(check_close(delta.to_f64_vector(), delta_reference(v, z, chunk), 1e-5, 1e-5, "delta"));
}

TEST_CASE("ttt_clip_deltas brings ||eta delta_i|| down to tau and leaves smaller ones alone", "[ttt_delta]") {
    const int64_t B = 2, T = 3, d = 4, f = 6, size = d * f;
    const double tau = 1.0;
    for (double eta : {0.3, -2.0})
        for (DType dtype : {DType::F32, DType::F64}) {
            INFO("eta " << eta << ", " << dtype_name(dtype));
            Tensor delta = random_tensor({B, T, d, f}, 31, 1.0, DType::F64);
            // Spread the norms of eta * delta_i over [~0.1, ~10] around tau = 1.
            for (int64_t i = 0; i < B * T; ++i) {
                double* m = delta.data<double>() + i * size;
                double target = 0.1 * std::pow(3.0, static_cast<double>(i)) / std::fabs(eta);
                double norm = frobenius(m, size);
                for (int64_t j = 0; j < size; ++j) m[j] *= target / norm;
            }
            delta = delta.to_dtype(dtype);
            Tensor before = delta.clone();
            ops::ttt_clip_deltas(delta, eta, tau);
            std::vector<double> was = before.to_f64_vector(), now = delta.to_f64_vector();
            int clipped = 0;
            for (int64_t i = 0; i < B * T; ++i) {
                double norm_before = std::fabs(eta) * frobenius(was.data() + i * size, size);
                double norm_after = std::fabs(eta) * frobenius(now.data() + i * size, size);
                INFO("matrix " << i << ": ||eta delta|| " << norm_before << " -> " << norm_after);
                if (norm_before > tau) {
                    ++clipped;
                    // F32 holds the scaled entries to ~6e-8 relative.
                    CHECK(std::fabs(norm_after - tau) <= (dtype == DType::F32 ? 1e-6 : 1e-13) * tau);
                } else {
                    size_t bytes = static_cast<size_t>(size) * dtype_size(dtype);
                    CHECK(std::memcmp(static_cast<const char*>(delta.raw()) + i * bytes,
                                      static_cast<const char*>(before.raw()) + i * bytes, bytes) == 0);
                }
            }
            CHECK(clipped == 3);  // norms 2.7, 8.1, 24.3 of 0.1 .. 24.3
        }
}

TEST_CASE("ttt_clip_deltas with eta = 0 never clips", "[ttt_delta]") {
    Tensor delta = random_tensor({1, 2, 3, 3}, 32, 100.0);
    Tensor before = delta.clone();
    ops::ttt_clip_deltas(delta, 0.0, 1e-5);
    CHECK(bitwise_equal(delta, before));
}

TEST_CASE("ttt_chunk_delta and ttt_clip_deltas reject bad arguments", "[ttt_delta]") {
    Tensor v = Tensor::zeros({2, 9, 3}), z = Tensor::zeros({2, 9, 5});
    Tensor delta = Tensor::zeros({2, 3, 3, 5});  // chunk 4: T = 3
    ops::ttt_chunk_delta(delta, v, z, 4);
    CHECK_THROWS_WITH(ops::ttt_chunk_delta(delta, v, z, 2), Catch::Contains("delta") && Catch::Contains("(2, 5, 3, 5)"));
    CHECK_THROWS_WITH(ops::ttt_chunk_delta(delta, v, z, 0), Catch::Contains("chunk"));
    Tensor v_short = Tensor::zeros({2, 8, 3});
    CHECK_THROWS_WITH(ops::ttt_chunk_delta(delta, v_short, z, 4), Catch::Contains("v is") && Catch::Contains("(2, 9, 3)"));
    Tensor z2 = Tensor::zeros({18, 5});
    CHECK_THROWS_WITH(ops::ttt_chunk_delta(delta, v, z2, 4), Catch::Contains("3-D"));
    Tensor v64 = Tensor::zeros({2, 9, 3}, DType::F64);
    CHECK_THROWS_AS(ops::ttt_chunk_delta(delta, v64, z, 4), Error);
    CHECK_THROWS_WITH(ops::ttt_clip_deltas(delta, 0.3, 0.0), Catch::Contains("tau"));
    CHECK_THROWS_WITH(ops::ttt_clip_deltas(delta, 0.3, -1.0), Catch::Contains("tau"));
    Tensor flat = Tensor::zeros({7});
    CHECK_THROWS_WITH(ops::ttt_clip_deltas(flat, 0.3, 1.0), Catch::Contains("delta"));
}
