// [cuda] tests of the TTT-side GPU kernels against the CPU kernels on the same
// inputs: chunked conv1d, chunk delta + clipping, the chunk scan and the long 1-D
// scans, and the apply corrections. Every case starts with ITTT_SKIP_WITHOUT_CUDA()
// and is counted as skipped on a machine without a GPU.
//
// The CPU kernels are the oracle: each case runs the op on CPU tensors and on
// copies on the GPU and compares the two, element by element, over ragged shapes
// (1, 17, sizes that are not multiples of the 16-wide tiles or of the chunk).
#include <cmath>
#include <string>
#include <vector>

#include "kernels/prefix_scan/prefix_scan.h"
#include "kernels/ttt_apply/ttt_apply.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {
int64_t chunk_count(int64_t n, int64_t chunk) { return (n + chunk - 1) / chunk; }

Tensor gpu(const Tensor& t) { return t.to(Device::CUDA); }

struct ConvCase {
    int64_t n, d;
    int chunk;
    std::vector<int> offsets;
};
std::vector<ConvCase> conv_cases() {
    const std::vector<int> centred = {-2, -1, 0, 1, 2};
    std::vector<ConvCase> cases;
    for (int64_t n : {1, 17, 40})
        for (int chunk : {1, 4, 16, 64})
            for (int64_t d : {1, 33}) cases.push_back({n, d, chunk, centred});
    cases.push_back({17, 100, 5, {1}});          // next-token target
    cases.push_back({17, 7, 6, {-3, 0, 4}});     // uneven taps
    cases.push_back({9, 5, 4, {7, -9}});         // taps wider than the chunk
    cases.push_back({300, 70, 64, centred});     // 600 rows for the weight-gradient reduction
    return cases;
}

struct Ragged {
    int64_t n;
    int chunk;
};
// n = 1, chunk = 1, chunks that divide n, that do not, chunk = n, chunk > n, and
// chunks longer than one 16-row tile (so a chunk spans several tiles, the last partial).
const std::vector<Ragged> kRagged = {{1, 1}, {1, 4}, {4, 1}, {8, 4}, {7, 3}, {9, 2}, {6, 6}, {5, 8}, {17, 5}, {70, 16}, {70, 33},
                                     {40, 100}};
}  // namespace

// ---- conv1d ----

TEST_CASE("CUDA conv1d_chunked forward and backward match the CPU kernel", "[cuda][conv1d]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const int64_t B = 2;
    for (const ConvCase& cc : conv_cases()) {
        INFO("n " << cc.n << ", d " << cc.d << ", chunk " << cc.chunk << ", K " << cc.offsets.size());
        const int64_t K = static_cast<int64_t>(cc.offsets.size());
        Tensor x = random_tensor({B, cc.n, cc.d}, 101), w = random_tensor({cc.d, K}, 102, 0.5);
        Tensor dout = random_tensor({B, cc.n, cc.d}, 103), dw0 = random_tensor({cc.d, K}, 104);
        Tensor out = Tensor::zeros(x.shape()), dx = Tensor::zeros(x.shape()), dw = dw0.clone();
        ops::conv1d_chunked_forward(out, x, w, cc.offsets, cc.chunk);
        ops::conv1d_chunked_backward(dx, dw, dout, x, w, cc.offsets, cc.chunk);

        Tensor x_g = gpu(x), w_g = gpu(w), dout_g = gpu(dout), dw_g = gpu(dw0);
        Tensor out_g = gpu(random_tensor(x.shape(), 105)), dx_g = gpu(random_tensor(x.shape(), 106));  // garbage: overwritten
        ops::conv1d_chunked_forward(out_g, x_g, w_g, cc.offsets, cc.chunk);
        ops::conv1d_chunked_backward(dx_g, dw_g, dout_g, x_g, w_g, cc.offsets, cc.chunk);
        // out, dx: at most 5 products per element, added in the CPU's tap order; only FMA contraction can differ.
        CHECK(check_close(out_g, out, 1e-6, 1e-6, "conv out"));
        CHECK(check_close(dx_g, dx, 1e-6, 1e-6, "conv dx"));
        // dweight: up to 600 products of unit normals, summed in 16 strided partials
        // instead of row order; a different order of a sum of size ~sqrt(600) ~ 25.
        CHECK(check_close(dw_g, dw, 1e-4, 1e-5, "conv dweight"));
    }
}

TEST_CASE("CUDA conv1d_chunked_backward: dweight is the same bits on every run", "[cuda][conv1d]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const int64_t B = 3, n = 257, d = 65;
    const std::vector<int> offsets = {-2, -1, 0, 1, 2};
    Tensor x = gpu(random_tensor({B, n, d}, 111)), w = gpu(random_tensor({d, 5}, 112)), dout = gpu(random_tensor({B, n, d}, 113));
    Tensor dx = Tensor::zeros({B, n, d}, DType::F32, Device::CUDA);
    Tensor dw1 = Tensor::zeros({d, 5}, DType::F32, Device::CUDA), dw2 = Tensor::zeros({d, 5}, DType::F32, Device::CUDA);
    ops::conv1d_chunked_backward(dx, dw1, dout, x, w, offsets, 64);
    ops::conv1d_chunked_backward(dx, dw2, dout, x, w, offsets, 64);
    CHECK(bitwise_equal(dw1, dw2));
}

// ---- ttt_chunk_delta and ttt_clip_deltas ----

TEST_CASE("CUDA ttt_chunk_delta (naive and tiled) matches the CPU kernel", "[cuda][ttt_delta]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const int64_t B = 2;
    for (int version : {1, 2, 0})
        for (const Ragged& r : kRagged)
            for (auto [d, f] : {std::pair<int64_t, int64_t>{3, 5}, {17, 33}, {40, 16}}) {
                INFO("version " << version << ", n " << r.n << ", chunk " << r.chunk << ", d " << d << ", f " << f);
                const int64_t T = chunk_count(r.n, r.chunk);
                Tensor v = random_tensor({B, r.n, d}, 121), z = random_tensor({B, r.n, f}, 122);
                Tensor delta = Tensor::zeros({B, T, d, f});
                ops::ttt_chunk_delta(delta, v, z, r.chunk);  // the CPU's version 1 (set before the GPU's version)
                ScopedVersion sv("ttt_delta", version);
                Tensor delta_g = gpu(random_tensor({B, T, d, f}, 123));  // garbage: overwritten
                ops::ttt_chunk_delta(delta_g, gpu(v), gpu(z), r.chunk);
                // Both add the chunk's tokens in order; only FMA contraction can differ:
                // ~1 ulp per add over up to 100 adds of terms ~1.
                CHECK(check_close(delta_g, delta, 2e-5, 1e-5, "delta"));
            }
}

TEST_CASE("CUDA ttt_clip_deltas matches the CPU kernel", "[cuda][ttt_delta]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // Matrices of very different norms, so some are clipped and some are not; size not a multiple of 256.
    const int64_t count = 7, d = 13, f = 29;
    Tensor delta = random_tensor({count, d, f}, 131);
    float* p = delta.data<float>();
    for (int64_t k = 0; k < count; ++k)
        for (int64_t j = 0; j < d * f; ++j) p[k * d * f + j] *= std::pow(10.0f, static_cast<float>(k - 3));
    for (int64_t j = 0; j < d * f; ++j) p[2 * d * f + j] = 0;  // an all-zero matrix must stay zero (no 0/0)
    for (double eta : {0.3, -2.0, 0.0}) {
        INFO("eta " << eta);
        Tensor cpu = delta.clone(), dev = gpu(delta);
        ops::ttt_clip_deltas(cpu, eta, 0.5);
        ops::ttt_clip_deltas(dev, eta, 0.5);
        // The norm is a double sum in another order, so the float scale can differ by 1 ulp.
        CHECK(check_close(dev, cpu, 0, 1e-6, "clipped delta"));
    }
}

// ---- ttt_loop (forward only on CUDA) ----

TEST_CASE("CUDA ttt_loop_forward matches the CPU kernel: clipping, update limits, a state continued", "[cuda][ttt_loop]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const int64_t B = 2, d = 13, f = 29;
    for (const Ragged& r : kRagged)
        for (double tau : {0.0, 0.5})
            for (int limit : {-1, 1}) {
                INFO("n " << r.n << ", chunk " << r.chunk << ", tau " << tau << ", limit " << limit);
                Tensor z = random_tensor({B, r.n, f}, 141, 0.5), v = random_tensor({B, r.n, d}, 142, 0.5), wd = random_tensor({d, f}, 143);
                ops::TttLoopOptions opt;
                opt.clip_tau = tau;
                opt.update_limit = limit;
                opt.norms = true;
                Tensor o = Tensor::empty({B, r.n, d}), o_g = gpu(Tensor::empty({B, r.n, d}));
                ops::TttLoopResult cpu = ops::ttt_loop_forward(o, z, v, wd, 0.7, r.chunk, opt);
                ops::TttLoopResult dev = ops::ttt_loop_forward(o_g, gpu(z), gpu(v), gpu(wd), 0.7, r.chunk, opt);
                // Sums of up to f (apply) or chunk (delta) products in another order, carried through the chunks.
                CHECK(check_close(o_g, o, 1e-5, 1e-5, "O"));
                REQUIRE(dev.norm.size() == cpu.norm.size());
                for (size_t k = 0; k < cpu.norm.size(); ++k) {
                    CHECK(std::isnan(dev.norm[k]) == std::isnan(cpu.norm[k]));
                    if (!std::isnan(cpu.norm[k])) CHECK(std::fabs(dev.norm[k] - cpu.norm[k]) <= 1e-5 * cpu.norm[k]);
                    CHECK(std::fabs(dev.applied[k] - cpu.applied[k]) <= 1e-5 * cpu.applied[k]);
                }
                // A stream: the same rows after `start` rows of the first chunk, from a state.
                if (limit >= 0 || r.n < 2) continue;
                const int start = static_cast<int>(std::min<int64_t>(r.chunk - 1, r.n - 1));
                ops::TttLoopOptions stream;
                stream.clip_tau = tau;
                stream.start = start;
                Tensor s_cpu = Tensor::empty({B, r.n - start, d}), s_dev = gpu(s_cpu), w_cpu = random_tensor({B, d, f}, 144);
                stream.w_state = w_cpu;
                ops::ttt_loop_forward(s_cpu, z, v, wd, 0.7, r.chunk, stream);
                stream.w_state = gpu(random_tensor({B, d, f}, 144));
                ops::ttt_loop_forward(s_dev, gpu(z), gpu(v), gpu(wd), 0.7, r.chunk, stream);
                CHECK(check_close(s_dev, s_cpu, 1e-5, 1e-5, "O of a stream"));
                CHECK(check_close(stream.w_state, w_cpu, 1e-5, 1e-5, "W after the stream"));
            }
}

// ---- prefix scans ----

TEST_CASE("CUDA prefix_scan_exclusive is bit-identical to the CPU kernel", "[cuda][prefix_scan]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (int64_t n_chunks : {1, 2, 7})
        for (Shape tail : {Shape{3, 5}, Shape{5000}, Shape{}, Shape{0}})
            for (bool reverse : {false, true}) {
                Shape shape = {2, n_chunks};
                shape.insert(shape.end(), tail.begin(), tail.end());
                INFO("shape " << shape_str(shape) << (reverse ? " reverse" : " forward"));
                Tensor in = random_tensor(shape, 141), out = Tensor::zeros(shape);
                ops::prefix_scan_exclusive(out, in, reverse);
                Tensor out_g = gpu(random_tensor(shape, 142));  // garbage: overwritten
                ops::prefix_scan_exclusive(out_g, gpu(in), reverse);
                // The same additions in the same order (previous output + previous input).
                CHECK(bitwise_equal(out_g, out));
            }
}

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

// ---- ttt_apply ----

namespace {
// Inputs for the correction kernels, with s (and g) zero on some chunks so the
// zero-chunk skip is exercised on both sides.
struct ApplyInputs {
    Tensor o, z, s, dz, dv, dout, v, g;
};
ApplyInputs apply_inputs(int64_t B, int64_t n, int64_t d, int64_t f, int64_t chunk) {
    const int64_t T = chunk_count(n, chunk);
    ApplyInputs in;
    in.o = random_tensor({B, n, d}, 181);  // "the gemm's output" the correction adds to
    in.z = random_tensor({B, n, f}, 182);
    in.s = random_tensor({B, T, d, f}, 183, 0.5);
    in.dz = random_tensor({B, n, f}, 184);  // "dout @ wd"
    in.dv = random_tensor({B, n, d}, 185);  // garbage: overwritten
    in.dout = random_tensor({B, n, d}, 186);
    in.v = random_tensor({B, n, d}, 187);
    in.g = random_tensor({B, T, d, f}, 188, 0.5);
    const int64_t size = d * f;
    for (int64_t j = 0; j < size; ++j) in.s.data<float>()[j] = 0;  // s_0 of sequence 0 (always zero in the model)
    if (B * T > 1)
        for (int64_t j = 0; j < size; ++j) in.g.data<float>()[(B * T - 1) * size + j] = 0;  // the last g (always zero too)
    return in;
}
}  // namespace

TEST_CASE("CUDA ttt_apply correction kernels (naive and tiled) match the CPU kernels", "[cuda][ttt_apply]") {
    ITTT_SKIP_WITHOUT_CUDA();
#if ITTT_WITH_CUDA  // the launchers exist only in a CUDA build (without one, the line above returned)
    const int64_t B = 2;
    const float eta = 0.7f;
    for (int version : {1, 2})
        for (const Ragged& r : kRagged)
            for (auto [d, f] : {std::pair<int64_t, int64_t>{5, 7}, {33, 47}, {16, 32}}) {
                INFO("version " << version << ", n " << r.n << ", chunk " << r.chunk << ", d " << d << ", f " << f);
                const int64_t T = chunk_count(r.n, r.chunk);
                ApplyInputs in = apply_inputs(B, r.n, d, f, r.chunk);
                // Named device copies: they must outlive the asynchronous kernels that read them.
                Tensor o_g = gpu(in.o), dz_g = gpu(in.dz), dv_g = gpu(in.dv);
                Tensor z_g = gpu(in.z), s_g = gpu(in.s), g_g = gpu(in.g), dout_g = gpu(in.dout), v_g = gpu(in.v);
                Tensor flags = Tensor::empty({2 * B * T}, DType::I32, Device::CUDA);
                auto* forward = version == 1 ? kernels::ttt_apply_forward_correction_naive_cuda
                                             : kernels::ttt_apply_forward_correction_tiled_cuda;
                auto* backward = version == 1 ? kernels::ttt_apply_backward_correction_naive_cuda
                                              : kernels::ttt_apply_backward_correction_tiled_cuda;
                forward(o_g.data<float>(), z_g.data<float>(), s_g.data<float>(), eta, B, r.n, d, f, r.chunk, flags.data<int32_t>());
                backward(dz_g.data<float>(), dv_g.data<float>(), dout_g.data<float>(), z_g.data<float>(), v_g.data<float>(),
                         s_g.data<float>(), g_g.data<float>(), eta, B, r.n, d, f, r.chunk, flags.data<int32_t>());
                Tensor o = in.o.clone(), dz = in.dz.clone(), dv = in.dv.clone();
                kernels::ttt_apply_forward_correction_cpu<float>(o.data<float>(), in.z.data<float>(), in.s.data<float>(), eta, B,
                                                                 r.n, d, f, r.chunk);
                kernels::ttt_apply_backward_correction_cpu<float>(dz.data<float>(), dv.data<float>(), in.dout.data<float>(),
                                                                  in.z.data<float>(), in.v.data<float>(), in.s.data<float>(),
                                                                  in.g.data<float>(), eta, B, r.n, d, f, r.chunk);
                // Sums of up to 2 * 47 products of O(1) terms, in the CPU's order;
                // only FMA contraction differs.
                CHECK(check_close(o_g, o, 2e-5, 1e-5, "o"));
                CHECK(check_close(dz_g, dz, 2e-5, 1e-5, "dz"));
                CHECK(check_close(dv_g, dv, 2e-5, 1e-5, "dv"));
                // Chunk 0 of sequence 0 has s = 0: its rows of o are the input bits, untouched.
                const int64_t rows0 = std::min<int64_t>(r.chunk, r.n);
                CHECK(bitwise_equal(o_g.to(Device::CPU).view({B * r.n, d}).rows(0, rows0).clone(),
                                    in.o.view({B * r.n, d}).rows(0, rows0).clone()));
            }
#endif
}

TEST_CASE("CUDA ttt_apply_forward / backward (with the gemm) match the CPU ops", "[cuda][ttt_apply]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const int64_t B = 2, d = 33, f = 47;
    const double eta = 0.7;
    for (const Ragged& r : kRagged) {
        INFO("n " << r.n << ", chunk " << r.chunk);
        ApplyInputs in = apply_inputs(B, r.n, d, f, r.chunk);
        Tensor wd = random_tensor({d, f}, 189, 0.3);
        Tensor o = Tensor::zeros({B, r.n, d}), dz = Tensor::zeros({B, r.n, f}), dv = Tensor::zeros({B, r.n, d});
        ops::ttt_apply_forward(o, in.z, wd, in.s, eta, r.chunk);
        ops::ttt_apply_backward(dz, dv, in.dout, in.z, in.v, wd, in.s, in.g, eta, r.chunk);
        Tensor o_g = gpu(o), dz_g = gpu(dz), dv_g = gpu(dv);
        o_g.zero_();
        ops::ttt_apply_forward(o_g, gpu(in.z), gpu(wd), gpu(in.s), eta, r.chunk);
        ops::ttt_apply_backward(dz_g, dv_g, gpu(in.dout), gpu(in.z), gpu(in.v), gpu(wd), gpu(in.s), gpu(in.g), eta, r.chunk);
        // The gemm's K = 47 or 33 sums run in another order on the GPU, plus the
        // corrections' ~2 * 47 products: O(1) results, float rounding ~1e-6.
        CHECK(check_close(o_g, o, 5e-5, 1e-5, "o"));
        CHECK(check_close(dz_g, dz, 5e-5, 1e-5, "dz"));
        CHECK(check_close(dv_g, dv, 5e-5, 1e-5, "dv"));
    }
}

TEST_CASE("CUDA ttt_apply_forward with s == 0 is the GPU's plain MLP bit for bit", "[cuda][ttt_apply]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const int64_t B = 2, n = 17, d = 6, f = 24;
    const int chunk = 5;
    for (int version : {1, 2}) {
        ScopedVersion sv("ttt_apply", version);
        Tensor z = gpu(random_tensor({B, n, f}, 191)), wd = gpu(random_tensor({d, f}, 192, 0.3));
        Tensor plain = Tensor::zeros({B, n, d}, DType::F32, Device::CUDA), o = Tensor::zeros({B, n, d}, DType::F32, Device::CUDA);
        ops::linear(plain, z, wd);
        Tensor s_zero = Tensor::zeros({B, chunk_count(n, chunk), d, f}, DType::F32, Device::CUDA);
        ops::ttt_apply_forward(o, z, wd, s_zero, 0.3, chunk);
        CHECK(bitwise_equal(o, plain));
    }
}

TEST_CASE("CUDA TTT core (delta, scan, apply) matches the CPU core", "[cuda][ttt_apply][ttt_delta][prefix_scan]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const int64_t B = 2, d = 20, f = 40;
    const double eta = 0.5;
    for (const Ragged& r : kRagged) {
        INFO("n " << r.n << ", chunk " << r.chunk);
        const int64_t T = chunk_count(r.n, r.chunk);
        Tensor v = random_tensor({B, r.n, d}, 195, 0.3), z = random_tensor({B, r.n, f}, 196, 0.3), wd = random_tensor({d, f}, 197, 0.3);
        auto core = [&](const Tensor& v_in, const Tensor& z_in, const Tensor& wd_in, Device dev) {
            Tensor delta = Tensor::zeros({B, T, d, f}, DType::F32, dev), s = Tensor::zeros({B, T, d, f}, DType::F32, dev);
            Tensor o = Tensor::zeros({B, r.n, d}, DType::F32, dev);
            ops::ttt_chunk_delta(delta, v_in, z_in, r.chunk);
            ops::prefix_scan_exclusive(s, delta, false);
            ops::ttt_apply_forward(o, z_in, wd_in, s, eta, r.chunk);
            return o;
        };
        Tensor o_cpu = core(v, z, wd, Device::CPU);
        Tensor o_gpu = core(gpu(v), gpu(z), gpu(wd), Device::CUDA);
        // O(1) outputs from sums of ~100 terms of size ~0.1, in other orders on the GPU.
        CHECK(check_close(o_gpu, o_cpu, 2e-5, 1e-5, "core o"));
    }
}
