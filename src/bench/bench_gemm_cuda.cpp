// bench_gemm_cuda.cpp: the GPU side of `make bench`, each number next to a comparator
// measured in the same process on the same GPU (bench_shapes_cuda.cpp has the model-shape ones).
//
//   build/ittt_bench --filter cuda [--quick] [--csv FILE]     these three and bench_shapes_cuda.cpp's
//   gemm_cuda   every CUDA GEMM version of the op table (kernels/gemm/gemm_versions.h) in the
//               three layouts the model runs, NN (C = A B), NT (C = A B^T: x W^T, the forward
//               of every projection) and TN (C = A^T B: dW = dy^T x, the weight gradients), at
//               1024^3, 2048^3, 4096^3, F32; GFLOP/s and the fraction of cuBLAS F32 (CUDA
//               cores) and of cuBLAS TF32 (tensor cores, the fair comparator for version 5)
//   membw_cuda  memory-bound ops (rmsnorm, swiglu, AdamW) at large sizes, GB/s against a
//               device-to-device cudaMemcpy of the same run
//   train_cuda  whole model on the GPU: training-step and prefill tokens/s, with and
//               without TTT (the bench_model.cpp config, and a larger one)
//
// Times come from CUDA events around the calls after warm-up calls (bench_cuda.h's
// time_adaptive), except for the whole-model rows, whose host work (token upload, loss
// read-back) is part of a step and which are timed with a steady clock after a device
// synchronise. --csv FILE appends gemm_cuda's and membw_cuda's rows (docs/profiling.md).
//
// Environment, for `make profile` and tests/gpu/gpu-check.sh's Nsight Compute stage:
//   ITTT_KERNEL=gemm=v      (the syntax of --kernel) gemm_cuda times only version v (0: best) and no cuBLAS
//   ITTT_GEMM_SIZE=n        gemm_cuda times only n^3
//   ITTT_GEMM_LAYOUT=NN     gemm_cuda times only that layout (NN, NT or TN)
//
// On the CUDA emulator (make CUDA=emu) gemm_cuda and membw_cuda run only with --tiny (toy
// sizes, no cuBLAS: a check of their code and CSV) and train_cuda never: an emulator's time is
// never reported as a GPU figure.
#include "bench/bench_cuda.h"

#if ITTT_BENCH_CUDA

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "ops/op_table.h"
#include "ops/ops.h"
#include "runtime/device.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"
#include "train/trainer.h"

using namespace ittt;
using bench::Measurement;

namespace {

// ITTT_KERNEL's gemm version ("gemm=3" or "attention=2,gemm=3", parsed as --kernel is);
// -1 when it names none.
int gemm_version_from_env() {
    const char* env = std::getenv("ITTT_KERNEL");
    if (!env) return -1;
    ops::set_versions_from_string(env);
    return std::string(env).find("gemm=") != std::string::npos ? ops::version("gemm") : -1;
}

// The layouts gemm_cuda times: NN, NT, TN, or the one ITTT_GEMM_LAYOUT names.
struct Layout {
    const char* name;
    bool trans_a, trans_b;
};
std::vector<Layout> gemm_layouts() {
    const std::vector<Layout> all = {{"NN", false, false}, {"NT", false, true}, {"TN", true, false}};
    const char* env = std::getenv("ITTT_GEMM_LAYOUT");
    if (!env) return all;
    for (const Layout& l : all)
        if (std::strcmp(env, l.name) == 0) return {l};
    fail(cat("ITTT_GEMM_LAYOUT: expected NN, NT or TN, found '", env, "'"));
}

}  // namespace

ITTT_BENCHMARK(gemm_cuda, 11) {
    if (!bench::cuda_bench_runs(ctx, "gemm_cuda")) return;
    const int only = gemm_version_from_env();  // -1: every version
    std::vector<int64_t> sizes = ctx.tiny ? std::vector<int64_t>{64} : ctx.quick ? std::vector<int64_t>{1024} : std::vector<int64_t>{1024, 2048, 4096};
    if (const char* env = std::getenv("ITTT_GEMM_SIZE")) {
        const std::string v = env;
        ITTT_CHECK(!v.empty() && v.size() <= 5 && v.find_first_not_of("0123456789") == std::string::npos && std::stoi(v) > 0,
                   "ITTT_GEMM_SIZE: expected a size from 1 to 99999, found '", v, "'");
        sizes = {std::stoll(v)};
    }
    const std::vector<Layout> layouts = gemm_layouts();
    // profiling one version: no comparators to wait for
    const bool with_cublas = only < 0;
    const double budget = bench::time_budget(ctx);
    const std::string device = bench::cuda_device_name();

    std::unique_ptr<bench::Blas> blas;
    if (with_cublas) blas = std::make_unique<bench::Blas>();
    // Every CUDA version of the op table (or the one ITTT_KERNEL names; 0 is the best).
    std::vector<int> versions = bench::cuda_versions("gemm");
    if (only >= 0) versions = {only == 0 ? ops::op_spec("gemm").cuda.best : only};
    bench::Results rows(ctx);
    bench::Table comparators({"comparator", "layout", "M=N=K", "ms", "GFLOP/s"});
    for (int64_t n : sizes) {
        Tensor A = bench::random_uniform_gpu({n, n}, 1), B = bench::random_uniform_gpu({n, n}, 2);
        Tensor C = Tensor::zeros({n, n}, DType::F32, Device::CUDA), C_ref = Tensor::zeros({n, n}, DType::F32, Device::CUDA);
        const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
        for (const Layout& layout : layouts) {
            // The comparators first: cuBLAS F32 leaves its C in C_ref for the max-rel-diff column.
            bench::Timing blas_time[2];
            if (with_cublas)
                for (bool tf32 : {false, true}) {
                    Tensor& out = tf32 ? C : C_ref;
                    blas_time[tf32] = bench::time_adaptive(
                        [&] {
                            blas->gemm(layout.trans_a, layout.trans_b, n, n, n, 1.0f, A.data<float>(), n, 0, B.data<float>(), n, 0, 0.0f,
                                       out.data<float>(), n, 0, 1, tf32);
                        },
                        budget);
                    comparators.row({bench::blas_name(tf32), layout.name, std::to_string(n), bench::fmt("%.3f", blas_time[tf32].seconds * 1e3),
                                     bench::fmt("%.0f", flops / blas_time[tf32].seconds / 1e9)});
                }
            for (int v : versions)
                bench::guarded(cat("gemm_cuda: gemm version ", v, " ", layout.name, " at ", n, "^3"), [&] {
                    ops::set_version("gemm", v);
                    const bench::Timing t = bench::time_adaptive([&] { ops::matmul(C, A, layout.trans_a, B, layout.trans_b); }, budget);
                    Measurement m = bench::cuda_measurement("gemm_cuda", "gemm", layout.name, v, cat("M=N=K=", n), t, flops, "GFLOP/s");
                    if (!with_cublas) return rows.add(m);
                    m.max_rel_diff = bench::max_rel_diff(C, C_ref);
                    for (bool tf32 : {false, true})  // one row per comparator
                        rows.add(bench::compared(m, bench::blas_name(tf32), blas_time[tf32], flops));
                });
            ops::set_version("gemm", 0);
        }
    }
    if (with_cublas)
        comparators.print(cat("gemm_cuda: comparators, C (n, n) = op(A) op(B), F32 in and out, on ", device));
    rows.report(cat("gemm_cuda: ittt CUDA GEMM versions, uniform [-1, 1) inputs, CUDA-event time per call after warm-up",
                      only >= 0 ? cat(" (ITTT_KERNEL: version ", only, " only)") : std::string(),
                      with_cublas ? "; max rel diff = max |C - C_cuBLAS_F32| / max |C_cuBLAS_F32| (TF32: ~1e-3 expected)"
                                  : "; no comparator (ITTT_KERNEL)"));
}

ITTT_BENCHMARK(membw_cuda, 12) {
    if (!bench::cuda_bench_runs(ctx, "membw_cuda")) return;
    // floats per tensor: 256 MB, 64 MB with --quick, 64 KB with --tiny
    const int64_t n = ctx.tiny ? (int64_t(1) << 14) : ctx.quick ? (int64_t(1) << 24) : (int64_t(1) << 26);
    const double budget = bench::time_budget(ctx);
    const std::string device = bench::cuda_device_name();
    bench::Results rows(ctx);

    // The comparator: a device-to-device copy reads and writes every byte once.
    Tensor src = bench::random_uniform_gpu({n}, 3), dst = Tensor::zeros({n}, DType::F32, Device::CUDA);
    const bench::Timing copy = bench::time_adaptive([&] { dst.copy_from(src); }, budget);
    const double copy_bytes = 2.0 * static_cast<double>(n) * sizeof(float);
    auto row = [&](const char* op, const char* variant, const std::string& shape, double bytes, const bench::Timing& t) {
        const int v = ops::selected_version(op, Device::CUDA, "membw_cuda");
        rows.add(bench::compared(bench::cuda_measurement("membw_cuda", op, variant, v, shape, t, bytes, "GB/s"), "cudaMemcpy D2D",
                                       copy, copy_bytes));
    };

    {
        const int64_t dim = std::min<int64_t>(4096, n / 4), rows_n = n / dim;  // rows of a wide hidden state
        Tensor x = bench::random_uniform_gpu({rows_n, dim}, 4), w = bench::random_uniform_gpu({dim}, 5);
        Tensor out = Tensor::empty({rows_n, dim}, DType::F32, Device::CUDA), rstd = Tensor::empty({rows_n}, DType::F32, Device::CUDA);
        // reads x and weight, writes out and rstd
        const double bytes = (2.0 * static_cast<double>(n) + static_cast<double>(dim + rows_n)) * sizeof(float);
        row("rmsnorm", "forward", cat(rows_n, " x ", dim), bytes,
            bench::time_adaptive([&] { ops::rmsnorm_forward(out, rstd, x, w, 1e-6); }, budget));
    }
    {
        Tensor g = bench::random_uniform_gpu({n}, 6), u = bench::random_uniform_gpu({n}, 7), z = Tensor::empty({n}, DType::F32, Device::CUDA);
        row("swiglu", "forward", cat("n=", n), 3.0 * static_cast<double>(n) * sizeof(float),
            bench::time_adaptive([&] { ops::swiglu_forward(z, g, u); }, budget));
        Tensor dg = Tensor::empty({n}, DType::F32, Device::CUDA), du = Tensor::empty({n}, DType::F32, Device::CUDA);
        row("swiglu", "backward", cat("n=", n), 5.0 * static_cast<double>(n) * sizeof(float),  // reads dz, g, u; writes dg, du
            bench::time_adaptive([&] { ops::swiglu_backward(dg, du, z, g, u); }, budget));
    }
    {
        Tensor p = bench::random_uniform_gpu({n}, 8), g = bench::random_uniform_gpu({n}, 9);
        Tensor m = Tensor::zeros({n}, DType::F32, Device::CUDA), v = Tensor::zeros({n}, DType::F32, Device::CUDA);
        ops::AdamWConfig cfg;
        cfg.lr = 1e-6;  // tiny steps: the weights stay finite however many times it runs
        cfg.weight_decay = 0.1;
        int64_t step = 0;
        row("adamw", "step", cat("n=", n), 7.0 * static_cast<double>(n) * sizeof(float),  // reads p, g, m, v; writes p, m, v
            bench::time_adaptive([&] { ops::adamw_step(p, g, m, v, cfg, ++step); }, budget));
    }
    rows.report(cat("membw_cuda: memory-bound ops, F32, bytes = the minimum each op must read + write, CUDA-event time per call, against a ",
                      bench::fmt("%.0f", copy_bytes / 1e6), " MB device-to-device copy (", bench::fmt("%.0f", copy_bytes / copy.seconds / 1e9),
                      " GB/s), on ", device));
}

namespace {

struct E2eConfig {
    std::string name;
    int d, f, layers, heads, kv_heads, head_dim, window, B, n, chunk;
};

ModelConfig e2e_model_config(const E2eConfig& e, bool ttt) {
    ModelConfig c;
    c.vocab_size = 260;
    c.hidden_size = e.d;
    c.intermediate_size = e.f;
    c.num_hidden_layers = e.layers;
    c.num_attention_heads = e.heads;
    c.num_key_value_heads = e.kv_heads;
    c.head_dim = e.head_dim;
    c.rope_theta = 1e4;
    c.sliding_window = e.window;
    c.layer_types.assign(static_cast<size_t>(e.layers), AttentionType::Sliding);
    c.ttt_mode = ttt;
    if (ttt)
        for (int l = 1; l < e.layers; l += 2) c.ttt_layers.push_back(l);  // every other layer, as in bench_model.cpp
    c.ttt_chunk = e.chunk;
    c.validate();
    return c;
}

Tensor random_tokens(int B, int n, uint64_t seed) {
    Tensor t = Tensor::empty({B, n}, DType::I32);
    Rng rng(seed);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = static_cast<int32_t>(rng.randint(4, 260));
    return t;
}

}  // namespace

ITTT_BENCHMARK(train_cuda, 32) {
    if (ctx.tiny) {  // a whole model at toy size would time nothing worth a row
        std::printf("\ntrain_cuda: skipped under --tiny (whole-model timings only)\n");
        return;
    }
    if (!bench::cuda_bench_runs(ctx, "train_cuda")) return;
    // The first row is bench_model.cpp's config (d=128, f=384, 4 SWA layers, w=64); on a GPU
    // it is launch-bound. The second is large enough for the GEMMs to matter.
    std::vector<E2eConfig> configs = {{"bench_model config", 128, 384, 4, 4, 2, 32, 64, 4, 512, 64}};
    if (!ctx.quick) configs.push_back({"larger", 1024, 3072, 8, 16, 8, 64, 256, 8, 1024, 64});
    const int repeats = ctx.quick ? 2 : 5;
    bench::Table t({"model", "TTT", "B x n", "step ms", "train tokens/s", "TTT overhead", "cudaMalloc / waits per step", "prefill ms",
                    "prefill tokens/s", "TTT overhead"});
    for (const E2eConfig& e : configs) {
        double base_step = 0, base_prefill = 0;
        for (bool ttt : {false, true}) {
            Model model(e2e_model_config(e, ttt), DType::F32, Device::CUDA);
            model.init_random(1);
            // Nonzero TTT conv, as bench_model.cpp does, so the deltas are not all zero.
            for (Parameter& p : model.parameters())
                if (p.name.find("ttt_conv") != std::string::npos) p.value.copy_from(bench::random_uniform_gpu(p.value.shape(), 100));
            TrainConfig tc;
            tc.steps = 1 << 30;  // the schedule is irrelevant; only a step's cost is timed
            tc.warmup = 0;
            const int B = e.B, n = e.n;
            Trainer trainer(model, tc, [B, n](int64_t step, int micro, Tensor& tokens, Tensor& targets) {
                Tensor stream = random_tokens(B, n + 1, static_cast<uint64_t>(step) * 16 + static_cast<uint64_t>(micro));
                tokens = Tensor::empty({B, n}, DType::I32);
                targets = Tensor::empty({static_cast<int64_t>(B) * n}, DType::I32);
                for (int b = 0; b < B; ++b)
                    for (int i = 0; i < n; ++i) {
                        tokens.data<int32_t>()[b * n + i] = stream.data<int32_t>()[b * (n + 1) + i];
                        targets.data<int32_t>()[b * n + i] = stream.data<int32_t>()[b * (n + 1) + i + 1];
                    }
            });
            Tensor tok = random_tokens(B, n, 99).to(Device::CUDA);
            ForwardOptions inference;
            inference.inference = true;
            auto wall = [](const std::function<void()>& fn) {
                device::synchronize(Device::CUDA);
                auto t0 = std::chrono::steady_clock::now();
                fn();
                device::synchronize(Device::CUDA);
                return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            };
            trainer.step();  // warm-up: first allocations and lazy loading of the CUDA modules
            trainer.step();
            model.forward(tok, inference);
            // What one steady-state step costs the runtime (tests/test_cuda_step.cpp: 0 and 1).
            device::reset_counters();
            trainer.step();
            const device::Counters per_step = device::counters();
            double step_s = 1e300, prefill_s = 1e300;
            for (int r = 0; r < repeats; ++r) {
                step_s = std::min(step_s, wall([&] { trainer.step(); }));
                prefill_s = std::min(prefill_s, wall([&] { model.forward(tok, inference); }));
            }
            if (!ttt) base_step = step_s, base_prefill = prefill_s;
            const double tokens = static_cast<double>(B) * n;
            auto overhead = [&](double s, double base) { return ttt ? bench::fmt("%+.1f%%", 100.0 * (s - base) / base) : std::string("(comparator)"); };
            t.row({e.name + cat(" d=", e.d, " f=", e.f, " L=", e.layers), ttt ? cat("layers 1,3,.. C=", e.chunk) : "none",
                   cat(B, " x ", n), bench::fmt("%.2f", step_s * 1e3), bench::fmt("%.0f", tokens / step_s), overhead(step_s, base_step),
                   cat(per_step.device_allocations, " / ", per_step.host_waits),
                   bench::fmt("%.2f", prefill_s * 1e3), bench::fmt("%.0f", tokens / prefill_s), overhead(prefill_s, base_prefill)});
        }
    }
    t.print(cat("train_cuda: whole model on ", device::describe(Device::CUDA),
                ", F32 (every op at version 0, its CUDA best), best of ", repeats,
                " after a warm-up; step = forward + backward + clip + AdamW (Trainer::step)"));
}

#endif  // ITTT_BENCH_CUDA
