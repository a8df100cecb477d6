// [cuda] tests of the loss / optimiser side GPU kernels against the CPU kernels on
// the same inputs: cross_entropy (both versions), adamw_step, the elementwise
// helpers and clip_grad_norm. Every case starts with ITTT_SKIP_WITHOUT_CUDA() and
// is counted as skipped on a machine without a GPU.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {
Tensor gpu(const Tensor& t) { return t.to(Device::CUDA); }

// Targets in [0, V) with every third row ignored (-1), so ignored rows sit between scored ones.
Tensor targets_with_ignored(int64_t N, int64_t V, uint64_t seed) {
    Tensor t = random_ints({N}, seed, 0, static_cast<int>(V));
    for (int64_t i = 1; i < N; i += 3) t.data<int32_t>()[i] = -1;
    return t;
}
}  // namespace

// ---- cross_entropy ----

TEST_CASE("CUDA cross_entropy (three-pass and online) matches the CPU kernel", "[cuda][cross_entropy]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // V = 1, smaller than a block, not a multiple of 32, larger than a block, GPT-2's vocabulary.
    const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {3, 17}, {17, 1000}, {5, 5000}, {4, 50257}};
    for (int version : {1, 2, 0})
        for (auto [N, V] : shapes) {
            INFO("version " << version << ", N " << N << ", V " << V);
            Tensor logits = random_tensor({N, V}, 201, 3.0);
            Tensor targets = targets_with_ignored(N, V, 202);
            const int64_t n_scored = ops::cross_entropy(nullptr, logits, targets, 1.0).n_scored;
            const double grad_scale = n_scored > 0 ? 1.0 / static_cast<double>(n_scored) : 1.0;  // a mean loss
            Tensor dlogits = Tensor::empty({N, V});
            const ops::CrossEntropyResult cpu = ops::cross_entropy(&dlogits, logits, targets, grad_scale);

            ScopedVersion sv("cross_entropy", version);
            Tensor logits_g = gpu(logits), targets_g = gpu(targets);
            Tensor dlogits_g = Tensor::empty({N, V}, DType::F32, Device::CUDA);
            ops::fill(dlogits_g, 7.0);  // stale values must be overwritten, ignored rows included
            const ops::CrossEntropyResult with_grad = ops::cross_entropy(&dlogits_g, logits_g, targets_g, grad_scale);
            const ops::CrossEntropyResult loss_only = ops::cross_entropy(nullptr, logits_g, targets_g, grad_scale);
            CHECK(with_grad.n_scored == cpu.n_scored);
            CHECK(loss_only.loss_sum == with_grad.loss_sum);  // the same reduction whether or not dlogits is written
            // Per row: float exp and a float sum of up to 5e4 terms in a tree (the CPU
            // works in double), ~1e-6 relative on log(sum); the loss is O(log V) per row.
            CHECK(check_close({with_grad.loss_sum}, {cpu.loss_sum}, 1e-5, 1e-5, "loss_sum"));
            // p = exp(x - max - log_sum) in float: the exponent carries ~1e-6 absolute
            // error, so p is good to ~1e-6 relative, plus grad_scale * 1e-7 where p - 1 cancels.
            CHECK(check_close(dlogits_g, dlogits, 1e-6 * grad_scale, 1e-5, "dlogits"));
        }
}

TEST_CASE("CUDA cross_entropy stays finite with logits of 1e4", "[cuda][cross_entropy]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // The closed-form rows of the CPU test: exp(1e4) would overflow without the max shift.
    const double e1 = std::exp(-1.0);
    const std::vector<float> values = {1e4f, 1e4f - 1, -1e4f, -1e4f, -1e4f, -1e4f, 1e4f, -1e4f, 0};
    const std::vector<double> expected_grad = {1 / (1 + e1), e1 / (1 + e1) - 1, 0, 1.0 / 3, 1.0 / 3, -2.0 / 3, 1, -1, 0};
    const double expected_loss = (1 + std::log(1 + e1)) + std::log(3.0) + 2e4;
    Tensor targets = gpu(Tensor::from_vector<int32_t>({1, 2, 1}, {3}));
    for (int version : {1, 2}) {
        INFO("version " << version);
        ScopedVersion sv("cross_entropy", version);
        Tensor logits = gpu(Tensor::from_vector(values, {3, 3}));
        Tensor dlogits = Tensor::empty({3, 3}, DType::F32, Device::CUDA);
        const ops::CrossEntropyResult r = ops::cross_entropy(&dlogits, logits, targets, 1.0);
        // (max - x[t]) is exact; log of a float sum of 2 or 3 terms: ~1e-7 relative of ~1.
        CHECK(check_close({r.loss_sum}, {expected_loss}, 1e-6, 1e-12, "loss_sum"));
        // Float exp of exponents 0, -1, -2e4: a few ulp.
        CHECK(check_close(dlogits.to_f64_vector(), expected_grad, 1e-7, 1e-6, "dlogits"));
    }
}

// ---- adamw ----

TEST_CASE("CUDA adamw_step matches the CPU kernel over several steps", "[cuda][adamw]") {
    ITTT_SKIP_WITHOUT_CUDA();
    ops::AdamWConfig cfg;
    cfg.lr = 0.05;
    cfg.beta1 = 0.8;
    cfg.beta2 = 0.9;
    cfg.eps = 1e-6;
    cfg.weight_decay = 0.1;
    for (int64_t n : {1, 17, 1000, 70001}) {
        INFO("n " << n);
        Tensor p = random_tensor({n}, 211), m = Tensor::zeros({n}), v = Tensor::zeros({n});
        Tensor p_g = gpu(p), m_g = gpu(m), v_g = gpu(v);
        for (int64_t step = 1; step <= 6; ++step) {
            INFO("step " << step);
            Tensor g = random_tensor({n}, 212 + static_cast<uint64_t>(step));
            g.data<float>()[0] = 0;  // an exact zero gradient
            ops::adamw_step(p, g, m, v, cfg, step);
            ops::adamw_step(p_g, gpu(g), m_g, v_g, cfg, step);
            // The same float expression on both sides; a compiler's FMA contraction is
            // the only difference, a few ulp per step on O(1) values.
            CHECK(check_close(m_g, m, 1e-6, 1e-5, "m"));
            CHECK(check_close(v_g, v, 1e-6, 1e-5, "v"));
            CHECK(check_close(p_g, p, 1e-6, 1e-5, "param"));
        }
    }
}

// ---- elementwise helpers ----

TEST_CASE("CUDA fill, add_inplace, scale_inplace match the CPU", "[cuda][elementwise]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(17), int64_t(1000), small_shapes() ? int64_t(30001) : int64_t(3000001)}) {
        INFO("n " << n);
        Tensor x = random_tensor({n}, 221), y = random_tensor({n}, 222);
        Tensor x_g = gpu(x), y_g = gpu(y);

        Tensor filled = Tensor::empty({n}, DType::F32, Device::CUDA);
        ops::fill(filled, 0.37);
        Tensor filled_cpu = Tensor::empty({n});
        ops::fill(filled_cpu, 0.37);
        CHECK(bitwise_equal(filled, filled_cpu));  // the same float(0.37) everywhere

        ops::scale_inplace(x, -1.7);
        ops::scale_inplace(x_g, -1.7);
        CHECK(bitwise_equal(x_g, x));  // one correctly rounded multiply on both sides

        ops::add_inplace(y, x, 0.3);
        ops::add_inplace(y_g, x_g, 0.3);
        // y + a*x: one rounding, or two where a side does not fuse it into an FMA.
        CHECK(check_close(y_g, y, 1e-7, 1e-6, "add_inplace"));
    }
}

TEST_CASE("CUDA sum_squares matches the CPU and is the same bits on every run", "[cuda][elementwise][clip]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (int64_t n : {0, 1, 17, 255, 256, 257, 1000, small_shapes() ? 100003 : (1 << 20) + 3}) {
        INFO("n " << n);
        Tensor x = random_tensor({n}, 231, 2.0);
        Tensor x_g = gpu(x);
        const double cpu = ops::sum_squares(x), first = ops::sum_squares(x_g), second = ops::sum_squares(x_g);
        CHECK(first == second);  // fixed blocks, fixed tree, fixed final order
        // Both sum exact double squares of floats, in different orders: n * 1e-16 at worst.
        CHECK(check_close({first}, {cpu}, 0, 1e-10, "sum_squares"));
    }
}

TEST_CASE("CUDA all_finite finds a single NaN or infinity anywhere", "[cuda][elementwise]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const int64_t n = small_shapes() ? 10003 : 100003;
    Tensor x = random_tensor({n}, 241);
    CHECK(ops::all_finite(gpu(x)));
    CHECK(ops::all_finite(Tensor::zeros({0}, DType::F32, Device::CUDA)));
    const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::infinity()};
    for (int64_t at : {int64_t(0), n / 2, n - 1})
        for (float bad : bad_values) {
            INFO("at " << at << ", value " << bad);
            Tensor y = x.clone();
            y.data<float>()[at] = bad;
            CHECK_FALSE(ops::all_finite(gpu(y)));
        }
}

TEST_CASE("CUDA sum_dim0 is bit-identical to the CPU", "[cuda][elementwise]") {
    ITTT_SKIP_WITHOUT_CUDA();
    for (Shape shape : {Shape{1, 5}, Shape{7, 3, 4}, Shape{33, 1000}, Shape{0, 6}})
        for (bool accumulate : {false, true}) {
            INFO("shape " << shape_str(shape) << (accumulate ? " accumulate" : ""));
            Tensor in = random_tensor(shape, 251);
            Shape rest(shape.begin() + 1, shape.end());
            Tensor out = random_tensor(rest, 252), out_g = gpu(out);
            ops::sum_dim0(out, in, accumulate);
            ops::sum_dim0(out_g, gpu(in), accumulate);
            CHECK(bitwise_equal(out_g, out));  // rows added in the same order 0..k-1
        }
}

TEST_CASE("CUDA clip_grad_norm matches the CPU", "[cuda][clip]") {
    ITTT_SKIP_WITHOUT_CUDA();
    std::vector<Tensor> cpu = {random_tensor({17}, 261), random_tensor({3, 5}, 262, 2.0), random_tensor({100001}, 263, 0.1)};
    std::vector<Tensor> dev;
    std::vector<Tensor*> cpu_ptrs, dev_ptrs;
    for (Tensor& g : cpu) dev.push_back(gpu(g));
    for (size_t k = 0; k < cpu.size(); ++k) {
        cpu_ptrs.push_back(&cpu[k]);
        dev_ptrs.push_back(&dev[k]);
    }
    for (double max_norm : {1e9, 3.0}) {  // no clipping, then clipping
        INFO("max_norm " << max_norm);
        const double norm_cpu = ops::clip_grad_norm(cpu_ptrs, max_norm);
        const double norm_gpu = ops::clip_grad_norm(dev_ptrs, max_norm);
        // Double sums of squares in different orders.
        CHECK(check_close({norm_gpu}, {norm_cpu}, 0, 1e-12, "norm"));
        // The scale max_norm / norm can differ in its last double bits, so the float
        // products may differ by 1 ulp.
        for (size_t k = 0; k < cpu.size(); ++k) CHECK(check_close(dev[k], cpu[k], 0, 1e-6, "grads[" + std::to_string(k) + "]"));
    }
}
