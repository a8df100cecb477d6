// bench_model.cpp: what In-Place TTT costs a whole model, against the same model without it.
//
// One config (d=128, f=384, 4 sliding-window layers, w=64, vocab 260), built twice
// from the same seed: with TTT MLPs on layers 1 and 3, and without (the comparator).
//   1. training step (forward + backward + AdamW, via Trainer::step), at 1 thread and at all,
//      with its model FLOP utilisation (multiply-adds x 2 / time / the in-run FMA peak)
//   2. prefill (inference forward), the same
//   3. the TTT ops of one layer timed alone at the same shapes, in the form the model
//      runs (kernels/ttt_loop), to say where the overhead goes
//   4. training memory of a step against n for the parallel, loop and flat TTT forms
//   5. decode: ms per token and state bytes at positions 256, 1024, 4096: the TTT
//      state stays constant while the KV cache grows
// and ends with a summary of the goals (TTT overhead <= 5% of a step and of a prefill for
// C >= 64 and <= 2% for C >= 256; a form whose training memory does not grow with n; the
// PyTorch comparator's ratios when src/bench/torch_compare.py has recorded them).
//   build/ittt_bench --filter model [--quick]
#include <time.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "bench/bench_models.h"
#include "model/model.h"
#include "model/session.h"
#include "ops/ops.h"
#include "runtime/cpu_isa.h"
#include "runtime/rng.h"
#include "train/trainer.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

using namespace ittt;
using ittt::bench::bench_config;
using ittt::bench::bench_model;

namespace {

constexpr int kVocab = bench::kBenchVocab;

Tensor random_normal(const Shape& shape, uint64_t seed, double scale = 1.0) {
    Tensor t = Tensor::empty(shape);
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(scale * normal_at(seed, static_cast<uint64_t>(i)));
    return t;
}

// Random ordinary tokens; every position scored with the next token of the stream.
Tensor random_tokens(int B, int n, uint64_t seed) {
    Tensor t = Tensor::empty({B, n}, DType::I32);
    Rng rng(seed);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = static_cast<int32_t>(rng.randint(4, kVocab));
    return t;
}

BatchFn random_batches(int B, int n) {
    return [B, n](int64_t step, int micro, Tensor& tokens, Tensor& targets) {
        Tensor stream = random_tokens(B, n + 1, static_cast<uint64_t>(step) * 16 + static_cast<uint64_t>(micro));
        tokens = Tensor::empty({B, n}, DType::I32);
        targets = Tensor::empty({static_cast<int64_t>(B) * n}, DType::I32);
        for (int b = 0; b < B; ++b)
            for (int i = 0; i < n; ++i) {
                tokens.data<int32_t>()[b * n + i] = stream.data<int32_t>()[b * (n + 1) + i];
                targets.data<int32_t>()[b * n + i] = stream.data<int32_t>()[b * (n + 1) + i + 1];
            }
    };
}

struct Variant {
    std::string name;
    bool ttt;
    int chunk;
};

double median(std::vector<double> x) {
    std::nth_element(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(x.size() / 2), x.end());
    return x[x.size() / 2];
}

std::string overhead(double t, double base) { return bench::fmt("%+.1f%%", 100.0 * (t - base) / base); }

// One TTT layer's ops at (B, n, d, f, C), timed alone, in the form the model runs on the
// CPU (`form`: Loop or Flat, kernels/ttt_loop). `ttt` is what the TTT layer runs, `plain`
// what a plain MLP runs instead (the down projection and its gradients), so that
// extra = ttt - plain summed over the rows is the layer's overhead.
struct Phase {
    std::string name;
    double ttt = 0, plain = 0;
};

std::vector<Phase> ttt_layer_phases(const ModelConfig& c, int B, int n, TttForm form, int repeats) {
    const int64_t d = c.hidden_size, f = c.intermediate_size, N = static_cast<int64_t>(B) * n, K = c.conv_taps();
    const int C = c.ttt_chunk;
    const double eta = c.ttt_lr;
    Tensor src = random_normal({B, n, d}, 1, 0.02), conv = random_normal({d, K}, 2, 0.02), proj = random_normal({d, d}, 3, 0.02);
    Tensor z = random_normal({B, n, f}, 4), wd = random_normal({d, f}, 5, 0.02), dout = random_normal({B, n, d}, 6, 1e-3);
    Tensor u = Tensor::empty({B, n, d}), v = Tensor::empty({N, d}), o = Tensor::empty({B, n, d}), dwd = Tensor::zeros({d, f});
    Tensor dz = Tensor::empty({B, n, f}), dv = Tensor::empty({B, n, d}), du = Tensor::empty({N, d});
    Tensor dproj = Tensor::zeros({d, d}), dconv = Tensor::zeros({d, K}), dsrc = Tensor::empty({B, n, d}), dsrc_total = Tensor::zeros({N, d});
    Tensor z2 = z.view({N, f}), o2 = o.view({N, d}), dout2 = dout.view({N, d}), dz2 = dz.view({N, f}), u2 = u.view({N, d});
    Tensor v3 = v.view({B, n, d}), dv2 = dv.view({N, d});
    auto t = [&](const std::function<void()>& fn) { return bench::time_best(fn, 1, repeats); };
    ops::conv1d_chunked_forward(u, src, conv, c.ttt_conv_offsets, C);
    ops::matmul(v, u2, false, proj, false);
    ops::TttLoopOptions train, prefill;
    train.keep_all = form == TttForm::Loop;
    train.keep_last = form == TttForm::Flat;
    prefill.norms = true;  // what an inference forward asks for (the clipping reports)
    ops::TttLoopResult kept = ops::ttt_loop_forward(o, z, v3, wd, eta, C, train);
    const Tensor& w = form == TttForm::Loop ? kept.w_all : kept.w_last;
    const std::string fw = ttt_form_name(form);

    std::vector<Phase> out;
    out.push_back({"fwd: conv1d U = conv(S_src)", t([&] { ops::conv1d_chunked_forward(u, src, conv, c.ttt_conv_offsets, C); })});
    out.push_back({"fwd: V = U P (gemm N x d x d)", t([&] { ops::matmul(v, u2, false, proj, false); })});
    out.push_back({"fwd: chunk loop, training (" + fw + "): O_i = Z_i W_i^T, W_i += eta V_i^T Z_i",
                   t([&] { ops::ttt_loop_forward(o, z, v3, wd, eta, C, train); }), t([&] { ops::linear(o2, z2, wd); })});
    out.push_back({"prefill: chunk loop, inference (+ update norms)", t([&] { ops::ttt_loop_forward(o, z, v3, wd, eta, C, prefill); }),
                   t([&] { ops::linear(o2, z2, wd); })});
    out.push_back({"bwd: chunk loop (" + fw + "): dZ, dV, dWd", t([&] { ops::ttt_loop_backward(dz, dv, dwd, dout, z, v3, eta, C, w); }),
                   t([&] {
                       ops::matmul(dz2, dout2, false, wd, false);
                       ops::matmul(dwd, dout2, true, z2, false, 1.0, 1.0);
                   })});
    out.push_back({"bwd: dP = U^T dV, dU = dV P^T", t([&] {
                       ops::matmul(dproj, u2, true, dv2, false, 1.0, 1.0);
                       ops::matmul(du, dv2, false, proj, true);
                   })});
    out.push_back({"bwd: conv1d backward + add dS_src", t([&] {
                       ops::conv1d_chunked_backward(dsrc, dconv, du.view({B, n, d}), src, conv, c.ttt_conv_offsets, C);
                       ops::add_inplace(dsrc_total, dsrc.view({N, d}));
                   })});
    return out;
}

// Multiply-adds per token of the bench model, counted from its shapes: what the GEMMs and
// the attention must do whatever the code. extra / base is the overhead a TTT layer costs
// if every multiply-add ran at the same speed: the floor under the measured overhead.
struct MacCount {
    double base_forward = 0, ttt_extra_forward = 0, ttt_extra_backward = 0;
};

MacCount mac_count(const ModelConfig& c, int n, TttForm form) {
    const double d = c.hidden_size, f = c.intermediate_size, V = c.vocab_size, hd = c.head_dim;
    const double q = c.num_attention_heads * hd, kv = c.num_key_value_heads * hd;
    MacCount m;
    for (int l = 0; l < c.num_hidden_layers; ++l) {
        const int w = c.window_for_layer(l);
        double keys = 0;  // mean visible keys per query
        for (int i = 0; i < n; ++i) keys += w > 0 ? std::min(i + 1, w) : i + 1;
        keys /= n;
        m.base_forward += d * (q + 2 * kv) + q * d + 3 * d * f + 2 * keys * q;
    }
    m.base_forward += d * V;  // LM head
    if (!c.ttt_mode) return m;
    const double T = (n + c.ttt_chunk - 1) / c.ttt_chunk, used = (T - 1) / T;  // the last chunk's update reaches no output
    const double layers = static_cast<double>(c.ttt_layers.size());
    const double P = c.ttt_proj ? d * d : 0;
    // forward: the update V_i^T Z_i (the apply Z_i W_i^T replaces the plain down projection), V = U P.
    m.ttt_extra_forward = layers * (d * f * used + P);
    // backward: dZ_i += eta V_i G, dV_i = eta Z_i G^T (G += Wbar_i replaces the plain dWd), dP, dU;
    // the flat form also recomputes every update to rebuild W_i, and V = U P.
    m.ttt_extra_backward = layers * (2 * d * f * used + 2 * P + (form == TttForm::Flat ? d * f * used + P : 0));
    return m;
}

// Heap of one training step (forward + backward) of a fresh model at B = 1, n tokens:
// `kept` is what the forward leaves for the backward, `peak` the most held at once; both
// above what was live before (weights, gradients, inputs). RSS: the process's high-water
// mark over the step above its resident size before (Linux; -1 where it cannot be reset).
struct StepMemory {
    double kept = 0, peak = 0, rss = -1;
};

long rss_kib(const char* field) {
    std::ifstream in("/proc/self/status");
    std::string key;
    while (in >> key) {
        long v = 0;
        if (key == field && in >> v) return v;
        in.ignore(1 << 12, '\n');
    }
    return -1;
}

StepMemory step_memory(bool ttt, TttForm form, int chunk, int n) {
    Model m = bench_model(ttt, chunk);
    m.set_ttt_form(form);
    Tensor tok = random_tokens(1, n, 5);
    Tensor dlogits = random_normal({n, kVocab}, 6, 1e-4);
#if defined(__GLIBC__)
    malloc_trim(0);  // hand back what earlier steps freed, so the RSS counts this step only
#endif
    bool rss_ok = false;
    {
        std::ofstream clear("/proc/self/clear_refs");
        clear << "5";  // resets VmHWM to the current RSS (Linux >= 4.0)
        rss_ok = clear.good();
    }
    const long rss0 = rss_kib("VmRSS:");
    const double before = static_cast<double>(Tensor::host_bytes_in_use());
    Tensor::reset_host_peak();
    m.forward(tok);
    StepMemory r;
    r.kept = static_cast<double>(Tensor::host_bytes_in_use()) - before;
    m.backward(dlogits);
    r.peak = static_cast<double>(Tensor::host_bytes_peak()) - before;
    const long hwm = rss_kib("VmHWM:");
    if (rss_ok && rss0 >= 0 && hwm >= 0) r.rss = 1024.0 * static_cast<double>(hwm - rss0);
    return r;
}

// How much of the machine this process had: its CPU time over wall time x threads between
// two points. Close to 1 on a quiet machine (OpenMP's idle threads spin, and count); well
// below when another process took cores, which makes timings and their ratios unreliable.
constexpr double kQuietShare = 0.9;
struct CpuShare {
    double cpu = 0, wall = 0;
    static CpuShare now() {
        timespec c{}, w{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
        clock_gettime(CLOCK_MONOTONIC, &w);
        return {c.tv_sec + 1e-9 * c.tv_nsec, w.tv_sec + 1e-9 * w.tv_nsec};
    }
    double since() const {
        CpuShare t = now();
        return (t.cpu - cpu) / std::max(1e-9, (t.wall - wall) * bench::max_threads());
    }
};

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

// The PyTorch comparator's last results (src/bench/torch_compare.py --record FILE): lines of
// "threads what variant ratio" after a header line; empty when it has not been run.
std::vector<std::string> read_torch_record(const std::string& path) {
    std::vector<std::string> lines;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
        if (!line.empty()) lines.push_back(line);
    return lines;
}

}  // namespace

ITTT_BENCHMARK(model, 30) {
    const int B = ctx.quick ? 2 : 4, n = ctx.quick ? 256 : 512;
    const int rounds = ctx.quick ? 2 : 21;  // timed rounds, after one warm-up round
    const std::vector<int> chunks = ctx.quick ? std::vector<int>{64, 128} : std::vector<int>{64, 256};
    std::vector<Variant> variants = {{"no TTT (comparator)", false, chunks[0]}};
    for (int C : chunks) variants.push_back({"TTT on layers 1, 3", true, C});
    const double tokens = static_cast<double>(B) * n;
    std::printf("\nmodel: load average before: %s\n", bench::load_average().c_str());

    // ---- 1 + 2: training step and prefill, at 1 thread and at every thread ----
    // Rounds that visit every variant in turn (A B C A B C ...), one call each: a burst of
    // load from elsewhere then hits every variant alike instead of one. Median and min per variant.
    // On a CPU with AVX-512 each variant runs twice in every round, once with the kernels
    // version 0 picks for AVX2 (set_cpu_isa("avx2")) and once with those for AVX-512, each
    // on its own copy of the model: the AVX-512 speed-up of the whole model, interleaved too.
    // The whole set runs once per thread count (1, then OpenMP's default); the sections after
    // this one compare with the last (the default thread count, the ISA in use).
    // Model FLOP utilisation: the step's (prefill's) multiply-adds x 2 / time / the FMA peak of
    // the row's ISA at the row's thread count, measured in this run (bench_peak.cpp).
    std::vector<CpuIsa> isas = {cpu_isa()};
    if (cpu_isa() == CpuIsa::AVX512) isas.insert(isas.begin(), CpuIsa::AVX2);
    auto use_isa = [](CpuIsa isa) { set_cpu_isa(isa == CpuIsa::AVX512 ? "avx512" : "avx2"); };
    const size_t V = variants.size(), I = isas.size();
    std::vector<Model> models;  // [isa * V + variant]
    std::vector<std::unique_ptr<Trainer>> trainers;
    TrainConfig tc;
    tc.steps = 1 << 30;  // the schedule is irrelevant here; only the step's cost is timed
    tc.warmup = 0;
    tc.log = nullptr;
    for (size_t k = 0; k < I; ++k)
        for (const Variant& v : variants) models.push_back(bench_model(v.ttt, v.chunk));
    for (Model& m : models) trainers.push_back(std::make_unique<Trainer>(m, tc, random_batches(B, n)));
    Tensor tok = random_tokens(B, n, 99);
    ForwardOptions inference;
    inference.inference = true;
    std::vector<std::string> forms;
    for (size_t i = 0; i < V; ++i)
        forms.push_back(variants[i].ttt ? ttt_form_name(models[i].resolve_ttt_form(ForwardOptions{}, n)) : "-");
    const MacCount base_macs = mac_count(bench_config(false, chunks[0]), n, TttForm::Loop);
    // Multiply-adds of one call of variant i: a training step (forward + backward, the backward
    // counted as two forwards) or a prefill.
    auto call_macs = [&](size_t i, bool train_step) {
        const MacCount mc = variants[i].ttt ? mac_count(bench_config(true, variants[i].chunk), n, parse_ttt_form(forms[i])) : base_macs;
        return tokens * (train_step ? 3 * mc.base_forward + mc.ttt_extra_forward + mc.ttt_extra_backward : mc.base_forward + mc.ttt_extra_forward);
    };
    auto ratio = [](double t, double base) { return t / base - 1.0; };
    auto pct = [](double r) { return bench::fmt("%+.1f%%", 100.0 * r); };
    auto speedup = [](const bench::Stats& slow, const bench::Stats& fast) {
        return bench::fmt("%.2f", slow.median / fast.median) + " (" + bench::fmt("%.2f", slow.min / fast.min) + ")";
    };
    const int saved_threads = bench::max_threads();
    std::vector<int> thread_counts = {1};
    if (saved_threads > 1) thread_counts.push_back(saved_threads);
    std::vector<bench::Stats> step_s, prefill_s;  // the last thread count, the ISA in use: [variant]
    double share = 1;                              // CPU share over the last thread count's rounds
    std::vector<std::string> mfu_lines, floor_lines;  // for the summary
    for (int nt : thread_counts) {
        bench::set_threads(nt);
        // The FMA peaks of each ISA at this thread count, before and after the rounds (the larger).
        std::vector<double> peak(I, 0.0);
        auto measure_peaks = [&] {
            for (size_t k = 0; k < I; ++k) peak[k] = std::max(peak[k], bench::fma_peak_gflops(isas[k], nt, 300'000, ctx.quick ? 5 : 50));
        };
        measure_peaks();
        std::vector<std::vector<double>> step_t(I * V), prefill_t(I * V);
        const CpuShare share_start = CpuShare::now();
        for (int round = 0; round <= rounds; ++round) {  // round 0 is the warm-up
            for (size_t i = 0; i < V; ++i)
                for (size_t k = 0; k < I; ++k) {
                    use_isa(isas[k]);
                    double st = bench::time_best([&] { trainers[k * V + i]->step(); }, 0, 1);
                    if (round > 0) step_t[k * V + i].push_back(st);
                }
            for (size_t i = 0; i < V; ++i)
                for (size_t k = 0; k < I; ++k) {
                    use_isa(isas[k]);
                    double pf = bench::time_best([&] { models[k * V + i].forward(tok, inference); }, 0, 1);
                    if (round > 0) prefill_t[k * V + i].push_back(pf);
                }
        }
        set_cpu_isa("");  // back to ITTT_CPU / cpuid
        share = share_start.since();
        measure_peaks();
        std::vector<bench::Stats> all_step_s, all_prefill_s;  // [isa * V + variant]
        for (size_t j = 0; j < I * V; ++j) all_step_s.push_back(bench::stats(step_t[j])), all_prefill_s.push_back(bench::stats(prefill_t[j]));
        // The ISA in use: what the sections below compare with.
        step_s.assign(all_step_s.end() - static_cast<std::ptrdiff_t>(V), all_step_s.end());
        prefill_s.assign(all_prefill_s.end() - static_cast<std::ptrdiff_t>(V), all_prefill_s.end());
        // utilisation from the median (and from the min)
        auto mfu = [&](size_t i, size_t k, const bench::Stats& t, bool train_step) {
            const double flops = 2 * call_macs(i, train_step);
            return bench::fmt("%.0f%%", 100 * flops / t.median / (peak[k] * 1e9)) + " (" + bench::fmt("%.0f%%", 100 * flops / t.min / (peak[k] * 1e9)) + ")";
        };
        bench::Table train({"model", "chunk C", "form", "ISA", "step ms median", "min", "MFU step", "TTT overhead median", "(min)",
                            "prefill ms median", "min", "MFU prefill", "TTT overhead median", "(min)", "x AVX2 step (min)",
                            "x AVX2 prefill (min)", "multiply-add floor train / prefill", "overhead - floor, points: train / prefill"});
        for (size_t i = 0; i < V; ++i)
            for (size_t k = 0; k < I; ++k) {
                const Variant& v = variants[i];
                const bench::Stats& st = all_step_s[k * V + i];
                const bench::Stats& pf = all_prefill_s[k * V + i];
                const bench::Stats& st0 = all_step_s[k * V];  // the comparator with the same ISA
                const bench::Stats& pf0 = all_prefill_s[k * V];
                std::string floor_cell = "(comparator)", above_floor = "";
                if (v.ttt) {
                    const MacCount mc = mac_count(bench_config(true, v.chunk), n, parse_ttt_form(forms[i]));
                    const double floor_train = (mc.ttt_extra_forward + mc.ttt_extra_backward) / (3 * base_macs.base_forward);
                    const double floor_prefill = mc.ttt_extra_forward / base_macs.base_forward;
                    floor_cell = pct(floor_train) + " / " + pct(floor_prefill);
                    above_floor = bench::fmt("%+.1f", 100 * (ratio(st.median, st0.median) - floor_train)) + " / " +
                                  bench::fmt("%+.1f", 100 * (ratio(pf.median, pf0.median) - floor_prefill));
                }
                const bool vs_avx2 = isas[k] != CpuIsa::AVX2;
                train.row({v.name, v.ttt ? std::to_string(v.chunk) : "-", forms[i], cpu_isa_name(isas[k]), bench::fmt("%.1f", st.median * 1e3),
                           bench::fmt("%.1f", st.min * 1e3), mfu(i, k, st, true), i == 0 ? "(comparator)" : pct(ratio(st.median, st0.median)),
                           i == 0 ? "" : pct(ratio(st.min, st0.min)), bench::fmt("%.1f", pf.median * 1e3), bench::fmt("%.1f", pf.min * 1e3),
                           mfu(i, k, pf, false), i == 0 ? "(comparator)" : pct(ratio(pf.median, pf0.median)),
                           i == 0 ? "" : pct(ratio(pf.min, pf0.min)), vs_avx2 ? speedup(all_step_s[i], st) : "-",
                           vs_avx2 ? speedup(all_prefill_s[i], pf) : "-", floor_cell, above_floor});
                if (k + 1 == I) {
                    mfu_lines.push_back(cat(nt, " thread(s), ", v.name, v.ttt ? cat(" C=", v.chunk) : std::string(), ", ", cpu_isa_name(isas[k]),
                                            ": step ", mfu(i, k, st, true), " (goal >= 50%), prefill ", mfu(i, k, pf, false), " (goal >= 60%)"));
                    if (v.ttt) {  // the goal: the TTT layers cost at most their multiply-add floor + 2 points
                        const MacCount mc = mac_count(bench_config(true, v.chunk), n, parse_ttt_form(forms[i]));
                        const double floors[2] = {(mc.ttt_extra_forward + mc.ttt_extra_backward) / (3 * base_macs.base_forward),
                                                  mc.ttt_extra_forward / base_macs.base_forward};
                        for (int what = 0; what < 2; ++what) {
                            const bench::Stats& t = what == 0 ? st : pf;
                            const bench::Stats& t0 = what == 0 ? st0 : pf0;
                            const double above = ratio(t.median, t0.median) - floors[what], above_min = ratio(t.min, t0.min) - floors[what];
                            floor_lines.push_back(cat(nt, " thread(s), ", what == 0 ? "train  " : "prefill", " C=", v.chunk, ": ",
                                                      bench::fmt("%+.1f", 100 * above), " points (min ", bench::fmt("%+.1f", 100 * above_min),
                                                      "), goal <= +2: ",
                                                      share < kQuietShare ? "unreliable (busy machine)"
                                                      : above <= 0.02 && above_min <= 0.02 ? "met" : "NOT met"));
                        }
                    }
                }
            }
        std::printf("\nCPU share of this process over the timed rounds: %.0f%% of %d thread(s) x wall time%s\n", 100 * share, nt,
                    share < kQuietShare ? " (another process took CPU time: the ratios below are unreliable)" : "");
        std::string peaks;
        for (size_t k = 0; k < I; ++k) peaks += cat(k ? ", " : "", cpu_isa_name(isas[k]), " ", bench::fmt("%.1f", peak[k]));
        train.print(cat("training step (forward + backward + AdamW) and prefill (inference forward), CPU F32 on ", cpu_model_name(), ", ", nt,
                        " thread(s), B=", B, " n=", n, ", d=128 f=384, 4 SWA layers (w=64), vocab 260, ", rounds, " interleaved rounds (", tokens,
                        " tokens per call); ISA: what version 0 picks for it (AVX2: set_cpu_isa(\"avx2\")), x AVX2: the AVX2 row's time ",
                        "over this row's, median (min); MFU: the call's multiply-adds x 2 / time / the ISA's FMA peak at ", nt,
                        " thread(s) measured in this run (GFLOP/s: ", peaks, "), from the median (from the min); goal: TTT overhead <= 5% for ",
                        "C >= 64, <= 2% for C >= 256. The floor: the TTT layers' extra multiply-adds over the comparator's (a backward counted ",
                        "as two forwards), the overhead if every one ran at the same speed"));
    }
    bench::set_threads(saved_threads);
    trainers.clear();
    models.clear();

    // ---- 3: where the TTT overhead goes ----
    for (size_t i = 1; i < variants.size(); ++i) {
        ModelConfig c = bench_config(true, variants[i].chunk);
        const TttForm form = parse_ttt_form(forms[i]);
        std::vector<Phase> phases = ttt_layer_phases(c, B, n, form, ctx.quick ? 2 : 7);
        const double layers = static_cast<double>(c.ttt_layers.size());
        bench::Table t({"op (one TTT layer)", "TTT ms", "plain MLP ms", "extra ms x " + std::to_string(c.ttt_layers.size()) + " layers",
                        "% of comparator step", "% of comparator prefill"});
        double extra_train = 0, extra_prefill = 0;
        for (const Phase& p : phases) {
            const double e = (p.ttt - p.plain) * layers;
            const bool prefill_op = p.name.rfind("fwd: conv", 0) == 0 || p.name.rfind("fwd: V", 0) == 0 || p.name.rfind("prefill", 0) == 0;
            const bool train_op = p.name.rfind("prefill", 0) != 0;
            if (train_op) extra_train += e;
            if (prefill_op) extra_prefill += e;
            t.row({p.name, bench::fmt("%.3f", p.ttt * 1e3), p.plain > 0 ? bench::fmt("%.3f", p.plain * 1e3) : "-", bench::fmt("%+.2f", e * 1e3),
                   train_op ? pct(e / step_s[0].min) : "", prefill_op ? pct(e / prefill_s[0].min) : ""});
        }
        t.row({"sum: TTT extra predicted from the ops", "", "", "", pct(extra_train / step_s[0].min), pct(extra_prefill / prefill_s[0].min)});
        t.row({"measured: TTT - comparator (min over rounds)", "", "", "", pct(ratio(step_s[i].min, step_s[0].min)),
               pct(ratio(prefill_s[i].min, prefill_s[0].min))});
        t.print(cat("where the TTT overhead goes (ISA ", describe_cpu_isa(), "): the ops of one TTT layer timed alone (best of repeats) at the model's shapes (B=", B, " n=", n,
                    " d=128 f=384 C=", c.ttt_chunk, ", T=", (n + c.ttt_chunk - 1) / c.ttt_chunk, " chunks, ", forms[i],
                    " form); plain MLP: what a layer without TTT runs instead; % of the comparator's min"));
    }

    // ---- 4: training memory against n ----
    // B = 1 sequence, C = 64, n up to 4096 (T = 64 chunks): the parallel form keeps S and the
    // deltas (2 T d f per layer), the loop form every W_i (T d f), the flat form one W (d f).
    const std::vector<int> lengths = ctx.quick ? std::vector<int>{256, 512} : std::vector<int>{512, 1024, 2048, 4096};
    const std::vector<TttForm> mem_forms = {TttForm::Parallel, TttForm::Loop, TttForm::Flat};
    const int mem_chunk = 64;
    bench::Table mem({"n", "T", "form", "kept by the forward MiB", "TTT extra kept / layer MiB", "step peak MiB",
                      "TTT extra peak / layer MiB", "RSS high-water rise MiB"});
    std::vector<std::vector<StepMemory>> memory(mem_forms.size() + 1);
    for (int len : lengths) {
        StepMemory plain = step_memory(false, TttForm::Auto, mem_chunk, len);
        memory[0].push_back(plain);
        const std::string T = std::to_string((len + mem_chunk - 1) / mem_chunk);
        mem.row({std::to_string(len), T, "no TTT", bench::fmt("%.2f", mib(plain.kept)), "-", bench::fmt("%.2f", mib(plain.peak)), "-",
                 plain.rss >= 0 ? bench::fmt("%.1f", mib(plain.rss)) : "n/a"});
        for (size_t k = 0; k < mem_forms.size(); ++k) {
            StepMemory r = step_memory(true, mem_forms[k], mem_chunk, len);
            memory[k + 1].push_back(r);
            mem.row({std::to_string(len), T, ttt_form_name(mem_forms[k]), bench::fmt("%.2f", mib(r.kept)), bench::fmt("%.3f", mib(r.kept - plain.kept) / 2),
                     bench::fmt("%.2f", mib(r.peak)), bench::fmt("%.3f", mib(r.peak - plain.peak) / 2),
                     r.rss >= 0 ? bench::fmt("%.1f", mib(r.rss)) : "n/a"});
        }
    }
    const double wbytes = 4.0 * 128 * 384;
    mem.print(cat("training memory of one step (tensor heap, B=1, C=", mem_chunk, ", d=128 f=384, 2 TTT layers; one fast weight d x f = ",
                  bench::fmt("%.3f", mib(wbytes)), " MiB): kept = held after the forward for the backward, peak = the most held during ",
                  "forward + backward, both above the weights and gradients; goal: the TTT extra independent of n"));
    // ---- 5: decode ----
    const std::vector<int> positions = ctx.quick ? std::vector<int>{256, 1024} : std::vector<int>{256, 1024, 4096};
    bench::Table dec({"model", "chunk C", "position", "ms/token", "chunk-update token ms", "amortised ms/token", "TTT overhead",
                      "TTT state bytes", "KV cache bytes (filled)"});
    const int count = std::max(64, chunks.back());  // one whole chunk: the mean includes one update per TTT layer
    for (int pos : positions) {
        std::vector<Model> dm;
        std::vector<std::unique_ptr<Session>> sessions;
        for (const Variant& v : variants) dm.push_back(bench_model(v.ttt, v.chunk));
        std::vector<int32_t> prompt = random_tokens(1, pos, 7).to_i32_vector();
        for (Model& m : dm) {
            sessions.push_back(std::make_unique<Session>(m));
            sessions.back()->prefill(prompt);
        }
        // Interleaved token by token, for the same reason as the rounds above.
        std::vector<std::vector<double>> times(variants.size());
        int32_t token = prompt.back();
        for (int k = 0; k < count; ++k) {
            for (size_t i = 0; i < variants.size(); ++i) {
                auto t0 = std::chrono::steady_clock::now();
                sessions[i]->decode(token);
                times[i].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            token = static_cast<int32_t>(4 + (token + 7) % (kVocab - 4));
        }
        // Medians, robust to the scheduler's spikes: a token without a chunk update, and
        // the tokens that complete a chunk (every TTT layer folds its delta into W);
        // amortised = plain + (update - plain) / C.
        double base = 0;
        for (size_t i = 0; i < variants.size(); ++i) {
            const Variant& v = variants[i];
            std::vector<double> plain, update;
            for (int k = 0; k < count; ++k) {
                bool completes_chunk = v.ttt && (pos + k + 1) % v.chunk == 0;
                (completes_chunk ? update : plain).push_back(times[i][static_cast<size_t>(k)]);
            }
            double per_token = median(plain);
            double amortised = update.empty() ? per_token : per_token + (median(update) - per_token) / v.chunk;
            if (i == 0) base = amortised;
            const Session& s = *sessions[i];
            const ModelConfig& c = dm[i].config();
            size_t kv = static_cast<size_t>(s.position()) * c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * sizeof(float);
            dec.row({v.name, v.ttt ? std::to_string(v.chunk) : "-", std::to_string(pos), bench::fmt("%.3f", per_token * 1e3),
                     update.empty() ? "-" : bench::fmt("%.3f", median(update) * 1e3), bench::fmt("%.3f", amortised * 1e3),
                     i == 0 ? "(comparator)" : overhead(amortised, base), std::to_string(s.ttt_state_bytes()), std::to_string(kv)});
        }
    }
    dec.print(cat("decode (ISA ", describe_cpu_isa(), ") after a prefill of `position` tokens, B=1, ", count,
                  " tokens timed each (medians); TTT state = fast weights + chunk buffers (constant), KV cache = every position kept"));
    std::printf("\nmodel: load average after: %s\n", bench::load_average().c_str());

    // ---- 6: the goals, met or not, from the numbers above ----
    std::printf("\nsummary of the goals (ratios of this run; overhead from medians, (min) from minima; met: both within the goal):\n");
    if (share < kQuietShare)
        std::printf("  WARNING: the machine was busy (CPU share %.0f%%): the overhead verdicts below are unreliable; rerun on a quiet machine\n",
                    100 * share);
    for (const std::string& line : mfu_lines) std::printf("  model FLOP utilisation, %s\n", line.c_str());
    for (const std::string& line : floor_lines) std::printf("  TTT overhead above its multiply-add floor, %s\n", line.c_str());
    for (size_t i = 1; i < variants.size(); ++i) {
        const int C = variants[i].chunk;
        const double goal = C >= 256 ? 0.02 : 0.05;
        const MacCount mc = mac_count(bench_config(true, C), n, parse_ttt_form(forms[i]));
        const double floor_train = (mc.ttt_extra_forward + mc.ttt_extra_backward) / (3 * base_macs.base_forward);
        const double floor_prefill = mc.ttt_extra_forward / base_macs.base_forward;
        for (int what = 0; what < 2; ++what) {
            const std::vector<bench::Stats>& st = what == 0 ? step_s : prefill_s;
            const double r = ratio(st[i].median, st[0].median), rmin = ratio(st[i].min, st[0].min);
            std::printf("  TTT overhead, %-8s C=%-3d: %s (min %s), goal <= %.0f%%: %s  (multiply-add floor %s)\n", what == 0 ? "train" : "prefill", C,
                        pct(r).c_str(), pct(rmin).c_str(), 100 * goal,
                        share < kQuietShare ? "unreliable (busy machine)" : r <= goal && rmin <= goal ? "met" : "NOT met",
                        pct(what == 0 ? floor_train : floor_prefill).c_str());
        }
    }
    auto extra_kept = [&](size_t form_row, size_t k) { return (memory[form_row][k].kept - memory[0][k].kept) / 2; };
    auto extra_peak = [&](size_t form_row, size_t k) { return (memory[form_row][k].peak - memory[0][k].peak) / 2; };
    const size_t last = lengths.size() - 1;
    for (size_t k = 0; k < mem_forms.size(); ++k) {
        const double a = extra_kept(k + 1, 0), b = extra_kept(k + 1, last);
        const bool flat = b <= 1.1 * a + 0.01 * wbytes;
        std::printf("  training memory kept per TTT layer, %-8s: %.3f MiB at n=%d, %.3f MiB at n=%d (x%.2f; step peak %.3f -> %.3f MiB): %s\n",
                    ttt_form_name(mem_forms[k]), mib(a), lengths[0], mib(b), lengths[last], b / a, mib(extra_peak(k + 1, 0)),
                    mib(extra_peak(k + 1, last)), flat ? "flat in n" : "grows with n");
    }
    {
        const double a = extra_kept(3, 0), b = extra_kept(3, last);
        std::printf("  goal: a form whose TTT memory does not grow with n: %s (flat form x%.2f from n=%d to n=%d)\n",
                    b <= 1.1 * a + 0.01 * wbytes ? "met" : "NOT met", b / a, lengths[0], lengths[last]);
    }
    std::vector<std::string> torch = read_torch_record(ctx.torch_record);
    if (torch.empty()) {
        std::printf("  ittt vs PyTorch (>= 1.5x sdpa and torch.compile): not measured by make bench; run "
                    "/tmp/venv/bin/python src/bench/torch_compare.py --record %s (needs torch)\n", ctx.torch_record.c_str());
    } else {
        std::printf("  ittt vs PyTorch (>= 1.5x sdpa and torch.compile), from %s (an earlier run, not this one):\n", ctx.torch_record.c_str());
        for (const std::string& line : torch) std::printf("    %s\n", line.c_str());
    }
}
