// bench_gemm_cuda.cpp: the GPU side of `make bench`, each number next to a comparator
// measured in the same process on the same GPU.
//
//   build/ittt_bench --filter cuda [--quick]     all three below
//   gemm_cuda   every CUDA GEMM version (kernels/gemm/gemm.cu) at 1024^3, 2048^3, 4096^3
//               (NN, F32), GFLOP/s and % of cuBLAS: cublasSgemm (F32, CUDA cores) and
//               cublasGemmEx with CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores, the fair
//               comparator for version 5)
//   membw_cuda  memory-bound ops (rmsnorm, swiglu, AdamW) at large sizes, GB/s against a
//               device-to-device cudaMemcpy of the same run
//   train_cuda  whole model on the GPU: training-step and prefill tokens/s, with and
//               without TTT (the bench_model.cpp config, and a larger one)
//
// Times come from CUDA events around `repeats` calls after warm-up calls (kernels are
// asynchronous: a host clock would time the launch, not the work), except for the
// whole-model rows, whose host work (token upload, loss read-back) is part of a step
// and which are timed with a steady clock after a device synchronise.
//
// Environment, for `make profile` (docs/profiling.md):
//   ITTT_KERNEL=gemm=v   (the syntax of --kernel) gemm_cuda times only version v (0: best) and no cuBLAS
//   ITTT_GEMM_SIZE=n     gemm_cuda times only n^3
//
// Compiled only with CUDA (ITTT_WITH_CUDA) and the CUDA headers on the include path (the
// Makefile's NVTX include dir is CUDA's); without a GPU each benchmark prints "no CUDA
// device" and returns. Linked with -lcublas (the Makefile does it for build/ittt_bench only).
// On the CUDA emulator (make CUDA=emu) the same three benchmarks exist and refuse to run:
// an emulator's time is never reported as a GPU figure.
#include "bench/bench.h"

#if ITTT_WITH_CUDA && __has_include(<cuda_runtime.h>)
#include <cuda_runtime.h>  // the emulator's shim in a CUDA=emu build, which defines ITTT_CUDA_EMULATED
#endif

#if ITTT_WITH_CUDA && defined(ITTT_CUDA_EMULATED)

namespace {
void refuse(const char* bench) {
    std::printf("\n%s: refused: this build's CUDA device is the CPU emulator (make CUDA=emu), not a GPU; it checks the\n"
                "  kernels' correctness, and no time it takes is a GPU figure. Build with nvcc (make CUDA=1) on a GPU machine.\n",
                bench);
}
}  // namespace

ITTT_BENCHMARK(gemm_cuda, 11) { refuse("gemm_cuda"); }
ITTT_BENCHMARK(membw_cuda, 12) { refuse("membw_cuda"); }
ITTT_BENCHMARK(train_cuda, 32) { refuse("train_cuda"); }

#elif ITTT_WITH_CUDA && __has_include(<cublas_v2.h>)
#include <cublas_v2.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/gemm/gemm.h"
#include "model/model.h"
#include "ops/ops.h"
#include "runtime/cuda_check.h"
#include "runtime/device.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"
#include "train/trainer.h"

using namespace ittt;

#define CUBLAS_CHECK(call)                                                                                     \
    do {                                                                                                       \
        cublasStatus_t ittt_cublas_status_ = (call);                                                           \
        if (ittt_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                      \
            ::ittt::fail(::ittt::cat("cuBLAS error: ", #call, " returned ", static_cast<int>(ittt_cublas_status_), \
                                     " at ", __FILE__, ":", __LINE__));                                          \
    } while (0)

namespace {

bool require_gpu(const char* bench) {
    if (cuda_available()) return true;
    std::printf("\n%s: no CUDA device\n", bench);
    return false;
}

// Uniform in [-1, 1) from a counter hash: cheap enough for 2^26 values on the host.
Tensor random_uniform_gpu(const Shape& shape, uint64_t seed) {
    Tensor t = Tensor::empty(shape);
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i)
        p[i] = static_cast<float>(static_cast<double>(splitmix64(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i)) >> 11) * 0x1.0p-52 - 1.0);
    return t.to(Device::CUDA);
}

// Mean seconds per call of fn over `repeats` calls after `warmup` calls, from CUDA events
// on the default stream (where every kernel of this project runs).
double time_events(const std::function<void()>& fn, int warmup, int repeats) {
    for (int i = 0; i < warmup; ++i) fn();
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    CUDA_CHECK(cudaEventRecord(start));
    for (int i = 0; i < repeats; ++i) fn();
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    return ms * 1e-3 / repeats;
}

// Times fn with enough repeats to fill about `budget` seconds (at least 3, at most 100):
// one warm-up call, one call to size the run, then the timed calls.
double time_adaptive(const std::function<void()>& fn, double budget) {
    const double once = time_events(fn, 1, 1);
    const int repeats = static_cast<int>(std::clamp(budget / std::max(once, 1e-6), 3.0, 100.0));
    return time_events(fn, 0, repeats);
}

// max |x - y| / max |y| over two device tensors: a sanity column, not a test.
double max_rel_diff(const Tensor& x, const Tensor& y) {
    std::vector<float> a = x.to_f32_vector(), b = y.to_f32_vector();
    double err = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
        scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
    }
    return scale > 0 ? err / scale : err;
}

// ITTT_KERNEL's gemm version ("gemm=3" or "attention=2,gemm=3", parsed as --kernel is);
// -1 when it names none.
int gemm_version_from_env() {
    const char* env = std::getenv("ITTT_KERNEL");
    if (!env) return -1;
    ops::set_versions_from_string(env);
    return std::string(env).find("gemm=") != std::string::npos ? ops::version("gemm") : -1;
}

}  // namespace

ITTT_BENCHMARK(gemm_cuda, 11) {
    if (!require_gpu("gemm_cuda")) return;
    const int only = gemm_version_from_env();  // -1: every version
    std::vector<int64_t> sizes = ctx.quick ? std::vector<int64_t>{1024} : std::vector<int64_t>{1024, 2048, 4096};
    if (const char* env = std::getenv("ITTT_GEMM_SIZE")) {
        const std::string v = env;
        ITTT_CHECK(!v.empty() && v.size() <= 5 && v.find_first_not_of("0123456789") == std::string::npos && std::stoi(v) > 0,
                   "ITTT_GEMM_SIZE: expected a size from 1 to 99999, found '", v, "'");
        sizes = {std::stoll(v)};
    }
    const bool with_cublas = only < 0;  // profiling one version: no comparators to wait for
    const double budget = ctx.quick ? 0.05 : 0.3;  // seconds of timed calls per row

    cublasHandle_t handle = nullptr;
    if (with_cublas) CUBLAS_CHECK(cublasCreate(&handle));
    // Every CUDA version of the op table (or the one ITTT_KERNEL names; 0 is the best).
    const ops::DeviceVersions& table_versions = ops::op_spec("gemm").cuda;
    std::vector<int> versions;
    if (only >= 0) versions.push_back(only == 0 ? table_versions.best : only);
    else
        for (const ops::VersionInfo& v : table_versions.versions) versions.push_back(v.number);
    bench::Table table({"version", "kernel", "M=N=K", "ms", "GFLOP/s", "% of cuBLAS SGEMM", "% of cuBLAS TF32", "max rel diff vs cuBLAS"});
    bench::Table comparators({"comparator", "M=N=K", "ms", "GFLOP/s"});
    for (int64_t n : sizes) {
        Tensor A = random_uniform_gpu({n, n}, 1), B = random_uniform_gpu({n, n}, 2), C = Tensor::zeros({n, n}, DType::F32, Device::CUDA);
        const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
        double sgemm_s = 0, tf32_s = 0;
        Tensor C_ref = Tensor::zeros({n, n}, DType::F32, Device::CUDA);
        if (with_cublas) {
            // Row-major C = A B is column-major C^T = B^T A^T: pass B first, as cuBLAS sees the
            // row-major buffers as their transposes.
            const float one = 1.0f, zero = 0.0f;
            const int ni = static_cast<int>(n);
            CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));  // plain F32, no TF32
            sgemm_s = time_adaptive(
                [&] {
                    CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, ni, ni, ni, &one, B.data<float>(), ni, A.data<float>(), ni,
                                             &zero, C_ref.data<float>(), ni));
                },
                budget);
            Tensor C_tf32 = Tensor::zeros({n, n}, DType::F32, Device::CUDA);
            tf32_s = time_adaptive(
                [&] {
                    CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, ni, ni, ni, &one, B.data<float>(), CUDA_R_32F, ni,
                                              A.data<float>(), CUDA_R_32F, ni, &zero, C_tf32.data<float>(), CUDA_R_32F, ni,
                                              CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
                },
                budget);
            comparators.row({"cublasSgemm (F32)", std::to_string(n), bench::fmt("%.3f", sgemm_s * 1e3), bench::fmt("%.0f", flops / sgemm_s / 1e9)});
            comparators.row({"cublasGemmEx (TF32 tensor cores)", std::to_string(n), bench::fmt("%.3f", tf32_s * 1e3),
                             bench::fmt("%.0f", flops / tf32_s / 1e9)});
        }
        for (int v : versions) {
            ops::set_version("gemm", v);
            const double s = time_adaptive([&] { ops::matmul(C, A, false, B, false); }, budget);
            const ops::VersionInfo* info = table_versions.find(v);
            ITTT_CHECK(info != nullptr, "ITTT_KERNEL: no CUDA version ", v, " of gemm (", table_versions.describe(), ")");
            table.row({cat(v, " ", info->name), info->kernels,
                       std::to_string(n), bench::fmt("%.3f", s * 1e3), bench::fmt("%.0f", flops / s / 1e9),
                       with_cublas ? bench::fmt("%.1f%%", 100.0 * sgemm_s / s) : "-", with_cublas ? bench::fmt("%.1f%%", 100.0 * tf32_s / s) : "-",
                       with_cublas ? bench::fmt("%.1e", max_rel_diff(C, C_ref)) : "-"});
        }
        ops::set_version("gemm", 0);
    }
    if (handle) CUBLAS_CHECK(cublasDestroy(handle));
    if (with_cublas)
        comparators.print(cat("gemm_cuda: comparators, C (n, n) = A (n, n) @ B (n, n), F32 in and out, on ", device::describe(Device::CUDA)));
    table.print(cat("gemm_cuda: ittt CUDA GEMM versions, NN, uniform [-1, 1) inputs, CUDA-event time per call after warm-up",
                    only >= 0 ? cat(" (ITTT_KERNEL: version ", only, " only)") : std::string(),
                    "; max rel diff = max |C - C_cublasSgemm| / max |C_cublasSgemm| (TF32: ~1e-3 expected)"));
}

ITTT_BENCHMARK(membw_cuda, 12) {
    if (!require_gpu("membw_cuda")) return;
    const int64_t n = ctx.quick ? (int64_t(1) << 24) : (int64_t(1) << 26);  // floats per tensor: 64 MB or 256 MB
    const double budget = ctx.quick ? 0.05 : 0.3;
    struct Row {
        std::string op;
        double bytes, seconds;
    };
    std::vector<Row> rows;

    // The comparator: a device-to-device copy reads and writes every byte once.
    Tensor src = random_uniform_gpu({n}, 3), dst = Tensor::zeros({n}, DType::F32, Device::CUDA);
    const double copy_s = time_adaptive([&] { dst.copy_from(src); }, budget);
    const double copy_bytes = 2.0 * static_cast<double>(n) * sizeof(float);

    {
        const int64_t dim = 4096, rows_n = n / dim;  // rows of a wide hidden state
        Tensor x = random_uniform_gpu({rows_n, dim}, 4), w = random_uniform_gpu({dim}, 5);
        Tensor out = Tensor::empty({rows_n, dim}, DType::F32, Device::CUDA), rstd = Tensor::empty({rows_n}, DType::F32, Device::CUDA);
        // reads x and weight, writes out and rstd
        const double bytes = (2.0 * static_cast<double>(n) + dim + rows_n) * sizeof(float);
        rows.push_back({cat("rmsnorm_forward (", rows_n, " x ", dim, ")"), bytes,
                        time_adaptive([&] { ops::rmsnorm_forward(out, rstd, x, w, 1e-6); }, budget)});
    }
    {
        Tensor g = random_uniform_gpu({n}, 6), u = random_uniform_gpu({n}, 7), z = Tensor::empty({n}, DType::F32, Device::CUDA);
        rows.push_back({"swiglu_forward", 3.0 * static_cast<double>(n) * sizeof(float),
                        time_adaptive([&] { ops::swiglu_forward(z, g, u); }, budget)});
        Tensor dg = Tensor::empty({n}, DType::F32, Device::CUDA), du = Tensor::empty({n}, DType::F32, Device::CUDA);
        rows.push_back({"swiglu_backward", 5.0 * static_cast<double>(n) * sizeof(float),  // reads dz, g, u; writes dg, du
                        time_adaptive([&] { ops::swiglu_backward(dg, du, z, g, u); }, budget)});
    }
    {
        Tensor p = random_uniform_gpu({n}, 8), g = random_uniform_gpu({n}, 9);
        Tensor m = Tensor::zeros({n}, DType::F32, Device::CUDA), v = Tensor::zeros({n}, DType::F32, Device::CUDA);
        ops::AdamWConfig cfg;
        cfg.lr = 1e-6;  // tiny steps: the weights stay finite however many times it runs
        cfg.weight_decay = 0.1;
        int64_t step = 0;
        rows.push_back({"adamw_step", 7.0 * static_cast<double>(n) * sizeof(float),  // reads p, g, m, v; writes p, m, v
                        time_adaptive([&] { ops::adamw_step(p, g, m, v, cfg, ++step); }, budget)});
    }

    bench::Table t({"op", "elements", "bytes moved", "ms", "GB/s", "% of D2D memcpy"});
    t.row({"cudaMemcpy D2D (comparator)", std::to_string(n), bench::fmt("%.0f MB", copy_bytes / 1e6), bench::fmt("%.3f", copy_s * 1e3),
           bench::fmt("%.0f", copy_bytes / copy_s / 1e9), "100%"});
    for (const Row& r : rows)
        t.row({r.op, std::to_string(n), bench::fmt("%.0f MB", r.bytes / 1e6), bench::fmt("%.3f", r.seconds * 1e3),
               bench::fmt("%.0f", r.bytes / r.seconds / 1e9), bench::fmt("%.1f%%", 100.0 * (r.bytes / r.seconds) / (copy_bytes / copy_s))});
    t.print(cat("membw_cuda: memory-bound ops, F32, bytes = the minimum each op must read + write, CUDA-event time per call, on ",
                device::describe(Device::CUDA)));
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
    if (!require_gpu("train_cuda")) return;
    // The first row is bench_model.cpp's config (d=128, f=384, 4 SWA layers, w=64); on a GPU
    // it is launch-bound. The second is large enough for the GEMMs to matter.
    std::vector<E2eConfig> configs = {{"bench_model config", 128, 384, 4, 4, 2, 32, 64, 4, 512, 64}};
    if (!ctx.quick) configs.push_back({"larger", 1024, 3072, 8, 16, 8, 64, 256, 8, 1024, 64});
    const int repeats = ctx.quick ? 2 : 5;
    bench::Table t({"model", "TTT", "B x n", "step ms", "train tokens/s", "TTT overhead", "prefill ms", "prefill tokens/s", "TTT overhead"});
    for (const E2eConfig& e : configs) {
        double base_step = 0, base_prefill = 0;
        for (bool ttt : {false, true}) {
            Model model(e2e_model_config(e, ttt), DType::F32, Device::CUDA);
            model.init_random(1);
            // Nonzero TTT conv, as bench_model.cpp does, so the deltas are not all zero.
            for (Parameter& p : model.parameters())
                if (p.name.find("ttt_conv") != std::string::npos) p.value.copy_from(random_uniform_gpu(p.value.shape(), 100));
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
            model.forward(tok, inference);
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
                   bench::fmt("%.2f", prefill_s * 1e3), bench::fmt("%.0f", tokens / prefill_s), overhead(prefill_s, base_prefill)});
        }
    }
    t.print(cat("train_cuda: whole model on ", device::describe(Device::CUDA),
                ", F32 (gemm best: TF32 tensor cores where shapes tile), best of ", repeats,
                " after a warm-up; step = forward + backward + clip + AdamW (Trainer::step)"));
}

#endif  // ITTT_WITH_CUDA
