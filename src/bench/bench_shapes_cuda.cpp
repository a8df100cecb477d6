// bench_shapes_cuda.cpp: the GPU kernels at the shapes of a Qwen3-0.6B-sized model, every CUDA
// version of the op table, each against cuBLAS doing the same products or a device-to-device
// copy of the same bytes, in the same run (docs/profiling.md, "The CSV").
//
//   build/ittt_bench --filter attention_cuda,ttt_cuda,cross_entropy_cuda [--quick | --tiny] [--csv FILE]
//   attention_cuda      causal GQA attention, forward and backward, 16 query heads, 8 KV heads of
//                       128, at n x window = 4096 x full, 4096 x 1024, 16384 x 1024; against
//                       cuBLAS batched F32 products of the same size done densely (below)
//   ttt_cuda            the TTT layer's products at (B, n, C, d, f) = (2, 4096, 512, 1024, 3072),
//                       T = n / C = 8: chunk delta, prefix scan, apply (parallel form) and the
//                       chunk loop; the products against the same products in cuBLAS, the scan
//                       against a device-to-device copy
//   cross_entropy_cuda  loss, and loss + gradient, over 151,936 classes (Qwen3's vocabulary) for
//                       2048 rows, against a device-to-device copy of the logits
//
// What the comparators do, so that "fraction" reads right:
// - attention: per (batch, query head), S = Q K^T and O = S V as dense strided-batched GEMMs with
//   L = min(n, window) keys per query (the backward: the five products S, dP = dO V^T,
//   dV = P^T dO, dQ = dS K, dK = dS^T Q). No softmax, no mask: a floor no attention kernel can
//   beat at that work. Useful work counts the visible (query, key) pairs only: 4 hd flops each
//   forward, 10 hd backward (FlashAttention's convention: the backward is 2.5 forwards).
// - TTT delta and apply: exactly the op's products (one strided-batched call per term, as issue
//   20 proposes the kernels become), so max_rel_diff compares the results.
// - chunk loop: the same GEMM sequence from the host (per sequence and chunk: apply W_i, then fold
//   eta V^T Z into it), as the CUDA version 1 does, with cuBLAS's GEMMs.
// - memory-bound rows (scan, cross-entropy): the minimum bytes the op must read and write
//   against a device-to-device copy (reads + writes) of one of its tensors.
// cross_entropy returns the loss to the host, so each call ends with a synchronising copy:
// that latency (microseconds) is in its time.
//
// On the CUDA emulator (make CUDA=emu) these run only with --tiny: toy shapes and no cuBLAS
// (comparator "none"), a check of this code and of the CSV, never a GPU figure.
#include "bench/bench_cuda.h"

#if ITTT_BENCH_CUDA

#include <algorithm>
#include <string>
#include <vector>

#include "ops/op_table.h"
#include "ops/ops.h"
#include "runtime/device.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"

using namespace ittt;
using bench::Measurement;

namespace {

// Visible (query, key) pairs of one head: query i sees min(i + 1, window) keys (window 0: all).
double visible_pairs(int64_t n, int64_t window) {
    double pairs = 0;
    for (int64_t i = 0; i < n; ++i) pairs += static_cast<double>(window > 0 ? std::min(i + 1, window) : i + 1);
    return pairs;
}

struct AttentionShape {
    int64_t B, n, Hq, Hkv, hd, window;  // window 0: full causal
};

}  // namespace

ITTT_BENCHMARK(attention_cuda, 13) {
    if (!bench::cuda_bench_runs(ctx, "attention_cuda")) return;
    // Qwen3-0.6B: 16 query heads, 8 KV heads, head dim 128.
    std::vector<AttentionShape> shapes = {{1, 4096, 16, 8, 128, 0}, {1, 4096, 16, 8, 128, 1024}, {1, 16384, 16, 8, 128, 1024}};
    if (ctx.quick) shapes = {{1, 2048, 16, 8, 128, 0}, {1, 2048, 16, 8, 128, 512}};
    if (ctx.tiny) shapes = {{1, 48, 2, 1, 16, 0}, {1, 48, 2, 1, 16, 16}};
    const double budget = bench::time_budget(ctx);
    bench::Blas blas;
    bench::Results rows(ctx);

    for (const AttentionShape& s : shapes) {
        const std::string shape = cat("B=", s.B, " n=", s.n, " Hq=", s.Hq, " Hkv=", s.Hkv, " hd=", s.hd,
                                      " window=", s.window > 0 ? std::to_string(s.window) : std::string("full"));
        const int window = static_cast<int>(s.window);
        Tensor q = bench::random_uniform_gpu({s.B, s.n, s.Hq, s.hd}, 11), k = bench::random_uniform_gpu({s.B, s.n, s.Hkv, s.hd}, 12);
        Tensor v = bench::random_uniform_gpu({s.B, s.n, s.Hkv, s.hd}, 13), dout = bench::random_uniform_gpu({s.B, s.n, s.Hq, s.hd}, 14);
        Tensor out = Tensor::empty({s.B, s.n, s.Hq, s.hd}, DType::F32, Device::CUDA), lse = Tensor::empty({s.B, s.Hq, s.n}, DType::F32, Device::CUDA);
        Tensor dq = Tensor::empty(q.shape(), DType::F32, Device::CUDA), dk = Tensor::empty(k.shape(), DType::F32, Device::CUDA);
        Tensor dv = Tensor::empty(v.shape(), DType::F32, Device::CUDA);
        const double pairs = static_cast<double>(s.B * s.Hq) * visible_pairs(s.n, s.window);
        const double forward_flops = 4.0 * static_cast<double>(s.hd) * pairs, backward_flops = 2.5 * forward_flops;

        // The comparator: dense products with L keys per query, batched over (batch, query head).
        bench::Timing dense_forward, dense_backward;
        const int64_t L = s.window > 0 ? std::min(s.n, s.window) : s.n, batch = s.B * s.Hq;
        const double dense_forward_flops = 4.0 * static_cast<double>(batch * s.n * L * s.hd), dense_backward_flops = 2.5 * dense_forward_flops;
        {  // a scope: its buffers (up to 2 GB) are freed before the versions run
            Tensor Qd = bench::random_uniform_gpu({batch, s.n, s.hd}, 21), Kd = bench::random_uniform_gpu({batch, L, s.hd}, 22);
            Tensor Vd = bench::random_uniform_gpu({batch, L, s.hd}, 23), dOd = bench::random_uniform_gpu({batch, s.n, s.hd}, 24);
            Tensor S = Tensor::empty({batch, s.n, L}, DType::F32, Device::CUDA), dS = Tensor::empty({batch, s.n, L}, DType::F32, Device::CUDA);
            Tensor Od = Tensor::empty({batch, s.n, s.hd}, DType::F32, Device::CUDA), dKd = Tensor::empty({batch, L, s.hd}, DType::F32, Device::CUDA);
            const int64_t n = s.n, hd = s.hd;
            // C (M, N) = op(A) op(B) for every (batch, head), each operand at its own stride
            auto product = [&](bool ta, bool tb, int64_t M, int64_t N, int64_t K, const Tensor& A, const Tensor& B, Tensor& C) {
                const int64_t lda = ta ? M : K, ldb = tb ? K : N;
                blas.gemm(ta, tb, M, N, K, 1.0f, A.data<float>(), lda, A.numel() / batch, B.data<float>(), ldb, B.numel() / batch, 0.0f,
                          C.data<float>(), N, C.numel() / batch, batch, false);
            };
            dense_forward = bench::time_adaptive(
                [&] {
                    product(false, true, n, L, hd, Qd, Kd, S);   // S = Q K^T   (n, L)
                    product(false, false, n, hd, L, S, Vd, Od);  // O = S V     (n, hd)
                },
                budget);
            dense_backward = bench::time_adaptive(
                [&] {
                    product(false, true, n, L, hd, Qd, Kd, S);    // S = Q K^T (recomputed)
                    product(false, true, n, L, hd, dOd, Vd, dS);  // dP = dO V^T  (n, L)
                    product(true, false, L, hd, n, S, dOd, dKd);  // dV = P^T dO  (L, hd)
                    product(false, false, n, hd, L, dS, Kd, Od);  // dQ = dS K    (n, hd)
                    product(true, false, L, hd, n, dS, Qd, dKd);  // dK = dS^T Q  (L, hd)
                },
                budget);
        }
        bench::for_each_cuda_version("attention_cuda", "attention", shape, [&](int version) {
            const bench::Timing forward = bench::time_adaptive([&] { ops::attention_forward(out, lse, q, k, v, 0, window); }, budget);
            const bench::Timing backward =
                bench::time_adaptive([&] { ops::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, window); }, budget);
            Measurement f = bench::cuda_measurement("attention_cuda", "attention", "forward", version, shape, forward, forward_flops, "GFLOP/s");
            Measurement b = bench::cuda_measurement("attention_cuda", "attention", "backward", version, shape, backward, backward_flops, "GFLOP/s");
            rows.add(bench::compared(f, bench::blas_name(false) + " dense S=QK^T O=SV", dense_forward, dense_forward_flops));
            rows.add(bench::compared(b, bench::blas_name(false) + " dense backward products", dense_backward, dense_backward_flops));
        });
    }
    rows.report(cat("attention_cuda: causal GQA attention, F32, rate = 4 hd flops per visible (query, key) pair forward, 10 hd "
                      "backward; comparator: cuBLAS's dense batched products with min(n, window) keys per query, on ",
                      bench::cuda_device_name()));
}

namespace {

struct TttShape {
    int64_t B, n, C, d, f;
};

}  // namespace

ITTT_BENCHMARK(ttt_cuda, 14) {
    if (!bench::cuda_bench_runs(ctx, "ttt_cuda")) return;
    // A Qwen3-0.6B MLP (d = 1024, f = 3072) with TTT chunks of 512 (the README's convert line).
    TttShape s = {2, 4096, 512, 1024, 3072};
    if (ctx.quick) s = {1, 1024, 256, 1024, 3072};
    if (ctx.tiny) s = {2, 32, 8, 16, 24};
    const int64_t T = s.n / s.C, N = s.B * s.n, chunks = s.B * T;  // n % C == 0: every chunk full
    const float eta = 0.1f;
    const std::string shape = cat("B=", s.B, " n=", s.n, " C=", s.C, " T=", T, " d=", s.d, " f=", s.f);
    const double budget = bench::time_budget(ctx);
    bench::Blas blas;
    bench::Results rows(ctx);

    Tensor z = bench::random_uniform_gpu({s.B, s.n, s.f}, 31), v = bench::random_uniform_gpu({s.B, s.n, s.d}, 32);
    Tensor wd = bench::random_uniform_gpu({s.d, s.f}, 33);
    Tensor delta = Tensor::zeros({s.B, T, s.d, s.f}, DType::F32, Device::CUDA), scan = Tensor::zeros({s.B, T, s.d, s.f}, DType::F32, Device::CUDA);
    Tensor o = Tensor::zeros({s.B, s.n, s.d}, DType::F32, Device::CUDA);
    Tensor delta_ref = Tensor::zeros(delta.shape(), DType::F32, Device::CUDA), o_ref = Tensor::zeros(o.shape(), DType::F32, Device::CUDA);
    const double d = static_cast<double>(s.d), f = static_cast<double>(s.f);

    // ---- chunk delta: delta[b, i] (d, f) = V_[i]^T Z_[i], one (C, d)^T (C, f) product per chunk ----
    const double delta_flops = 2.0 * static_cast<double>(N) * d * f;
    auto blas_delta = [&] {
        blas.gemm(true, false, s.d, s.f, s.C, 1.0f, v.data<float>(), s.d, s.C * s.d, z.data<float>(), s.f, s.C * s.f, 0.0f, delta_ref.data<float>(),
                  s.f, s.d * s.f, chunks, false);
    };
    const bench::Timing blas_delta_time = bench::time_adaptive(blas_delta, budget);
    bench::for_each_cuda_version("ttt_cuda", "ttt_delta", shape, [&](int version) {
        const bench::Timing t = bench::time_adaptive([&] { ops::ttt_chunk_delta(delta, v, z, static_cast<int>(s.C)); }, budget);
        Measurement m = bench::cuda_measurement("ttt_cuda", "ttt_delta", "forward", version, shape, t, delta_flops, "GFLOP/s");
        m = bench::compared(m, bench::blas_name(false) + " strided-batched V^T Z", blas_delta_time, delta_flops);
        m.max_rel_diff = bench::max_rel_diff(delta, delta_ref);
        rows.add(m);
    });

    // ---- prefix scan over chunks: reads delta, writes the exclusive sums ----
    const double scan_bytes = 2.0 * static_cast<double>(delta.numel()) * sizeof(float);
    const bench::Timing copy = bench::time_adaptive([&] { scan.copy_from(delta); }, budget);
    bench::for_each_cuda_version("ttt_cuda", "prefix_scan", shape, [&](int version) {
        const bench::Timing t = bench::time_adaptive([&] { ops::prefix_scan_exclusive(scan, delta, false); }, budget);
        rows.add(bench::compared(bench::cuda_measurement("ttt_cuda", "prefix_scan", "forward", version, shape, t, scan_bytes, "GB/s"),
                                       "cudaMemcpy D2D", copy, scan_bytes));
    });
    ops::prefix_scan_exclusive(scan, delta, false);  // the apply below reads the true sums

    // ---- apply: o = z wd^T + eta z_[i] s_i^T per chunk ----
    const double apply_flops = 4.0 * static_cast<double>(N) * d * f;
    auto blas_apply = [&] {
        blas.gemm(false, true, N, s.d, s.f, 1.0f, z.data<float>(), s.f, 0, wd.data<float>(), s.f, 0, 0.0f, o_ref.data<float>(), s.d, 0, 1, false);
        blas.gemm(false, true, s.C, s.d, s.f, eta, z.data<float>(), s.f, s.C * s.f, scan.data<float>(), s.f, s.d * s.f, 1.0f, o_ref.data<float>(),
                  s.d, s.C * s.d, chunks, false);
    };
    const bench::Timing blas_apply_time = bench::time_adaptive(blas_apply, budget);
    bench::for_each_cuda_version("ttt_cuda", "ttt_apply", shape, [&](int version) {
        const bench::Timing t = bench::time_adaptive([&] { ops::ttt_apply_forward(o, z, wd, scan, eta, static_cast<int>(s.C)); }, budget);
        Measurement m = bench::cuda_measurement("ttt_cuda", "ttt_apply", "forward", version, shape, t, apply_flops, "GFLOP/s");
        m = bench::compared(m, bench::blas_name(false) + " z wd^T + strided-batched eta z s^T", blas_apply_time, apply_flops);
        m.max_rel_diff = bench::max_rel_diff(o, o_ref);
        rows.add(m);
    });

    // ---- chunk loop: per sequence and chunk, o_[i] = z_[i] W_i^T, then W_{i+1} = W_i + eta v_[i]^T z_[i] ----
    // T applies and T - 1 updates per sequence (the last chunk's update is never read).
    const double loop_flops = static_cast<double>(s.B) * (2.0 * static_cast<double>(T) - 1.0) * 2.0 * static_cast<double>(s.C) * d * f;
    Tensor w = Tensor::zeros({s.d, s.f}, DType::F32, Device::CUDA);
    auto blas_loop = [&] {
        for (int64_t b = 0; b < s.B; ++b) {
            w.copy_from(wd);
            for (int64_t i = 0; i < T; ++i) {
                const int64_t row = b * s.n + i * s.C;
                blas.gemm(false, true, s.C, s.d, s.f, 1.0f, z.data<float>() + row * s.f, s.f, 0, w.data<float>(), s.f, 0, 0.0f,
                          o_ref.data<float>() + row * s.d, s.d, 0, 1, false);
                if (i + 1 < T)
                    blas.gemm(true, false, s.d, s.f, s.C, eta, v.data<float>() + row * s.d, s.d, 0, z.data<float>() + row * s.f, s.f, 0, 1.0f,
                              w.data<float>(), s.f, 0, 1, false);
            }
        }
    };
    const bench::Timing blas_loop_time = bench::time_adaptive(blas_loop, budget);
    bench::for_each_cuda_version("ttt_cuda", "ttt_loop", shape, [&](int version) {
        const bench::Timing t = bench::time_adaptive([&] { ops::ttt_loop_forward(o, z, v, wd, eta, static_cast<int>(s.C)); }, budget);
        Measurement m = bench::cuda_measurement("ttt_cuda", "ttt_loop", "forward", version, shape, t, loop_flops, "GFLOP/s");
        m = bench::compared(m, bench::blas_name(false) + " GEMMs of the same loop", blas_loop_time, loop_flops);
        m.max_rel_diff = bench::max_rel_diff(o, o_ref);
        rows.add(m);
    });

    rows.report(cat("ttt_cuda: the TTT layer's products at a Qwen3-0.6B MLP's (d, f), F32, eta = ", eta,
                      "; max rel diff against the comparator's own result (its F32 sums in another order), on ", bench::cuda_device_name()));
}

ITTT_BENCHMARK(cross_entropy_cuda, 15) {
    if (!bench::cuda_bench_runs(ctx, "cross_entropy_cuda")) return;
    // Qwen3's vocabulary; 2048 rows (a batch of 2 x 1024 tokens) is 1.2 GB of logits.
    int64_t rows_n = 2048, V = 151936;
    if (ctx.quick) rows_n = 256;
    if (ctx.tiny) rows_n = 8, V = 1000;
    const std::string shape = cat("N=", rows_n, " V=", V);
    const double budget = bench::time_budget(ctx);
    bench::Results rows(ctx);

    Tensor logits = bench::random_uniform_gpu({rows_n, V}, 41);
    Tensor targets = Tensor::empty({rows_n}, DType::I32);
    Rng rng(42);
    for (int64_t i = 0; i < rows_n; ++i) targets.data<int32_t>()[i] = static_cast<int32_t>(rng.randint(0, V));
    targets = targets.to(Device::CUDA);
    Tensor dlogits = Tensor::empty({rows_n, V}, DType::F32, Device::CUDA);
    const double logit_bytes = static_cast<double>(logits.numel()) * sizeof(float);
    const bench::Timing copy = bench::time_adaptive([&] { dlogits.copy_from(logits); }, budget);
    const double grad_scale = 1.0 / static_cast<double>(rows_n);
    bench::for_each_cuda_version("cross_entropy_cuda", "cross_entropy", shape, [&](int version) {
        const bench::Timing loss = bench::time_adaptive([&] { ops::cross_entropy(nullptr, logits, targets, grad_scale); }, budget);
        const bench::Timing grad = bench::time_adaptive([&] { ops::cross_entropy(&dlogits, logits, targets, grad_scale); }, budget);
        // the minimum traffic: read the logits (loss); read them and write the gradient (loss + grad)
        rows.add(
            bench::compared(bench::cuda_measurement("cross_entropy_cuda", "cross_entropy", "loss", version, shape, loss, logit_bytes, "GB/s"),
                            "cudaMemcpy D2D", copy, 2.0 * logit_bytes));
        rows.add(bench::compared(
            bench::cuda_measurement("cross_entropy_cuda", "cross_entropy", "loss+grad", version, shape, grad, 2.0 * logit_bytes, "GB/s"),
            "cudaMemcpy D2D", copy, 2.0 * logit_bytes));
    });
    rows.report(cat("cross_entropy_cuda: fused softmax + NLL over ", V,
                      " classes, F32, bytes = the logits read (+ the gradient written), "
                      "each call ending with the loss's copy to the host, on ",
                      bench::cuda_device_name()));
}

#endif  // ITTT_BENCH_CUDA
