// cp_check.cpp: build/ittt_cp_check, the context-parallel checks that need several
// processes. tests/test_parallel.cpp ([mpi]) runs it under `mpirun -np R`:
//
//   ittt_cp_check equivalence   for every case below: logits, every parameter gradient
//                               and an inference forward of the context-parallel model on
//                               R ranks against the same model in one process; the bytes
//                               sent per layer against parallel::predicted_layer_traffic;
//                               the summed gradients bit-identical on every rank
//   ittt_cp_check die           rank 1 exits while rank 0 waits for it
//   ittt_cp_check hang          rank 1 sleeps while rank 0 waits for it (ITTT_CP_TIMEOUT)
//   ittt_cp_check mismatch      rank 1 builds a model with another ttt_chunk
//
// Each rank computes the single-process reference itself (the models are tiny), so
// every rank can check its own gradients. Lines start with "ok" or "FAIL"; the exit
// code is 0 when every rank saw only "ok".
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "model/model_ranks.h"
#include "parallel/model_parallel.h"
#include "parallel/traffic_model.h"
#include "runtime/rng.h"

using namespace ittt;

namespace {

Tensor random_tensor(const Shape& shape, uint64_t seed, double scale, DType dtype) {
    std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
    for (size_t i = 0; i < v.size(); ++i) v[i] = scale * normal_at(seed, i);
    Tensor t = Tensor::from_vector(v, shape);
    return dtype == DType::F64 ? t : t.to_dtype(DType::F32);
}

Tensor random_tokens(int64_t B, int64_t n, int V, uint64_t seed) {
    std::vector<int32_t> v(static_cast<size_t>(B * n));
    Rng rng(seed);
    for (int32_t& t : v) t = static_cast<int32_t>(rng.randint(0, V));
    return Tensor::from_vector(v, {B, n});
}

struct Case {
    std::string name;
    ModelConfig cfg;
    int64_t B, n;
    DType dtype;
    double tol;  // atol and rtol
};

ModelConfig base_config() {
    ModelConfig c;
    c.vocab_size = 19;
    c.hidden_size = 16;
    c.intermediate_size = 24;
    c.num_hidden_layers = 3;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;  // GQA
    c.head_dim = 4;
    c.rope_theta = 10000;
    c.ttt_mode = true;
    c.ttt_lr = 0.5;
    return c;
}

std::vector<Case> cases() {
    std::vector<Case> out;
    // The paper's mix: sliding-window TTT layers around a full-attention layer; chunk 4,
    // 22 tokens (6 chunks, the last one short): n is not a multiple of R*C for R = 2, 3, 4.
    ModelConfig a = base_config();
    a.layer_types = {AttentionType::Sliding, AttentionType::Full, AttentionType::Sliding};
    a.sliding_window = 5;  // smaller than a slice for R <= 3, about one slice for R = 4
    a.ttt_layers = {0, 2};
    a.ttt_chunk = 4;
    // Tolerances: the ranks sum the same terms in another order (scan over ranks,
    // merged softmax blocks, gradients added at their owner): rounding only. F32 is
    // held to the 1e-5; F64 to 1e-12 shows that nothing else differs.
    out.push_back({"swa+full+ttt F32", a, 2, 22, DType::F32, 1e-5});
    out.push_back({"swa+full+ttt F64", a, 2, 22, DType::F64, 1e-12});
    // A window wider than several slices (the halo comes from more than one rank), MHA,
    // TTT on the MLP input (hidden_states), inference-time clipping, chunk 3, 17 tokens.
    ModelConfig b = base_config();
    b.num_attention_heads = b.num_key_value_heads = 2;
    b.num_hidden_layers = 2;
    b.layer_types = {AttentionType::Sliding, AttentionType::Sliding};
    b.sliding_window = 11;
    b.ttt_layers = {0, 1};
    b.ttt_chunk = 3;
    b.ttt_target = TttTargetSource::HiddenStates;
    b.ttt_clip_tau = 0.05;
    out.push_back({"wide window, clipping F32", b, 1, 17, DType::F32, 1e-5});
    // Full attention only (the ring), multi-query (one KV head), no TTT layer, chunk 5.
    ModelConfig c = base_config();
    c.num_key_value_heads = 1;
    c.num_hidden_layers = 2;
    c.layer_types = {AttentionType::Full, AttentionType::Full};
    c.ttt_mode = false;
    c.ttt_chunk = 5;
    out.push_back({"full attention, MQA F32", c, 2, 23, DType::F32, 1e-5});
    return out;
}

// Gives the TTT conv and projection sizeable values: the release's zero conv would make
// the TTT path vanish and the check vacuous.
void make_model(Model& m, uint64_t seed) {
    m.init_random(seed);
    uint64_t s = seed * 1000;
    for (Parameter& p : m.parameters())
        if (p.name.find("ttt_") != std::string::npos) p.value.copy_from(random_tensor(p.value.shape(), s++, 0.4, p.value.dtype()));
}

std::string format_number(const char* f, double x) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, x);
    return buf;
}

// |a - b| <= tol + tol*|b| everywhere; returns the max |a - b| (NaN when the check fails).
double compare(const Tensor& a, const Tensor& b, double tol, const std::string& what, int& failures, const parallel::Context& ctx) {
    std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
    if (x.size() != y.size()) {
        std::printf("FAIL (%s) %s: %zu values, reference %zu\n", ctx.who().c_str(), what.c_str(), x.size(), y.size());
        ++failures;
        return NAN;
    }
    double worst = 0;
    int bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        double err = std::fabs(x[i] - y[i]);
        worst = std::max(worst, err);
        if (!(err <= tol + tol * std::fabs(y[i])) && bad++ < 3)
            std::printf("FAIL (%s) %s[%zu]: %.9g, reference %.9g\n", ctx.who().c_str(), what.c_str(), i, x[i], y[i]);
    }
    failures += bad > 0;
    return worst;
}

int check_equivalence(parallel::Context& ctx) {
    int failures = 0;
    for (const Case& k : cases()) {
        const int V = k.cfg.vocab_size;
        Model ref(k.cfg, k.dtype), cp(k.cfg, k.dtype);
        make_model(ref, 5);
        make_model(cp, 5);
        Tensor tokens = random_tokens(k.B, k.n, V, 17);
        Tensor grad_out = random_tensor({k.B * k.n, V}, 23, 1.0, k.dtype);  // dL/dlogits of L = <logits, grad_out>

        ref.zero_grad();
        Tensor logits_ref = ref.forward(tokens).clone();
        ref.backward(grad_out);

        cp.set_context_parallel(&ctx);
        cp.zero_grad();
        ctx.traffic().reset();
        Tensor logits = cp.forward(tokens).clone();
        const parallel::SlicePlan plan = cp.slice_plan();
        parallel::TrafficCounter forward = ctx.traffic();
        Tensor g_local = parallel::local_slice(grad_out.view({k.B, k.n, V}), plan, ctx.rank()).view({logits.dim(0), V});
        ctx.traffic().reset();
        cp.backward(g_local);
        parallel::TrafficCounter backward = ctx.traffic();
        parallel::allreduce_gradients(ctx, cp);

        // the bytes each layer sent, against the cost model
        int64_t layer_bytes = 0;
        for (int l = 0; l < k.cfg.num_hidden_layers; ++l)
            for (bool bwd : {false, true}) {
                const parallel::TrafficCounter& measured = bwd ? backward : forward;
                parallel::LayerTraffic p =
                    parallel::predicted_layer_traffic(k.cfg, l, plan, ctx.rank(), k.B, dtype_size(k.dtype), bwd);
                const int64_t got[3] = {measured.bytes(l, parallel::Traffic::Scan), measured.bytes(l, parallel::Traffic::Halo),
                                        measured.bytes(l, parallel::Traffic::Ring)};
                const int64_t want[3] = {p.scan, p.halo, p.ring};
                for (int i = 0; i < 3; ++i) {
                    layer_bytes += got[i];
                    if (got[i] != want[i]) {
                        std::printf("FAIL (%s) %s: layer %d %s %s sent %lld bytes, the cost model says %lld\n", ctx.who().c_str(),
                                    k.name.c_str(), l, bwd ? "backward" : "forward", i == 0 ? "scan" : i == 1 ? "halo" : "ring",
                                    static_cast<long long>(got[i]), static_cast<long long>(want[i]));
                        ++failures;
                    }
                }
            }

        Tensor full = parallel::gather_slices(ctx, plan, logits.view({k.B, plan.length(ctx.rank()), V}));
        double logit_err = 0, grad_err = 0, grad_max = 0;
        if (ctx.rank() == 0) logit_err = compare(full.view({k.B * k.n, V}), logits_ref, k.tol, k.name + " logits", failures, ctx);
        std::string grad_bits;
        for (size_t i = 0; i < ref.parameters().size(); ++i) {
            const Parameter& p = cp.parameters()[i];
            grad_err = std::max(grad_err, compare(p.grad, ref.parameters()[i].grad, k.tol, k.name + " grad " + p.name, failures, ctx));
            for (double x : ref.parameters()[i].grad.to_f64_vector()) grad_max = std::max(grad_max, std::fabs(x));
            std::vector<double> g = p.grad.to_f64_vector();
            uint64_t h = 1469598103934665603ull;
            for (double x : g) h = (h ^ std::hash<double>{}(x)) * 1099511628211ull;
            grad_bits += std::to_string(h) + ",";
        }
        // the optimizer step will be identical on every rank only if the summed gradients are
        try {
            ctx.require_same("the summed gradients", {{"bits", grad_bits}});
        } catch (const Error& e) {
            std::printf("FAIL (%s) %s: %s\n", ctx.who().c_str(), k.name.c_str(), e.what());
            ++failures;
        }
        double infer_err = 0;
        if (k.cfg.ttt_clip_tau > 0) {  // inference clips each chunk's update: still per chunk, so still exact
            ForwardOptions opt;
            opt.inference = true;
            Tensor inf_ref = ref.forward(tokens, opt).clone();
            Tensor inf = cp.forward(tokens, opt).clone();
            Tensor inf_full = parallel::gather_slices(ctx, plan, inf.view({k.B, plan.length(ctx.rank()), V}));
            if (ctx.rank() == 0) infer_err = compare(inf_full.view({k.B * k.n, V}), inf_ref, k.tol, k.name + " inference logits", failures, ctx);
        }
        if (ctx.rank() == 0)
            std::printf("ok   %-26s R=%d B=%lld n=%lld: max |err| logits %.1e, grads %.1e (|grad| <= %.1f)%s; rank 0 sent %lld bytes in the layers, as the cost model says\n",
                        k.name.c_str(), ctx.size(), static_cast<long long>(k.B), static_cast<long long>(k.n), logit_err, grad_err, grad_max,
                        k.cfg.ttt_clip_tau > 0 ? format_number(", inference logits %.2e", infer_err).c_str() : "",
                        static_cast<long long>(layer_bytes));
    }
    return static_cast<int>(ctx.allreduce_sum(failures));
}

// The model of the failure modes: the first case's config, a forward that needs every rank.
int check_failure(parallel::Context& ctx, const std::string& mode) {
    Case k = cases()[0];
    if (mode == "mismatch" && ctx.rank() == 1) k.cfg.ttt_chunk = 8;
    Model m(k.cfg, k.dtype);
    make_model(m, 5);
    m.set_context_parallel(&ctx);  // mismatch: throws here, on every rank
    if (ctx.rank() == 1 && mode == "die") std::exit(3);
    if (ctx.rank() == 1 && mode == "hang") std::this_thread::sleep_for(std::chrono::seconds(60));
    m.forward(random_tokens(k.B, k.n, k.cfg.vocab_size, 17));
    std::printf("FAIL (%s) %s: the forward finished\n", ctx.who().c_str(), mode.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode != "equivalence" && mode != "die" && mode != "hang" && mode != "mismatch") {
        std::fprintf(stderr, "usage: mpirun -np R ittt_cp_check equivalence|die|hang|mismatch\n");
        return 2;
    }
    try {
        parallel::Context& ctx = parallel::Context::world();
        int failures = mode == "equivalence" ? check_equivalence(ctx) : check_failure(ctx, mode);
        if (ctx.rank() == 0) std::printf("%s: %d failure%s on %d rank%s\n", mode.c_str(), failures, failures == 1 ? "" : "s", ctx.size(),
                                         ctx.size() == 1 ? "" : "s");
        return parallel::finish_job(failures == 0 ? 0 : 1);
    } catch (const Error& e) {
        std::fprintf(stderr, "ittt_cp_check: error: %s\n", e.what());
        parallel::abort_job_after_error(1);
        return 1;
    }
}
