// bench_context_parallel.cpp: build/ittt_cp_bench, run by `make bench` in an MPI build as
//   mpirun --oversubscribe -np 2 build/ittt_cp_bench [--quick]     (OMP_NUM_THREADS=1)
//
// What context parallelism costs and sends, on one model (d 128, f 384, 4 layers: sliding
// window 64 on layers 0, 1, 3 with TTT on 1 and 3, full attention on layer 2; n = 2048).
// Timed, interleaved round by round, median and min of the rounds:
//   1 process, 1 thread    the single-process path: the comparator
//   1 process, 2 threads   the same with both cores (the fair comparison on 2 cores)
//   R = 1                  the context-parallel code on one rank (its own overhead)
//   R = 2                  two ranks, one core each
// for a training forward + backward (+ the gradient all-reduce) and for a prefill.
// Then the bytes each rank sent per layer, split into scan, halo and ring, forward and
// backward, next to parallel::predicted_layer_traffic (the cost model of docs/parallelism.md).
//
//   build/ittt_cp_bench --cost-model     (no mpirun) the same formulas on paper: a
//   Qwen3-4B-sized model at 256k tokens over 8-64 GPUs, against a compute model; the
//   assumptions are printed with the table (docs/parallelism.md discusses it).
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "bench/bench_models.h"
#include "model/model.h"
#include "model/model_ranks.h"
#include "parallel/model_parallel.h"
#include "parallel/traffic_model.h"
#include "runtime/device.h"
#include "runtime/rng.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace ittt;
using bench::fmt;

namespace {

// The model of bench_models.h with layer 2 full attention: the ring attention is timed too.
ModelConfig bench_config() {
    ModelConfig c = bench::bench_config(true, 64);
    c.layer_types[2] = AttentionType::Full;
    c.validate();
    return c;
}

void set_threads(int t) {
#ifdef _OPENMP
    omp_set_num_threads(t);
#else
    (void)t;
#endif
}

double seconds(const std::function<void()>& fn) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Stat {
    std::vector<double> s;
    double median() const {
        std::vector<double> v = s;
        std::sort(v.begin(), v.end());
        return v.empty() ? 0 : v[v.size() / 2];
    }
    double min() const { return s.empty() ? 0 : *std::min_element(s.begin(), s.end()); }
};

// ---- --cost-model: the formulas extrapolated (no MPI) ----

// Assumptions, printed with the table. H100 SXM: 989 TFLOP/s dense BF16 peak, of which
// 40% is a typical training MFU; NVLink 4: 450 GB/s each way per GPU; InfiniBand NDR:
// one 400 Gb/s NIC per GPU = 50 GB/s each way; 8 GPUs per node (ranks 8k .. 8k+7).
constexpr double kFlops = 0.4 * 989e12, kNvlink = 450e9, kInfiniband = 50e9;
constexpr double kLatencyNvlink = 5e-6, kLatencyInfiniband = 10e-6;
constexpr int kGpusPerNode = 8;

// Forward flops of one layer on rank r (B = 1): projections, attention over the keys
// the slice sees, the SwiGLU MLP, and TTT's delta, correction and target (conv, P).
double layer_flops(const ModelConfig& c, int layer, const parallel::SlicePlan& plan, int r) {
    const double m = static_cast<double>(plan.length(r)), d = c.hidden_size, f = c.intermediate_size;
    const double q = static_cast<double>(c.num_attention_heads) * c.head_dim, kv = static_cast<double>(c.num_key_value_heads) * c.head_dim;
    double flops = 2 * m * d * (2 * q + 2 * kv) + 6 * m * d * f;
    const int w = c.window_for_layer(layer);
    const double keys = w > 0 ? std::min<double>(w, static_cast<double>(plan.end(r))) : static_cast<double>(plan.begin(r)) + m / 2;
    flops += 4 * m * keys * q;  // Q K^T and P V
    if (c.is_ttt_layer(layer)) flops += 4 * m * d * f + 2 * m * d * d;
    return flops;
}

void cost_model() {
    ModelConfig c;  // Qwen3-4B's shapes (36 layers of which 4 kinds are costed)
    c.vocab_size = 151936;
    c.hidden_size = 2560;
    c.intermediate_size = 9728;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 8;
    c.head_dim = 128;
    c.sliding_window = 4096;
    c.layer_types = {AttentionType::Sliding, AttentionType::Sliding, AttentionType::Full, AttentionType::Full};
    c.ttt_mode = true;
    c.ttt_layers = {0, 2};
    c.ttt_chunk = 1024;
    const int64_t n = 262144;
    const size_t e = 2;  // BF16
    std::printf("cost model: Qwen3-4B shapes (d %d, f %d, %d x %d query heads, %d KV heads), n = %lld tokens, B = 1, BF16,\n"
                "ttt_chunk %d, sliding window %d. GPU: %.0f TFLOP/s (40%% of H100 BF16 peak); NVLink %.0f GB/s, InfiniBand %.0f GB/s\n"
                "each way per GPU, latency %.0f / %.0f us per message; %d GPUs per node. Forward + backward of one layer on its\n"
                "busiest rank; comm = bytes / bandwidth + latency per dependent round, not overlapped (an upper bound).\n",
                c.hidden_size, c.intermediate_size, c.num_attention_heads, c.head_dim, c.num_key_value_heads, static_cast<long long>(n),
                c.ttt_chunk, c.sliding_window, kFlops / 1e12, kNvlink / 1e9, kInfiniband / 1e9, kLatencyNvlink * 1e6,
                kLatencyInfiniband * 1e6, kGpusPerNode);
    bench::Table rows({"GPUs", "layer", "scan MB", "halo MB", "ring MB", "comm ms", "compute ms", "comm / compute"});
    for (int R : {8, 16, 32, 64}) {
        parallel::SlicePlan plan = parallel::SlicePlan::make(n, c.ttt_chunk, R);
        const bool cross = R > kGpusPerNode;  // neighbours straddle nodes somewhere: every step waits for that pair
        for (int l = 0; l < c.num_hidden_layers; ++l) {
            double worst_comm = 0, worst_compute = 0, scan_mb = 0, halo_mb = 0, ring_mb = 0;
            for (int r = 0; r < R; ++r) {
                double comm = 0, mb[3] = {0, 0, 0};
                for (bool bwd : {false, true}) {
                    parallel::LayerTraffic t = parallel::predicted_layer_traffic(c, l, plan, r, 1, e, bwd);
                    mb[0] += t.scan / 1e6, mb[1] += t.halo / 1e6, mb[2] += t.ring / 1e6;
                    // the scan: one message per round, distance 2^k: inside a node below 8
                    const double msg = static_cast<double>(c.hidden_size) * c.intermediate_size * static_cast<double>(e);
                    for (int dist = 1; dist < R && t.scan > 0; dist *= 2)
                        if (bwd ? r - dist >= 0 : r + dist < R)
                            comm += dist < kGpusPerNode ? kLatencyNvlink + msg / kNvlink : kLatencyInfiniband + msg / kInfiniband;
                    const double bw = cross ? kInfiniband : kNvlink, lat = cross ? kLatencyInfiniband : kLatencyNvlink;
                    if (t.halo > 0) comm += lat + static_cast<double>(t.halo) / bw;
                    if (t.ring > 0) comm += (R - 1) * lat + static_cast<double>(t.ring) / bw;
                }
                const double compute = 3 * layer_flops(c, l, plan, r) / kFlops;  // backward ~ 2x forward
                if (comm > worst_comm) worst_comm = comm, scan_mb = mb[0], halo_mb = mb[1], ring_mb = mb[2];
                worst_compute = std::max(worst_compute, compute);
            }
            std::string kind = std::string(c.window_for_layer(l) > 0 ? "sliding 4096" : "full") + (c.is_ttt_layer(l) ? " + TTT" : "");
            rows.row({std::to_string(R), kind, fmt("%.1f", scan_mb), fmt("%.1f", halo_mb), fmt("%.1f", ring_mb), fmt("%.2f", worst_comm * 1e3),
                            fmt("%.2f", worst_compute * 1e3), fmt("%.2f", worst_comm / worst_compute)});
        }
    }
    rows.print("bytes sent by the busiest rank per layer (forward + backward) and the time they take");
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    if (argc > 1 && std::strcmp(argv[1], "--cost-model") == 0) {
        cost_model();
        return 0;
    }
    try {
        parallel::Context& world = parallel::Context::world();
        if (world.size() != 2) fail("ittt_cp_bench: run it on 2 ranks (mpirun -np 2), found " + std::to_string(world.size()));
        std::unique_ptr<parallel::Context> solo = world.first_ranks(1);  // rank 0 alone: R = 1
        const ModelConfig cfg = bench_config();
        const int B = 1, n = quick ? 512 : 2048, rounds = quick ? 2 : 5;
        Model plain(cfg), cp1(cfg), cp2(cfg);
        bench::init_bench_weights(plain);
        bench::init_bench_weights(cp1);
        bench::init_bench_weights(cp2);
        if (solo) cp1.set_context_parallel(solo.get());
        cp2.set_context_parallel(&world);
        std::vector<int32_t> ids(static_cast<size_t>(B * n));
        Rng rng(3);
        for (int32_t& t : ids) t = static_cast<int32_t>(rng.randint(4, cfg.vocab_size));
        Tensor tokens = Tensor::from_vector(ids, {B, n});
        ForwardOptions prefill;
        prefill.inference = true;

        auto train_step = [&](Model& m) {
            const Tensor& logits = m.forward(tokens);
            Tensor g = Tensor::zeros(logits.shape());
            g.data<float>()[0] = 1;  // any upstream gradient costs the same
            m.zero_grad();
            m.backward(g);
            if (m.context_parallel()) parallel::allreduce_gradients(*m.context_parallel(), m);
        };
        auto barrier = [&] { world.allreduce_sum(0.0); };  // waiting ranks sleep between polls

        // Interleaved: in every round each variant runs once (warm-up round 0 is dropped).
        const char* names[4] = {"1 process, 1 thread", "1 process, 2 threads", "context parallel, R = 1", "context parallel, R = 2"};
        Stat train[4], fwd[4];
        for (int round = 0; round <= rounds; ++round) {
            for (int v = 0; v < 4; ++v) {
                double t_train = 0, t_fwd = 0;
                if (v < 3 && world.rank() == 0) {
                    Model& m = v == 2 ? cp1 : plain;
                    set_threads(v == 1 ? 2 : 1);
                    t_train = seconds([&] { train_step(m); });
                    t_fwd = seconds([&] { m.forward(tokens, prefill); });
                    set_threads(1);
                } else if (v == 3) {
                    t_train = seconds([&] { train_step(cp2); });
                    t_fwd = seconds([&] { cp2.forward(tokens, prefill); });
                }
                barrier();
                if (round > 0) train[v].s.push_back(t_train), fwd[v].s.push_back(t_fwd);
            }
        }

        // The bytes of one R = 2 training step, per rank and layer.
        std::vector<parallel::TrafficCounter> counted(2);
        cp2.zero_grad();
        world.traffic().reset();
        const Tensor& logits = cp2.forward(tokens);
        counted[0] = world.traffic();
        world.traffic().reset();
        Tensor g = Tensor::zeros(logits.shape());
        cp2.backward(g);
        counted[1] = world.traffic();
        world.traffic().reset();
        parallel::allreduce_gradients(world, cp2);
        const int64_t grad_bytes = world.traffic().total(parallel::Traffic::Gradients);
        std::string mine;
        for (int l = 0; l < cfg.num_hidden_layers; ++l)
            for (int phase = 0; phase < 2; ++phase)
                for (parallel::Traffic k : {parallel::Traffic::Scan, parallel::Traffic::Halo, parallel::Traffic::Ring})
                    mine += std::to_string(counted[static_cast<size_t>(phase)].bytes(l, k)) + " ";
        std::vector<std::string> all = world.allgather(mine);

        if (world.rank() == 0) {
            std::printf("ittt_cp_bench on %s, 2 MPI ranks, OMP_NUM_THREADS=1 per rank\n", device::describe(Device::CPU).c_str());
            std::printf("model: d %d, f %d, %d layers (sliding 64: 0, 1, 3; full: 2; TTT: 1, 3), chunk %d, B %d, n %d; %d rounds\n",
                        cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.ttt_chunk, B, n, rounds);
            bench::Table rows({"variant", "train tok/s (median)", "train tok/s (best)", "vs 1 thread", "prefill tok/s (median)", "prefill vs 1 thread"});
            for (int v = 0; v < 4; ++v) {
                const double tok = static_cast<double>(B) * n;
                rows.row({names[v], fmt("%.0f", tok / train[v].median()), fmt("%.0f", tok / train[v].min()),
                                fmt("%.2fx", train[0].median() / train[v].median()), fmt("%.0f", tok / fwd[v].median()),
                                fmt("%.2fx", fwd[0].median() / fwd[v].median())});
            }
            rows.print("training step (forward + backward + gradient all-reduce) and prefill, tokens/s");

            parallel::SlicePlan plan = cp2.slice_plan();
            bench::Table bytes({"layer", "kind", "rank", "fwd scan", "fwd halo", "fwd ring", "bwd scan", "bwd halo", "bwd ring", "cost model"});
            for (int l = 0; l < cfg.num_hidden_layers; ++l)
                for (int r = 0; r < 2; ++r) {
                    std::vector<int64_t> v;
                    std::stringstream ss(all[static_cast<size_t>(r)]);
                    for (int64_t x; ss >> x;) v.push_back(x);
                    std::vector<std::string> row = {std::to_string(l),
                                                    std::string(cfg.window_for_layer(l) > 0 ? "sliding" : "full") + (cfg.is_ttt_layer(l) ? " + TTT" : ""),
                                                    std::to_string(r)};
                    bool agree = true;
                    for (int phase = 0; phase < 2; ++phase) {
                        parallel::LayerTraffic p = parallel::predicted_layer_traffic(cfg, l, plan, r, B, sizeof(float), phase == 1);
                        const int64_t want[3] = {p.scan, p.halo, p.ring};
                        for (int k = 0; k < 3; ++k) {
                            int64_t got = v[static_cast<size_t>(l * 6 + phase * 3 + k)];
                            row.push_back(std::to_string(got));
                            agree = agree && got == want[k];
                        }
                    }
                    row.push_back(agree ? "equal" : "DIFFERS");
                    bytes.row(row);
                }
            bytes.print("bytes sent per rank per layer, one training step at R = 2 (slices of " + std::to_string(plan.length(0)) + " and " +
                        std::to_string(plan.length(1)) + " tokens)");
            std::printf("gradient all-reduce: %lld bytes sent per rank (nominal ring: 2 (R-1)/R of %lld parameter bytes)\n",
                        static_cast<long long>(grad_bytes), static_cast<long long>(cp2.parameter_count() * 4));
        }
        return parallel::finish_job(0);
    } catch (const Error& e) {
        std::fprintf(stderr, "ittt_cp_bench: error: %s\n", e.what());
        parallel::abort_job_after_error(1);
        return 1;
    }
}
