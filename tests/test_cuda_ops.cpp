// Tests of the CUDA rmsnorm, rope, swiglu and embedding kernels against the CPU ones.
//
// Every case runs the op on the same F32 inputs on both devices, copies the CUDA
// result back and compares it element by element with the CPU result (the oracle),
// over ragged shapes; where the two should agree bit for bit, it says so and checks
// that. Every case starts with ITTT_SKIP_WITHOUT_CUDA(): without a GPU it counts as
// skipped. Run them with build/ittt_tests "[cuda]".
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ops/ops.h"
#include "runtime/error.h"
#include "runtime/tensor.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {

Tensor gpu(const Tensor& t) { return t.to(Device::CUDA); }
Tensor host(const Tensor& t) { return t.to(Device::CPU); }

// An F32 tensor full of NaN on device d: an output element the kernel forgets to
// write shows up as a mismatch instead of passing by luck.
Tensor nan_tensor(const Shape& shape, Device d) {
    Tensor t = Tensor::empty(shape, DType::F32);
    ops::fill(t, std::numeric_limits<double>::quiet_NaN());
    return t.to(d);
}

// Rows of x (the weight has x's last dim): one row of one element, ragged sizes, the
// per-head (N, H, hd) form, rows longer than a warp's 32 lanes, and more than 256 rows
// (several row groups in the dweight reduction) and a single column.
const Shape kRmsnormShapes[] = {{1, 1}, {17, 33}, {3, 5, 16}, {2, 130}, {600, 70}, {5, 4099}, {257, 1}, {1000, 96}};

struct RmsnormOut {
    Tensor out, rstd;
};
RmsnormOut rmsnorm_on(Device d, const Tensor& x, const Tensor& weight, double eps) {
    RmsnormOut r{nan_tensor(x.shape(), d), nan_tensor({x.numel() / weight.numel()}, d)};
    ops::rmsnorm_forward(r.out, r.rstd, x.to(d), weight.to(d), eps);
    return {host(r.out), host(r.rstd)};
}

struct RmsnormGrads {
    Tensor dx, dweight;
};
// dweight starts from dweight0 (the op accumulates).
RmsnormGrads rmsnorm_grads_on(Device d, const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                              const Tensor& dweight0) {
    RmsnormGrads g{nan_tensor(x.shape(), d), dweight0.to(d)};
    ops::rmsnorm_backward(g.dx, g.dweight, dout.to(d), x.to(d), weight.to(d), rstd.to(d));
    return {host(g.dx), host(g.dweight)};
}

// rmsnorm: both devices sum in double and round the same double value to float once;
// their sums differ only in order (~1e-16 relative), which can move the float result
// by one ulp (1.2e-7 relative) at most. 2.5e-7 allows two; atol only guards zeros.
constexpr double kRmsnormAtol = 1e-12, kRmsnormRtol = 2.5e-7;

const double kTheta = 1e6;  // Qwen3's rope_theta

// rope: both devices compute in double and round to float once (<= 1 ulp apart); CUDA's
// double pow and sincos differ from glibc's by a few 1e-16 relative, ~1e-10 rad of angle
// at position 2e5, which matters only for outputs that nearly cancel to zero (atol).
constexpr double kRopeAtol = 1e-7, kRopeRtol = 2.5e-7;

// swiglu: CUDA's expf is within 2 ulp of glibc's and the results go through a few
// float roundings after it: ~1e-6 relative covers that with margin; atol covers the
// zero of silu'(g) near g = -1.28, where the relative error of dg is unbounded.
constexpr double kSwigluAtol = 1e-6, kSwigluRtol = 1e-6;

}  // namespace

// ---------------- rmsnorm ----------------

TEST_CASE("rmsnorm CUDA forward matches the CPU, ragged shapes", "[cuda][rmsnorm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (const Shape& shape : kRmsnormShapes) {
        INFO("x " << shape_str(shape));
        Tensor x = random_tensor(shape, 10), weight = random_tensor({shape.back()}, 11);
        RmsnormOut cpu = rmsnorm_on(Device::CPU, x, weight, 1e-6), cuda = rmsnorm_on(Device::CUDA, x, weight, 1e-6);
        CHECK(check_close(cuda.out, cpu.out, kRmsnormAtol, kRmsnormRtol, "out " + shape_str(shape)));
        CHECK(check_close(cuda.rstd, cpu.rstd, kRmsnormAtol, kRmsnormRtol, "rstd " + shape_str(shape)));
    }
}

TEST_CASE("rmsnorm CUDA keeps rstd precise for long rows of large values (double sums)", "[cuda][rmsnorm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // Squares near 1e8 summed 4099 times: a float sum would lose ~1e-6 of rstd.
    Tensor x = random_tensor({3, 4099}, 12);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 1e4f;
    Tensor weight = random_tensor({4099}, 13);
    RmsnormOut cpu = rmsnorm_on(Device::CPU, x, weight, 1e-6), cuda = rmsnorm_on(Device::CUDA, x, weight, 1e-6);
    CHECK(check_close(cuda.rstd, cpu.rstd, 0, kRmsnormRtol, "rstd of large rows"));
    CHECK(check_close(cuda.out, cpu.out, kRmsnormAtol, kRmsnormRtol, "out of large rows"));
}

TEST_CASE("rmsnorm CUDA backward matches the CPU and accumulates dweight, ragged shapes", "[cuda][rmsnorm][grad]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (const Shape& shape : kRmsnormShapes) {
        INFO("x " << shape_str(shape));
        Tensor x = random_tensor(shape, 20), weight = random_tensor({shape.back()}, 21), dout = random_tensor(shape, 22);
        Tensor dweight0 = random_tensor({shape.back()}, 23);  // nonzero: the op must add to it
        Tensor rstd = rmsnorm_on(Device::CPU, x, weight, 1e-6).rstd;
        RmsnormGrads cpu = rmsnorm_grads_on(Device::CPU, dout, x, weight, rstd, dweight0);
        RmsnormGrads cuda = rmsnorm_grads_on(Device::CUDA, dout, x, weight, rstd, dweight0);
        CHECK(check_close(cuda.dx, cpu.dx, kRmsnormAtol, kRmsnormRtol, "dx " + shape_str(shape)));
        CHECK(check_close(cuda.dweight, cpu.dweight, kRmsnormAtol, kRmsnormRtol, "dweight " + shape_str(shape)));
    }
}

TEST_CASE("rmsnorm CUDA backward may write dx into dout, and gives the same bits every run", "[cuda][rmsnorm][grad]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const Shape shape{1000, 96};  // four row groups in the dweight reduction
    Tensor x = gpu(random_tensor(shape, 30)), weight = gpu(random_tensor({96}, 31));
    Tensor out = Tensor::empty(shape, DType::F32, Device::CUDA), rstd = Tensor::empty({1000}, DType::F32, Device::CUDA);
    ops::rmsnorm_forward(out, rstd, x, weight, 1e-6);
    const Tensor dout = random_tensor(shape, 32);

    Tensor dx = Tensor::empty(shape, DType::F32, Device::CUDA), dweight = Tensor::zeros({96}, DType::F32, Device::CUDA);
    ops::rmsnorm_backward(dx, dweight, gpu(dout), x, weight, rstd);
    // in place: dx written into dout's buffer (dweight reads dout first)
    Tensor dio = gpu(dout), dweight_inplace = Tensor::zeros({96}, DType::F32, Device::CUDA);
    ops::rmsnorm_backward(dio, dweight_inplace, dio, x, weight, rstd);
    CHECK(bitwise_equal(dio, dx));
    CHECK(bitwise_equal(dweight_inplace, dweight));
    // no atomics anywhere: a second run repeats every bit
    for (int run = 0; run < 3; ++run) {
        Tensor dx2 = Tensor::empty(shape, DType::F32, Device::CUDA), dweight2 = Tensor::zeros({96}, DType::F32, Device::CUDA);
        ops::rmsnorm_backward(dx2, dweight2, gpu(dout), x, weight, rstd);
        CHECK(bitwise_equal(dx2, dx));
        CHECK(bitwise_equal(dweight2, dweight));
    }
}

TEST_CASE("rmsnorm CUDA rejects F64 and unknown versions with a message", "[cuda][rmsnorm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    using Catch::Contains;
    Tensor x64 = Tensor::zeros({2, 8}, DType::F64, Device::CUDA), w64 = Tensor::zeros({8}, DType::F64, Device::CUDA);
    Tensor out64 = Tensor::zeros({2, 8}, DType::F64, Device::CUDA), rstd64 = Tensor::zeros({2}, DType::F64, Device::CUDA);
    CHECK_THROWS_WITH(ops::rmsnorm_forward(out64, rstd64, x64, w64, 1e-6), Contains("F32 only"));
    Tensor x = Tensor::zeros({2, 8}, DType::F32, Device::CUDA), w = Tensor::zeros({8}, DType::F32, Device::CUDA);
    Tensor out = Tensor::zeros({2, 8}, DType::F32, Device::CUDA), rstd = Tensor::zeros({2}, DType::F32, Device::CUDA);
    CHECK_THROWS_WITH(ops::set_version("rmsnorm", 2), Contains("expected 0 (best) to 1, found 2"));
}

// ---------------- rope ----------------

namespace {

// (N, H, hd) and (B, n, H, hd) shapes: a single pair, an odd number of pairs, hd = 128,
// and more (token, pair) threads than one block has.
const Shape kRopeShapes[] = {{1, 1, 2}, {17, 3, 10}, {5, 2, 64}, {2, 3, 4, 8}, {300, 4, 128}};

// Positions up to 2e5, where a float angle would be off by ~0.01 rad, and position 0.
Tensor rope_positions(const Shape& x_shape, uint64_t seed) {
    Tensor p = random_ints(Shape(x_shape.begin(), x_shape.end() - 2), seed, 0, 200000);
    p.data<int32_t>()[0] = 0;
    return p;
}

Tensor rope_on(Device d, const Tensor& x, const Tensor& positions, bool backward) {
    Tensor out = nan_tensor(x.shape(), d);
    if (backward) ops::rope_backward(out, x.to(d), positions.to(d), kTheta);
    else ops::rope_forward(out, x.to(d), positions.to(d), kTheta);
    return host(out);
}

}  // namespace

TEST_CASE("rope CUDA forward and backward match the CPU, ragged shapes, large positions", "[cuda][rope]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (const Shape& shape : kRopeShapes) {
        INFO("x " << shape_str(shape));
        Tensor x = random_tensor(shape, 40), positions = rope_positions(shape, 41);
        for (bool backward : {false, true}) {
            const std::string name = cat(backward ? "backward " : "forward ", shape_str(shape));
            CHECK(check_close(rope_on(Device::CUDA, x, positions, backward), rope_on(Device::CPU, x, positions, backward),
                              kRopeAtol, kRopeRtol, name));
        }
    }
}

TEST_CASE("rope CUDA may rotate in place, and the backward undoes the forward", "[cuda][rope]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const Shape shape{33, 4, 16};
    Tensor x = random_tensor(shape, 42), positions = gpu(rope_positions(shape, 43));
    Tensor separate = Tensor::empty(shape, DType::F32, Device::CUDA);
    ops::rope_forward(separate, gpu(x), positions, kTheta);
    Tensor inplace = gpu(x);
    ops::rope_forward(inplace, inplace, positions, kTheta);
    CHECK(bitwise_equal(inplace, separate));
    ops::rope_backward(inplace, inplace, positions, kTheta);
    // R^T R x = x up to two float roundings of O(1) values
    CHECK(check_close(host(inplace), x, 1e-6, 1e-6, "rope backward of forward"));
}

TEST_CASE("rope CUDA rejects negative positions and F64 with a message", "[cuda][rope]") {
    ITTT_SKIP_WITHOUT_CUDA();
    using Catch::Contains;
    Tensor x = Tensor::zeros({3, 2, 4}, DType::F32, Device::CUDA), out = Tensor::zeros({3, 2, 4}, DType::F32, Device::CUDA);
    Tensor bad = gpu(Tensor::from_vector(std::vector<int32_t>{0, -5, 2}, {3}));
    CHECK_THROWS_WITH(ops::rope_forward(out, x, bad, kTheta), Contains("positions[1] = -5"));
    Tensor x64 = Tensor::zeros({3, 2, 4}, DType::F64, Device::CUDA), out64 = Tensor::zeros({3, 2, 4}, DType::F64, Device::CUDA);
    Tensor good = gpu(Tensor::from_vector(std::vector<int32_t>{0, 1, 2}, {3}));
    CHECK_THROWS_WITH(ops::rope_forward(out64, x64, good, kTheta), Contains("F32 only"));
}

// ---------------- swiglu ----------------

namespace {

struct SwigluGrads {
    Tensor dg, du;
};

Tensor swiglu_on(Device d, const Tensor& g, const Tensor& u) {
    Tensor z = nan_tensor(g.shape(), d);
    ops::swiglu_forward(z, g.to(d), u.to(d));
    return host(z);
}

SwigluGrads swiglu_grads_on(Device d, const Tensor& dz, const Tensor& g, const Tensor& u) {
    SwigluGrads r{nan_tensor(g.shape(), d), nan_tensor(g.shape(), d)};
    ops::swiglu_backward(r.dg, r.du, dz.to(d), g.to(d), u.to(d));
    return {host(r.dg), host(r.du)};
}

}  // namespace

TEST_CASE("swiglu CUDA forward and backward match the CPU, ragged sizes", "[cuda][swiglu]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // 1 and 17 elements; (33, 129); and 2^24 + 3, more than the 65536 x 256 threads the
    // launch uses, so the grid-stride loop runs a second round.
    for (const Shape& shape : subset_if_small(std::vector<Shape>{{1}, {17}, {33, 129}, {(int64_t(1) << 24) + 3}}, 2)) {
        INFO("shape " << shape_str(shape));
        Tensor g = random_tensor(shape, 50, 3.0), u = random_tensor(shape, 51), dz = random_tensor(shape, 52);
        CHECK(check_close(swiglu_on(Device::CUDA, g, u), swiglu_on(Device::CPU, g, u), kSwigluAtol, kSwigluRtol, "z"));
        SwigluGrads cpu = swiglu_grads_on(Device::CPU, dz, g, u), cuda = swiglu_grads_on(Device::CUDA, dz, g, u);
        CHECK(check_close(cuda.dg, cpu.dg, kSwigluAtol, kSwigluRtol, "dg"));
        CHECK(check_close(cuda.du, cpu.du, kSwigluAtol, kSwigluRtol, "du"));
    }
}

TEST_CASE("swiglu CUDA stays finite and matches the CPU for large |g|", "[cuda][swiglu]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // exp(-g) overflows float for g < -88: the stable sigmoid must avoid it on the GPU too.
    Tensor g =
        Tensor::from_vector(std::vector<float>{-1000.f, -100.f, -89.f, -87.f, -20.f, -1.28f, 0.f, 20.f, 89.f, 1000.f}, {10});
    Tensor u = random_tensor({10}, 53), dz = random_tensor({10}, 54);
    Tensor z = swiglu_on(Device::CUDA, g, u);
    SwigluGrads cuda = swiglu_grads_on(Device::CUDA, dz, g, u), cpu = swiglu_grads_on(Device::CPU, dz, g, u);
    CHECK(ops::all_finite(z));
    CHECK(ops::all_finite(cuda.dg));
    CHECK(ops::all_finite(cuda.du));
    CHECK(check_close(z, swiglu_on(Device::CPU, g, u), kSwigluAtol, kSwigluRtol, "z, large |g|"));
    CHECK(check_close(cuda.dg, cpu.dg, kSwigluAtol, kSwigluRtol, "dg, large |g|"));
    CHECK(check_close(cuda.du, cpu.du, kSwigluAtol, kSwigluRtol, "du, large |g|"));
}

TEST_CASE("swiglu CUDA may write z into g and dg into dz", "[cuda][swiglu]") {
    ITTT_SKIP_WITHOUT_CUDA();
    Tensor g = random_tensor({1000}, 55, 3.0), u = random_tensor({1000}, 56), dz = random_tensor({1000}, 57);
    Tensor z_separate = Tensor::empty({1000}, DType::F32, Device::CUDA), g_inplace = gpu(g);
    ops::swiglu_forward(z_separate, gpu(g), gpu(u));
    ops::swiglu_forward(g_inplace, g_inplace, gpu(u));
    CHECK(bitwise_equal(g_inplace, z_separate));
    Tensor dg = Tensor::empty({1000}, DType::F32, Device::CUDA), du = Tensor::empty({1000}, DType::F32, Device::CUDA);
    ops::swiglu_backward(dg, du, gpu(dz), gpu(g), gpu(u));
    Tensor dz_inplace = gpu(dz), du2 = Tensor::empty({1000}, DType::F32, Device::CUDA);
    ops::swiglu_backward(dz_inplace, du2, dz_inplace, gpu(g), gpu(u));
    CHECK(bitwise_equal(dz_inplace, dg));
    CHECK(bitwise_equal(du2, du));
}

// ---------------- embedding ----------------

namespace {

struct EmbeddingCase {
    int64_t vocab, dim;
    Shape tokens;
    int max_id;  // ids drawn from [0, max_id): a small max_id repeats ids many times
};
// One token of one column; ragged sizes; (B, n) tokens; thousands of tokens over 5 ids
// (long runs for one block each); the project's vocab (260) with dim 64; a large,
// sparse vocab where most blocks of the sorted version find no token.
// (Small shapes: every other one.)
std::vector<EmbeddingCase> embedding_cases() {
    return subset_if_small(std::vector<EmbeddingCase>{{1, 1, {1}, 1},       {17, 13, {29}, 17},        {5, 70, {3, 7}, 5},
                                                      {300, 33, {5000}, 5}, {260, 64, {4, 1000}, 260}, {100000, 16, {777}, 100000}},
                           2);
}

Tensor embed_on(Device d, const Tensor& table, const Tensor& tokens) {
    Shape shape = tokens.shape();
    shape.push_back(table.dim(1));
    Tensor out = nan_tensor(shape, d);
    ops::embedding_forward(out, table.to(d), tokens.to(d));
    return host(out);
}

Tensor scatter_on(Device d, const Tensor& dtable0, const Tensor& dout, const Tensor& tokens) {
    Tensor dtable = dtable0.to(d);
    ops::embedding_backward(dtable, dout.to(d), tokens.to(d));
    return host(dtable);
}

}  // namespace

TEST_CASE("embedding CUDA forward copies the same rows as the CPU, bit for bit", "[cuda][embedding]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (const EmbeddingCase& c : embedding_cases()) {
        INFO("vocab " << c.vocab << " dim " << c.dim << " tokens " << shape_str(c.tokens));
        Tensor table = random_tensor({c.vocab, c.dim}, 60), tokens = random_ints(c.tokens, 61, 0, c.max_id);
        const Tensor cpu = embed_on(Device::CPU, table, tokens);  // outside the scope: the CPU has version 1 only
        for (int version : {1, 2}) {
            ScopedVersion use("embedding", version);
            CHECK(bitwise_equal(embed_on(Device::CUDA, table, tokens), cpu));
        }
    }
}

TEST_CASE("embedding CUDA backward version 2 (sorted) gives the CPU's bits, every run", "[cuda][embedding][grad]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (const EmbeddingCase& c : embedding_cases()) {
        INFO("vocab " << c.vocab << " dim " << c.dim << " tokens " << shape_str(c.tokens));
        Tensor tokens = random_ints(c.tokens, 62, 0, c.max_id);
        Shape dout_shape = c.tokens;
        dout_shape.push_back(c.dim);
        Tensor dout = random_tensor(dout_shape, 63), dtable0 = random_tensor({c.vocab, c.dim}, 64);  // accumulates into dtable0
        const Tensor cpu = scatter_on(Device::CPU, dtable0, dout, tokens);  // the CPU's version 1, outside the scope below
        ScopedVersion use("embedding", 2);
        // Each dtable element adds its tokens' values in token order on both devices, so
        // the float sums are the same operations in the same order: equal bits.
        for (int run = 0; run < 2; ++run) {
            Tensor cuda = scatter_on(Device::CUDA, dtable0, dout, tokens);
            CHECK(bitwise_equal(cuda, cpu));
            if (!bitwise_equal(cuda, cpu)) check_close(cuda, cpu, 0, 0, "sorted scatter");  // print where
        }
    }
}

TEST_CASE("embedding CUDA backward version 1 (atomics) matches the CPU up to the order of additions", "[cuda][embedding][grad]") {
    ITTT_SKIP_WITHOUT_CUDA();
    ScopedVersion use("embedding", 1);
    for (const EmbeddingCase& c : embedding_cases()) {
        INFO("vocab " << c.vocab << " dim " << c.dim << " tokens " << shape_str(c.tokens));
        Tensor tokens = random_ints(c.tokens, 65, 0, c.max_id);
        Shape dout_shape = c.tokens;
        dout_shape.push_back(c.dim);
        Tensor dout = random_tensor(dout_shape, 66), dtable0 = random_tensor({c.vocab, c.dim}, 67);
        // The atomics add the same O(1) terms in another order: up to ~1000 terms per
        // element (5000 tokens over 5 ids), whose float sums of size ~30 differ by a few
        // roundings of 2e-6 each; 1e-4 absolute leaves a wide margin.
        CHECK(check_close(scatter_on(Device::CUDA, dtable0, dout, tokens), scatter_on(Device::CPU, dtable0, dout, tokens), 1e-4,
                          1e-5, "atomic scatter"));
    }
}

TEST_CASE("embedding CUDA rejects out-of-range ids and unknown versions with a message", "[cuda][embedding]") {
    ITTT_SKIP_WITHOUT_CUDA();
    using Catch::Contains;
    Tensor table = Tensor::zeros({5, 4}, DType::F32, Device::CUDA), out = Tensor::zeros({3, 4}, DType::F32, Device::CUDA);
    Tensor bad = gpu(Tensor::from_vector(std::vector<int32_t>{0, 5, 2}, {3}));
    CHECK_THROWS_WITH(ops::embedding_forward(out, table, bad), Contains("tokens[1] = 5") && Contains("V) with V = 5"));
    CHECK_THROWS_WITH(ops::embedding_backward(table, out, bad), Contains("tokens[1] = 5"));
    Tensor good = gpu(Tensor::from_vector(std::vector<int32_t>{0, 4, 2}, {3}));
    CHECK_THROWS_WITH(ops::set_version("embedding", 3), Contains("expected 0 (best) to 2, found 3"));
    (void)good;
}
