// Tests of ttt_apply forward/backward, and of the whole TTT layer core
// (delta -> scan -> apply) against finite differences and a chunk-by-chunk loop.
#include <cstring>
#include <vector>

#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {
int64_t chunk_count(int64_t n, int64_t chunk) { return (n + chunk - 1) / chunk; }

// o[b,t,a] = sum_c z[b,t,c] (wd[a,c] + eta s[b,i,a,c]), i = t / chunk, in double.
std::vector<double> apply_reference(const Tensor& z, const Tensor& wd, const Tensor& s, double eta, int64_t chunk) {
    const int64_t B = z.dim(0), n = z.dim(1), f = z.dim(2), d = wd.dim(0), T = chunk_count(n, chunk);
    std::vector<double> zv = z.to_f64_vector(), wv = wd.to_f64_vector(), sv = s.to_f64_vector();
    std::vector<double> o(static_cast<size_t>(B * n * d), 0.0);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < n; ++t)
            for (int64_t a = 0; a < d; ++a) {
                double acc = 0;
                for (int64_t c = 0; c < f; ++c) {
                    double w = wv[static_cast<size_t>(a * f + c)] + eta * sv[static_cast<size_t>(((b * T + t / chunk) * d + a) * f + c)];
                    acc += zv[static_cast<size_t>((b * n + t) * f + c)] * w;
                }
                o[static_cast<size_t>((b * n + t) * d + a)] = acc;
            }
    return o;
}

// dz[t,c] = sum_a do[t,a] (wd + eta s_i)[a,c] + eta v[t,a] g_i[a,c];  dv[t,a] = eta sum_c z[t,c] g_i[a,c].
void apply_backward_reference(std::vector<double>& dz, std::vector<double>& dv, const Tensor& dout, const Tensor& z,
                              const Tensor& v, const Tensor& wd, const Tensor& s, const Tensor& g, double eta, int64_t chunk) {
    const int64_t B = z.dim(0), n = z.dim(1), f = z.dim(2), d = wd.dim(0), T = chunk_count(n, chunk);
    std::vector<double> dov = dout.to_f64_vector(), zv = z.to_f64_vector(), vv = v.to_f64_vector(), wv = wd.to_f64_vector(),
                        sv = s.to_f64_vector(), gv = g.to_f64_vector();
    dz.assign(static_cast<size_t>(B * n * f), 0.0);
    dv.assign(static_cast<size_t>(B * n * d), 0.0);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < n; ++t)
            for (int64_t a = 0; a < d; ++a)
                for (int64_t c = 0; c < f; ++c) {
                    size_t m = static_cast<size_t>(((b * T + t / chunk) * d + a) * f + c);
                    double w = wv[static_cast<size_t>(a * f + c)] + eta * sv[m];
                    dz[static_cast<size_t>((b * n + t) * f + c)] +=
                        dov[static_cast<size_t>((b * n + t) * d + a)] * w + eta * vv[static_cast<size_t>((b * n + t) * d + a)] * gv[m];
                    dv[static_cast<size_t>((b * n + t) * d + a)] += eta * zv[static_cast<size_t>((b * n + t) * f + c)] * gv[m];
                }
}

// The TTT layer core, parallel form: S = exclusive scan of the chunk deltas, O = apply(Z, Wd, S).
Tensor core_forward(const Tensor& v, const Tensor& z, const Tensor& wd, double eta, int chunk, Tensor* s_out = nullptr) {
    const int64_t B = z.dim(0), n = z.dim(1), f = z.dim(2), d = wd.dim(0), T = chunk_count(n, chunk);
    Tensor delta = Tensor::zeros({B, T, d, f}, z.dtype()), s = Tensor::zeros({B, T, d, f}, z.dtype());
    ops::ttt_chunk_delta(delta, v, z, chunk);
    ops::prefix_scan_exclusive(s, delta, false);
    Tensor o = Tensor::zeros({B, n, d}, z.dtype());
    ops::ttt_apply_forward(o, z, wd, s, eta, chunk);
    if (s_out) *s_out = s;
    return o;
}

struct CoreGrads {
    Tensor dv, dz, dwd;
};

// docs/method.md section 3: Wbar_i = dO_[i]^T Z_[i], G = exclusive suffix sum of the Wbar_i, dWd = sum_i Wbar_i.
CoreGrads core_backward(const Tensor& dout, const Tensor& v, const Tensor& z, const Tensor& wd, double eta, int chunk) {
    const int64_t B = z.dim(0), n = z.dim(1), f = z.dim(2), d = wd.dim(0), T = chunk_count(n, chunk);
    Tensor s;
    core_forward(v, z, wd, eta, chunk, &s);
    Tensor p = Tensor::zeros({B, T, d, f}, z.dtype()), g = Tensor::zeros({B, T, d, f}, z.dtype());
    ops::ttt_chunk_delta(p, dout, z, chunk);
    ops::prefix_scan_exclusive(g, p, true);
    CoreGrads grads{Tensor::zeros(v.shape(), z.dtype()), Tensor::zeros(z.shape(), z.dtype()), Tensor::zeros(wd.shape(), z.dtype())};
    ops::sum_dim0(grads.dwd, p.view({B * T, d, f}), false);
    ops::ttt_apply_backward(grads.dz, grads.dv, dout, z, v, wd, s, g, eta, chunk);
    return grads;
}

// The recurrent definition: W = Wd; per chunk, apply with the current W, then W += eta V^T Z.
template <class T>
Tensor chunk_by_chunk(const Tensor& v, const Tensor& z, const Tensor& wd, double eta, int64_t chunk) {
    const int64_t B = z.dim(0), n = z.dim(1), f = z.dim(2), d = wd.dim(0);
    Tensor o = Tensor::zeros({B, n, d}, z.dtype());
    const T *vp = v.data<T>(), *zp = z.data<T>();
    T* op = o.data<T>();
    for (int64_t b = 0; b < B; ++b) {
        std::vector<T> w(wd.data<T>(), wd.data<T>() + d * f);
        for (int64_t begin = 0; begin < n; begin += chunk) {
            const int64_t end = std::min(begin + chunk, n);
            for (int64_t t = begin; t < end; ++t)
                for (int64_t a = 0; a < d; ++a) {
                    T acc = 0;
                    for (int64_t c = 0; c < f; ++c) acc += zp[(b * n + t) * f + c] * w[static_cast<size_t>(a * f + c)];
                    op[(b * n + t) * d + a] = acc;
                }
            for (int64_t t = begin; t < end; ++t)
                for (int64_t a = 0; a < d; ++a)
                    for (int64_t c = 0; c < f; ++c)
                        w[static_cast<size_t>(a * f + c)] += T(eta) * vp[(b * n + t) * d + a] * zp[(b * n + t) * f + c];
        }
    }
    return o;
}

struct Ragged {
    int64_t n;
    int chunk;
};
// n = 1, chunk = 1, chunks that divide n, chunks that do not, chunk = n, chunk > n.
const std::vector<Ragged> kRagged = {{1, 1}, {1, 4}, {4, 1}, {8, 4}, {7, 3}, {9, 2}, {6, 6}, {5, 8}, {17, 5}};
}  // namespace

TEST_CASE("ttt_apply_forward matches z (wd + eta s_i)^T computed directly", "[ttt_apply]") {
    const int64_t B = 2, d = 5, f = 7;
    const double eta = 0.7;
    for (const Ragged& r : kRagged)
        for (DType dtype : {DType::F32, DType::F64}) {
            INFO("n " << r.n << ", chunk " << r.chunk << ", " << dtype_name(dtype));
            const int64_t T = chunk_count(r.n, r.chunk);
            Tensor z = random_tensor({B, r.n, f}, 41, 1.0, dtype);
            Tensor wd = random_tensor({d, f}, 42, 0.5, dtype);
            Tensor s = random_tensor({B, T, d, f}, 43, 1.0, dtype);
            Tensor o = random_tensor({B, r.n, d}, 44, 1.0, dtype);  // garbage: must be overwritten
            ops::ttt_apply_forward(o, z, wd, s, eta, r.chunk);
            Tensor ref = Tensor::from_vector(apply_reference(z, wd, s, eta, r.chunk), o.shape());
            // F32: two sums of 7 products of O(1) numbers, added.
            double tol = dtype == DType::F32 ? 1e-5 : 1e-13;
            CHECK(check_close(o, ref, tol, tol, "apply o"));
        }
}

TEST_CASE("ttt_apply forward and backward on a shape large enough to run in parallel", "[ttt_apply]") {
    const int64_t B = 2, n = 70, d = 32, f = 32;  // B*n*d*f above the kernels' OpenMP threshold
    const int chunk = 16;
    const double eta = 0.7;
    const int64_t T = chunk_count(n, chunk);
    Tensor z = random_tensor({B, n, f}, 81), v = random_tensor({B, n, d}, 82), dout = random_tensor({B, n, d}, 83);
    Tensor wd = random_tensor({d, f}, 84, 0.2), s = random_tensor({B, T, d, f}, 85, 0.2), g = random_tensor({B, T, d, f}, 86, 0.2);
    Tensor o = Tensor::zeros({B, n, d}), dz = Tensor::zeros({B, n, f}), dv = Tensor::zeros({B, n, d});
    ops::ttt_apply_forward(o, z, wd, s, eta, chunk);
    ops::ttt_apply_backward(dz, dv, dout, z, v, wd, s, g, eta, chunk);
    std::vector<double> dz_ref, dv_ref;
    apply_backward_reference(dz_ref, dv_ref, dout, z, v, wd, s, g, eta, chunk);
    // F32 sums of 32 to 64 products whose sizes are ~0.2 to 1; results are O(1).
    CHECK(check_close(o.to_f64_vector(), apply_reference(z, wd, s, eta, chunk), 2e-5, 1e-5, "apply o"));
    CHECK(check_close(dz.to_f64_vector(), dz_ref, 2e-5, 1e-5, "apply dz"));
    CHECK(check_close(dv.to_f64_vector(), dv_ref, 2e-5, 1e-5, "apply dv"));
}

TEST_CASE("ttt_apply_forward with s == 0 (or eta == 0) is the plain MLP bit for bit", "[ttt_apply]") {
    const int64_t B = 2, n = 17, d = 6, f = 24;
    const int chunk = 5;
    for (DType dtype : {DType::F32, DType::F64}) {
        Tensor z = random_tensor({B, n, f}, 45, 1.0, dtype);
        Tensor wd = random_tensor({d, f}, 46, 0.3, dtype);
        Tensor plain = Tensor::zeros({B, n, d}, dtype);
        ops::linear(plain, z, wd);
        Tensor o = Tensor::zeros({B, n, d}, dtype);
        Tensor s_zero = Tensor::zeros({B, chunk_count(n, chunk), d, f}, dtype);
        ops::ttt_apply_forward(o, z, wd, s_zero, 0.3, chunk);
        CHECK(bitwise_equal(o, plain));
        Tensor s = random_tensor({B, chunk_count(n, chunk), d, f}, 47, 1.0, dtype);
        ops::ttt_apply_forward(o, z, wd, s, 0.0, chunk);
        CHECK(bitwise_equal(o, plain));
        // And the whole core with V = 0 (zero conv weights): delta = 0, S = 0, O = the MLP.
        Tensor v_zero = Tensor::zeros({B, n, d}, dtype);
        CHECK(bitwise_equal(core_forward(v_zero, z, wd, 3.0, chunk), plain));
    }
}

TEST_CASE("ttt_apply_backward matches the direct formulas", "[ttt_apply]") {
    const int64_t B = 2, d = 5, f = 7;
    const double eta = 0.7;
    for (const Ragged& r : kRagged)
        for (DType dtype : {DType::F32, DType::F64}) {
            INFO("n " << r.n << ", chunk " << r.chunk << ", " << dtype_name(dtype));
            const int64_t T = chunk_count(r.n, r.chunk);
            Tensor dout = random_tensor({B, r.n, d}, 51, 1.0, dtype);
            Tensor z = random_tensor({B, r.n, f}, 52, 1.0, dtype);
            Tensor v = random_tensor({B, r.n, d}, 53, 1.0, dtype);
            Tensor wd = random_tensor({d, f}, 54, 0.5, dtype);
            Tensor s = random_tensor({B, T, d, f}, 55, 1.0, dtype);
            Tensor g = random_tensor({B, T, d, f}, 56, 1.0, dtype);
            Tensor dz = random_tensor(z.shape(), 57, 1.0, dtype), dv = random_tensor(v.shape(), 58, 1.0, dtype);  // overwritten
            ops::ttt_apply_backward(dz, dv, dout, z, v, wd, s, g, eta, r.chunk);
            std::vector<double> dz_ref, dv_ref;
            apply_backward_reference(dz_ref, dv_ref, dout, z, v, wd, s, g, eta, r.chunk);
            // F32: sums of ~10 products of O(1) numbers.
            double tol = dtype == DType::F32 ? 1e-5 : 1e-13;
            CHECK(check_close(dz.to_f64_vector(), dz_ref, tol, tol, "apply dz"));
            CHECK(check_close(dv.to_f64_vector(), dv_ref, tol, tol, "apply dv"));
        }
}

TEST_CASE("TTT core (delta, scan, apply): backward formulas match finite differences", "[ttt_apply][grad]") {
    const int64_t B = 2, d = 3, f = 4;
    const double eta = 0.6;
    for (const Ragged& r : kRagged) {
        INFO("n " << r.n << ", chunk " << r.chunk);
        Tensor v = random_tensor({B, r.n, d}, 61, 1.0, DType::F64);
        Tensor z = random_tensor({B, r.n, f}, 62, 1.0, DType::F64);
        Tensor wd = random_tensor({d, f}, 63, 1.0, DType::F64);
        Tensor rr = random_tensor({B, r.n, d}, 64, 1.0, DType::F64);  // loss = sum(O * R), so dO = R
        auto loss = [&] { return dot(core_forward(v, z, wd, eta, r.chunk), rr); };
        CoreGrads grads = core_backward(rr, v, z, wd, eta, r.chunk);
        // The loss is quadratic, so central differences have no truncation error;
        // what is left is cancellation, ~1e-16 * |loss| / h ~ 1e-9.
        CHECK(check_close(grads.dv.to_f64_vector(), finite_difference(v, loss), 1e-7, 1e-7, "dV"));
        CHECK(check_close(grads.dz.to_f64_vector(), finite_difference(z, loss), 1e-7, 1e-7, "dZ"));
        CHECK(check_close(grads.dwd.to_f64_vector(), finite_difference(wd, loss), 1e-7, 1e-7, "dWd"));
    }
}

TEST_CASE("TTT core: the parallel form equals the chunk-by-chunk loop in F32", "[ttt_apply]") {
    const int64_t B = 2, d = 6, f = 16;
    const double eta = 0.5;
    for (const Ragged& r : kRagged) {
        INFO("n " << r.n << ", chunk " << r.chunk);
        Tensor v = random_tensor({B, r.n, d}, 71, 0.3);
        Tensor z = random_tensor({B, r.n, f}, 72, 0.3);
        Tensor wd = random_tensor({d, f}, 73, 0.3);
        Tensor parallel = core_forward(v, z, wd, eta, r.chunk);
        Tensor loop = chunk_by_chunk<float>(v, z, wd, eta, r.chunk);
        // Same sums in another order (W accumulated token by token vs chunk deltas
        // scanned); outputs are O(1) and F32 rounding of ~100 terms stays well under 1e-5.
        CHECK(check_close(parallel, loop, 1e-5, 1e-5, "parallel vs loop"));
    }
}

TEST_CASE("TTT core: the worked example of docs/ttt.md", "[ttt_apply]") {
    // d = f = 1, chunk = 1, three tokens; numbers chosen so every value is exact in binary.
    Tensor z = Tensor::from_vector<double>({1, 2, -1}, {1, 3, 1});
    Tensor v = Tensor::from_vector<double>({2, 1, 3}, {1, 3, 1});
    Tensor wd = Tensor::from_vector<double>({0.5}, {1, 1});
    Tensor r = Tensor::from_vector<double>({1, -1, 2}, {1, 3, 1});
    const double eta = 1.0;
    Tensor s;
    Tensor o = core_forward(v, z, wd, eta, 1, &s);
    CHECK(s.to_f64_vector() == std::vector<double>{0, 2, 4});
    CHECK(o.to_f64_vector() == std::vector<double>{0.5, 5, -4.5});
    CHECK(dot(o, r) == -13.5);
    CoreGrads grads = core_backward(r, v, z, wd, eta, 1);
    CHECK(grads.dwd.to_f64_vector() == std::vector<double>{-3});
    CHECK(grads.dz.to_f64_vector() == std::vector<double>{-7.5, -4.5, 9});
    CHECK(grads.dv.to_f64_vector() == std::vector<double>{-4, -4, 0});
}

TEST_CASE("ttt_apply rejects bad shapes with errors that name the tensor", "[ttt_apply]") {
    const int64_t B = 2, n = 9, d = 3, f = 5;
    const int chunk = 4;  // T = 3
    Tensor z = Tensor::zeros({B, n, f}), wd = Tensor::zeros({d, f}), s = Tensor::zeros({B, 3, d, f});
    Tensor o = Tensor::zeros({B, n, d});
    ops::ttt_apply_forward(o, z, wd, s, 0.3, chunk);
    Tensor s_bad = Tensor::zeros({B, 2, d, f});
    CHECK_THROWS_WITH(ops::ttt_apply_forward(o, z, wd, s_bad, 0.3, chunk), Catch::Contains("s is") && Catch::Contains("(2, 3, 3, 5)"));
    Tensor wd_bad = Tensor::zeros({d, f + 1});
    CHECK_THROWS_WITH(ops::ttt_apply_forward(o, z, wd_bad, s, 0.3, chunk), Catch::Contains("wd"));
    Tensor o_bad = Tensor::zeros({B, n, d + 1});
    CHECK_THROWS_WITH(ops::ttt_apply_forward(o_bad, z, wd, s, 0.3, chunk), Catch::Contains("o is"));
    CHECK_THROWS_WITH(ops::ttt_apply_forward(o, z, wd, s, 0.3, 0), Catch::Contains("chunk"));
    Tensor dz = Tensor::zeros({B, n, f}), dv = Tensor::zeros({B, n, d}), dout = Tensor::zeros({B, n, d}), v = Tensor::zeros({B, n, d});
    ops::ttt_apply_backward(dz, dv, dout, z, v, wd, s, s, 0.3, chunk);
    Tensor g_bad = Tensor::zeros({B, 3, f, d});
    CHECK_THROWS_WITH(ops::ttt_apply_backward(dz, dv, dout, z, v, wd, s, g_bad, 0.3, chunk), Catch::Contains("g is"));
    CHECK_THROWS_WITH(ops::ttt_apply_backward(dv, dv, dout, z, v, wd, s, s, 0.3, chunk), Catch::Contains("dz"));
    Tensor v64 = Tensor::zeros({B, n, d}, DType::F64);
    CHECK_THROWS_AS(ops::ttt_apply_backward(dz, dv, dout, z, v64, wd, s, s, 0.3, chunk), Error);
}
