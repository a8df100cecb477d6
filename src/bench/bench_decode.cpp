// bench_decode.cpp: decode against the memory-bandwidth bound, and the GEMV kernels it runs on.
//   build/ittt_bench --filter decode [--quick]
//   build/ittt_bench --filter gemv [--quick]     every gemv version (kernels/gemv) on decode's products
//
// Decoding one token reads every weight matrix once (q/k/v/o, gate/up/down of every layer and
// the LM head over the vocabulary: with tied embeddings, the whole embedding table) for one
// multiply-add per weight, so its floor is the time to stream those bytes from memory. The
// comparator is measured in the same run: a STREAM-style copy (b[i] = a[i] over arrays larger
// than the last-level cache, counted as STREAM counts it: bytes read + bytes written), at the
// same thread count. Each row gives tokens/s and the weights' bytes per token / time, as GB/s
// and as a fraction of the copy bandwidth ("% of bound"), median and min over the timed tokens.
// A read-only pass (a sum over the same arrays) is printed beside it: decode only reads, so
// that is what it could reach at most.
//
// Two models: the bench model (bench_models.h: d = 128, 4 layers, vocab 260; its 3.5 MB of
// weights stay in cache, so the DRAM bound does not bind: its row shows the fixed costs per
// token) and a random model of Qwen3-0.6B's shape (d = 1024, f = 3072, 28 layers, 16 / 8 heads
// of 128, vocab 151936, tied embeddings: 2.4 GB of F32 weights per token), which --quick skips.
// The 0.6B model is filled here in parallel with N(0, 0.02^2) (norms 1): Model::init_random
// would take a minute and 4 GB of temporaries for 596M numbers.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "bench/bench_models.h"
#include "model/model.h"
#include "model/session.h"
#include "ops/op_table.h"
#include "ops/ops.h"
#include "runtime/cpu_isa.h"
#include "runtime/rng.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace ittt;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The sum of n floats (n a multiple of 64) in 8 independent 256-bit accumulators, so that the
// adds' latency does not limit it: a read of memory and nothing else.
__attribute__((noinline, target("avx2"))) float sum_floats(const float* p, size_t n) {
    __m256 acc[8];
    for (__m256& a : acc) a = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 64)
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) acc[j] = _mm256_add_ps(acc[j], _mm256_loadu_ps(p + i + 8 * j));
    alignas(32) float lanes[8];
    float sum = 0;
    for (const __m256& a : acc) {
        _mm256_store_ps(lanes, a);
        for (float x : lanes) sum += x;
    }
    return sum;
}

struct Bandwidth {
    double copy = 0, read = 0;  // GB/s, best of the repeats
};

// STREAM's copy (2 x bytes per pass) and a read-only sum, `threads` threads, static schedule
// (each thread the same part of both arrays every pass, as STREAM does).
Bandwidth stream_bandwidth(int threads, size_t bytes_per_array, int repeats) {
    const size_t n = bytes_per_array / sizeof(float);
    std::vector<float> a(n), b(n);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; ++i) {  // first touch by the threads that use the pages
        a[i] = static_cast<float>(i % 1024);
        b[i] = 0;
    }
    Bandwidth best;
    volatile float sink = 0;
    for (int r = 0; r < repeats; ++r) {
        auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for simd schedule(static) num_threads(threads)
        for (size_t i = 0; i < n; ++i) b[i] = a[i];
        best.copy = std::max(best.copy, 2.0 * static_cast<double>(n * sizeof(float)) / seconds_since(t0) / 1e9);
        t0 = std::chrono::steady_clock::now();
        float sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
        {
#ifdef _OPENMP
            const size_t part = (n / 64 + threads - 1) / threads * 64, begin = std::min(n / 64 * 64, part * omp_get_thread_num());
#else
            const size_t part = n / 64 * 64, begin = 0;
#endif
            sum += sum_floats(b.data() + begin, std::min(part, n / 64 * 64 - begin));
        }
        best.read = std::max(best.read, static_cast<double>(n / 64 * 64 * sizeof(float)) / seconds_since(t0) / 1e9);
        sink = sink + sum;
    }
    return best;
}

// Qwen3-0.6B's shape (config.json of Qwen/Qwen3-0.6B), every layer full attention.
ModelConfig qwen3_0_6b_config() {
    ModelConfig c;
    c.vocab_size = 151936;
    c.hidden_size = 1024;
    c.intermediate_size = 3072;
    c.num_hidden_layers = 28;
    c.num_attention_heads = 16;
    c.num_key_value_heads = 8;
    c.head_dim = 128;
    c.rope_theta = 1e6;
    c.rms_norm_eps = 1e-6;
    c.tie_word_embeddings = true;
    c.validate();
    return c;
}

// Weights N(0, 0.02^2) and norms 1, filled by all threads (counter-based: the same numbers
// with any thread count).
void fill_random(Model& m, uint64_t seed) {
    for (Parameter& p : m.parameters()) {
        float* w = p.value.data<float>();
        const int64_t count = p.value.numel();
        const bool norm = p.name.find("norm.weight") != std::string::npos;
        ++seed;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < count; ++i) w[i] = norm ? 1.0f : static_cast<float>(0.02 * normal_at(seed, static_cast<uint64_t>(i)));
    }
}

// Bytes of weights one decoded token reads: every parameter, less the embedding table when
// the LM head is a matrix of its own (then one row of the table is read); with tied
// embeddings the LM head is the table.
double weight_bytes_per_token(Model& m) {
    double bytes = 0, table = 0;
    for (Parameter& p : m.parameters()) {
        bytes += static_cast<double>(p.value.bytes());
        if (p.name == "model.embed_tokens.weight") table = static_cast<double>(p.value.bytes());
    }
    return m.config().tie_word_embeddings ? bytes : bytes - table;
}

struct DecodeRun {
    bench::Stats seconds;  // per token
    double kv_bytes = 0;   // KV cache read by the last token
};

// A prompt of `prompt` tokens, two untimed decodes, then `count` decodes timed one by one.
DecodeRun time_decode(Model& m, int prompt, int count, uint64_t seed) {
    const int V = m.config().vocab_size;
    Rng rng(seed);
    std::vector<int32_t> tokens(static_cast<size_t>(prompt));
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng.randint(4, V));
    Session s(m);
    s.prefill(tokens);
    int32_t token = tokens.back();
    std::vector<double> times;
    for (int k = 0; k < count + 2; ++k) {
        auto t0 = std::chrono::steady_clock::now();
        s.decode(token);
        if (k >= 2) times.push_back(seconds_since(t0));
        token = static_cast<int32_t>(rng.randint(4, V));
    }
    const ModelConfig& c = m.config();
    DecodeRun r;
    r.seconds = bench::stats(times);
    r.kv_bytes = static_cast<double>(s.position()) * c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * sizeof(float);
    return r;
}

}  // namespace

ITTT_BENCHMARK(decode, 40) {
    const int threads_max = bench::max_threads();
    std::vector<int> thread_counts = {1};
    if (threads_max > 1) thread_counts.push_back(threads_max);
    // Arrays of 1 GiB (larger than this machine's L3 twice over), 256 MiB with --quick.
    const size_t array_bytes = ctx.quick ? (size_t(256) << 20) : (size_t(1) << 30);
    std::printf("\ndecode: load average before: %s\n", bench::load_average().c_str());
    std::vector<Bandwidth> bandwidth;
    for (int t : thread_counts) bandwidth.push_back(stream_bandwidth(t, array_bytes, ctx.quick ? 3 : 5));

    struct Subject {
        std::string name;
        std::unique_ptr<Model> model;
        int prompt, count;
    };
    std::vector<Subject> subjects;
    subjects.push_back({"bench model (d=128, 4 layers, V=260)", std::make_unique<Model>(bench::bench_config(false, 64)), 128, ctx.quick ? 32 : 128});
    bench::init_bench_weights(*subjects.back().model);
    if (!ctx.quick) {
        auto t0 = std::chrono::steady_clock::now();
        subjects.push_back({"Qwen3-0.6B shape (random, F32)", std::make_unique<Model>(qwen3_0_6b_config()), 128, 16});
        fill_random(*subjects.back().model, 600);
        std::printf("decode: built the Qwen3-0.6B-shaped model in %.1f s\n", seconds_since(t0));
    }

    bench::Table table({"model", "threads", "weights MB/token", "ms/token (median)", "(min)", "tokens/s", "GB/s", "% of copy bound",
                        "(min)", "% of read"});
    for (Subject& s : subjects) {
        const double bytes = weight_bytes_per_token(*s.model);
        for (size_t i = 0; i < thread_counts.size(); ++i) {
            bench::set_threads(thread_counts[i]);
            const DecodeRun r = time_decode(*s.model, s.prompt, s.count, 9);
            const double gbs = bytes / r.seconds.median / 1e9, gbs_min = bytes / r.seconds.min / 1e9;
            table.row({s.name, std::to_string(thread_counts[i]), bench::fmt("%.1f", bytes / 1e6), bench::fmt("%.3f", r.seconds.median * 1e3),
                       bench::fmt("%.3f", r.seconds.min * 1e3), bench::fmt("%.1f", 1 / r.seconds.median), bench::fmt("%.1f", gbs),
                       bench::fmt("%.0f%%", 100 * gbs / bandwidth[i].copy), bench::fmt("%.0f%%", 100 * gbs_min / bandwidth[i].copy),
                       bench::fmt("%.0f%%", 100 * gbs / bandwidth[i].read)});
        }
        bench::set_threads(threads_max);
    }
    std::string bw;
    for (size_t i = 0; i < thread_counts.size(); ++i)
        bw += cat(i ? "; " : "", thread_counts[i], " thread", thread_counts[i] > 1 ? "s" : "", ": copy ", bench::fmt("%.1f", bandwidth[i].copy),
                  " GB/s, read ", bench::fmt("%.1f", bandwidth[i].read), " GB/s");
    table.print(cat("decode (ISA ", describe_cpu_isa(), ", CPU ", cpu_model_name(), "): B=1 after a prompt of 128 random tokens, ",
                    "every token timed; GB/s = weight bytes per token / time (KV cache reads not counted: under 2% here); ",
                    "bound: STREAM copy over 2 x ", array_bytes >> 20, " MiB, measured in this run (", bw, ")"));
    std::printf("decode: load average after: %s\n", bench::load_average().c_str());
}

// The gemv versions on the products of one decoded token of Qwen3-0.6B (x @ W^T: q and o are
// 2048 x 1024 and 1024 x 2048, k and v 1024 x 1024, gate and up 3072 x 1024, down 1024 x 3072,
// the LM head 151936 x 1024: 622 MB, more than the last-level cache), at 1 and all threads,
// with 4 and 8 rows beside 1 (the blocked GEMM takes over above 4: gemv.h). Best of the
// repeats; GB/s = the bytes of op(B) / time (the weights, read once per pass over them).
ITTT_BENCHMARK(gemv, 15) {
    struct Product {
        const char* name;
        int64_t M, N, K;
    };
    std::vector<Product> products = {{"k, v: x Wk^T", 1, 1024, 1024}, {"gate, up: x Wg^T", 1, 3072, 1024}, {"down: z Wd^T", 1, 1024, 3072},
                                     {"4 rows of gate", 4, 3072, 1024},  {"8 rows of gate", 8, 3072, 1024}};
    if (!ctx.quick) products.push_back({"LM head: x E^T", 1, 151936, 1024});
    const int threads_max = bench::max_threads();
    std::vector<int> thread_counts = {1};
    if (threads_max > 1) thread_counts.push_back(threads_max);
    std::vector<int> versions;
    for (const ops::VersionInfo& v : ops::op_spec("gemv").cpu.versions)
        if (v.runs_here()) versions.push_back(v.number);
    bench::Table table({"product", "M x N x K", "threads", "gemv version", "ms", "GB/s", "gemm (matmul) ms"});
    for (const Product& p : products) {
        Tensor A = Tensor::empty({p.M, p.K}), B = Tensor::empty({p.N, p.K}), C = Tensor::empty({p.M, p.N});
        float* b = B.data<float>();
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < B.numel(); ++i) b[i] = static_cast<float>(0.02 * normal_at(5, static_cast<uint64_t>(i)));
        float* a = A.data<float>();
        for (int64_t i = 0; i < A.numel(); ++i) a[i] = static_cast<float>(normal_at(6, static_cast<uint64_t>(i)));
        const double bytes = static_cast<double>(B.bytes());
        const int repeats = bytes > 1e8 ? 5 : ctx.quick ? 10 : 50;
        for (int t : thread_counts) {
            bench::set_threads(t);
            const double gemm_s = bench::time_best([&] { ops::matmul(C, A, false, B, true); }, 1, repeats);
            for (int v : versions) {
                if (v == 1 && bytes > 1e8) continue;  // the scalar reference needs seconds here
                ops::set_version("gemv", v);
                const double sec = bench::time_best([&] { ops::gemv(C, A, false, B, true); }, 1, repeats);
                table.row({p.name, cat(p.M, " x ", p.N, " x ", p.K), std::to_string(t), cat(v, " ", ops::op_spec("gemv").cpu.find(v)->name),
                           bench::fmt("%.3f", sec * 1e3), bench::fmt("%.1f", bytes / sec / 1e9), bench::fmt("%.3f", gemm_s * 1e3)});
            }
            ops::set_version("gemv", 0);
        }
    }
    bench::set_threads(threads_max);
    table.print(cat("gemv (ISA ", describe_cpu_isa(), "): C (M, N) = A (M, K) @ B (N, K)^T, B ~ N(0, 0.02^2); best of the repeats; ",
                    "gemm (matmul) = ops::matmul at gemm version 0, which hands M <= 4 to its gemv (so the 8-row row is the packed GEMM)"));
}
