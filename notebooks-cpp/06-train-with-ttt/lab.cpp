// Lab 06: train tiny models with and without In-Place TTT on MQAR (multi-query
// associative recall) where every query is further from its pair than attention
// can see, evaluate their accuracy (your TODO), then stream with Session and
// watch the TTT state stay the same size.
//   build/labs/06-train-with-ttt [--solution] [--check]
#include <omp.h>

#include <cmath>

#include "../lab_plot.h"
#include "../lab_util.h"
#include "model/model.h"
#include "model/session.h"
#include "ops/ops.h"
#include "tasks/tasks.h"
#include "train/trainer.h"

using namespace ittt;

namespace {

constexpr int kBatch = 16, kSeqLen = 64, kEvalBatches = 4;
enum class Variant { Swa, TttLearned, TttNextToken };
const char* variant_name(Variant v) {
    return v == Variant::Swa ? "SWA only" : v == Variant::TttLearned ? "SWA + TTT (learned target)" : "SWA + TTT (next-token target)";
}

// 2 sliding-window layers (window 8): a token sees at most 2 x 8 positions back
// through attention alone. TTT on both MLPs, chunk 16, eta = 1.
ModelConfig make_config(Variant v) {
    ModelConfig c;
    c.vocab_size = 68, c.hidden_size = 32, c.intermediate_size = 64, c.num_hidden_layers = 2;
    c.num_attention_heads = 2, c.num_key_value_heads = 1, c.head_dim = 16, c.rope_theta = 1e4;
    c.sliding_window = 8, c.layer_types = {AttentionType::Sliding, AttentionType::Sliding};
    if (v != Variant::Swa) {
        c.ttt_mode = true, c.ttt_layers = {0, 1}, c.ttt_chunk = 16, c.ttt_lr = 1.0;
        c.ttt_target_mode = v == Variant::TttNextToken ? TttTargetMode::NextToken : TttTargetMode::Learned;
    }
    return c;
}

uint64_t eval_seed(int i) { return Rng(2).fork(static_cast<uint64_t>(i)).seed(); }  // never a training batch

// ---- TODO (exercise 1): accuracy on held-out batches ----
// Fill `out` with the model's accuracy on one batch of `batch` sequences of `seq_len` tokens
// per seed in `seeds` (seeds no training batch uses: held out). Only the positions MQAR
// scores count (src/tasks/tasks.h: make_batch, count_correct and what Accuracy holds).
// Return false until written.
bool evaluate_student([[maybe_unused]] Model& model, [[maybe_unused]] const TaskConfig& task, [[maybe_unused]] int batch,
                      [[maybe_unused]] int seq_len, [[maybe_unused]] const std::vector<uint64_t>& seeds, [[maybe_unused]] Accuracy& out) {
    return false;  // TODO
}

// Trains with AdamW (warm-up + cosine) on seeded MQAR batches; prints a few loss lines.
std::vector<StepStats> train(Model& model, const TaskConfig& task, int steps) {
    TrainConfig tc;
    tc.steps = steps, tc.lr = 1e-2, tc.warmup = 5, tc.log_every = 0;
    const int V = model.config().vocab_size;
    Trainer trainer(model, tc, [&](int64_t step, int micro, Tensor& tokens, Tensor& targets) {
        Batch b = make_batch(task, V, kBatch, kSeqLen, Rng(1).fork(static_cast<uint64_t>(step * 64 + micro)).seed());
        tokens = b.tokens_tensor();
        targets = b.targets_tensor().view({kBatch * kSeqLen});
    });
    std::vector<StepStats> stats;
    for (int s = 0; s < steps; ++s) {
        stats.push_back(trainer.step());
        if (s == 0 || (s + 1) % (steps / 4) == 0) std::printf("    step %3d  loss %.4f\n", s + 1, stats.back().loss);
    }
    return stats;
}

}  // namespace

// The reference solutions (solution.cpp).
namespace solution {
LAB_SOLUTION bool evaluate(Model& model, const TaskConfig& task, int batch, int seq_len, const std::vector<uint64_t>& seeds, Accuracy& out);
}  // namespace solution

int main(int argc, char** argv) {
    lab::Options opt = lab::parse_flags(argc, argv, "Lab 06: training with and without TTT (MQAR), streaming with Session");
    auto evaluate = opt.solution ? solution::evaluate : evaluate_student;
    return lab::run([&] {
        lab::Checks checks;
        omp_set_num_threads(1);  // tiny matrices: one thread is as fast, and immune to a busy neighbour
        TaskConfig task = parse_task_config("mqar", parse_option_list("pairs=4,gap=24"));
        const int steps = opt.check ? 40 : 160;

        lab::section(1, "The task: MQAR with a gap longer than attention can reach");
        Example ex = make_example(task, 68, kSeqLen, 7, 0);
        std::printf("  %s, n = %d. One example (keys from the lower half, values from the upper):\n  ", task.describe().c_str(), kSeqLen);
        for (size_t t = 0; t < ex.tokens.size(); ++t) std::printf("%d%s", ex.tokens[t], ex.targets[t] >= 0 ? "* " : " ");
        std::printf("\n  (* = scored: the next token must be that key's value). Every query is >= 24 tokens after its pair;\n"
                    "  two window-8 layers reach 14 back (7 each). Chance: 1 in 32 values = 3%%.\n");

        lab::section(2, "Train three models with the same seed, same data");
        std::vector<Variant> variants = {Variant::Swa, Variant::TttLearned, Variant::TttNextToken};
        std::vector<Model> models;
        std::vector<double> accuracy;
        plots::LinePlot fig;
        fig.title = "Training loss on MQAR (4 pairs, gap >= 24; attention reaches 14 back)";
        fig.xlabel = "step", fig.ylabel = "cross-entropy of the scored positions";
        for (Variant v : variants) {
            std::printf("  %s, %d steps:\n", variant_name(v), steps);
            models.emplace_back(make_config(v));
            models.back().init_random(0);
            std::vector<StepStats> st = train(models.back(), task, steps);
            checks.expect(std::isfinite(st.back().loss) && st.back().loss < st.front().loss, "the training loss went down");
            plots::Series curve = lab::series(variant_name(v), {}, {}, "lines");
            for (size_t i = 0; i < st.size(); ++i) curve.x.push_back(static_cast<double>(i + 1)), curve.y.push_back(st[i].loss);
            fig.series.push_back(curve);
        }
        lab::plot(opt, fig, "06-train-with-ttt", "loss_curves");

        lab::section(3, "Exercise 1: accuracy on held-out batches");
        bool have = true;
        Accuracy last_accuracy;
        for (size_t i = 0; i < models.size(); ++i) {
            Accuracy a;
            std::vector<uint64_t> seeds;
            for (int b = 0; b < kEvalBatches; ++b) seeds.push_back(eval_seed(b));
            have = evaluate(models[i], task, kBatch, kSeqLen, seeds, a);
            if (!checks.todo_done(have, "exercise 1 (evaluate)", opt)) break;
            accuracy.push_back(a.fraction());
            last_accuracy = a;
            std::printf("  %-31s accuracy %5.1f%% (%lld/%lld), %lld/%lld examples fully right\n", variant_name(variants[i]),
                        100 * a.fraction(), static_cast<long long>(a.correct), static_cast<long long>(a.scored),
                        static_cast<long long>(a.examples_all_correct), static_cast<long long>(a.examples));
        }
        if (have) {
            // Every example of pairs=4 scores its 4 queries: 4 batches x 16 sequences x 4.
            const Accuracy& last = last_accuracy;
            checks.expect_close({static_cast<double>(last.scored), static_cast<double>(last.examples)},
                                {static_cast<double>(kEvalBatches * kBatch * task.pairs), static_cast<double>(kEvalBatches * kBatch)}, 0,
                                "scored positions = batches x sequences x queries, examples = batches x sequences",
                                {{{static_cast<double>(kEvalBatches * kBatch * kSeqLen), static_cast<double>(kEvalBatches * kBatch)},
                                  "every position counted: only the queries are scored (the others have no answer to recall)"},
                                 {{static_cast<double>(kBatch * task.pairs), static_cast<double>(kBatch)},
                                  "one batch only: add up every held-out batch"}});
            checks.expect(accuracy[0] < 0.15, "SWA alone stays near chance: the pairs are out of its reach");
            checks.expect(accuracy[2] > accuracy[0] + 0.15, "TTT with the next-token target recalls what attention cannot");
            std::printf("  The next-token target stores e(value) under the key's features Z: the theorem of lab 05 at work.\n"
                        "  The learned target starts from a zero conv (the drop-in init) and must find that tap itself.\n");
        }
        const LayerWeights& lw = models[1].layer(0);
        std::vector<double> conv = lw.ttt_conv.to_f64_vector();  // (d, 1, K) row-major: channel c, tap k at c*K + k
        const std::vector<int>& offsets = models[1].config().ttt_conv_offsets;
        const size_t K = offsets.size(), channels = conv.size() / K;
        std::printf("  learned conv of layer 0, RMS over channels per tap offset:");
        for (size_t k = 0; k < K; ++k) {
            double s = 0;
            for (size_t c = 0; c < channels; ++c) s += conv[c * K + k] * conv[c * K + k];
            std::printf("  %+d: %.3f", offsets[k], std::sqrt(s / static_cast<double>(channels)));
        }
        std::printf("\n");

        lab::section(4, "Streaming: prefill(k) + decode one token at a time equals the parallel form");
        Model& m = models[2];
        Batch held = make_batch(task, 68, 1, kSeqLen, eval_seed(100));
        ForwardOptions inference;
        inference.inference = true;
        Tensor full = m.forward(held.tokens_tensor(), inference).clone();
        Session session(m);
        const int k = 20;
        std::vector<int32_t> head(held.tokens.begin(), held.tokens.begin() + k);
        Tensor streamed = Tensor::empty({kSeqLen, 68});
        streamed.rows(0, k).copy_from(session.prefill(head));
        for (int t = k; t < kSeqLen; ++t)
            streamed.rows(t, t + 1).copy_from(session.decode(held.tokens[static_cast<size_t>(t)]).view({1, 68}));
        double diff = lab::max_abs_diff(streamed, full);
        Accuracy sa = count_correct(held, streamed.view({1, kSeqLen, 68}));
        std::printf("  prefill %d tokens, decode %d: max |streamed - parallel| logit = %.2e; streamed accuracy %lld/%lld\n", k,
                    kSeqLen - k, diff, static_cast<long long>(sa.correct), static_cast<long long>(sa.scored));
        checks.expect(diff < 1e-4, "streaming equals the parallel form (F32 rounding)");  // logits O(10), sums reordered

        lab::section(5, "The TTT state does not grow; the KV cache does");
        const ModelConfig& c = m.config();
        std::printf("  %9s  %16s  %22s\n", "position", "TTT state bytes", "KV cache bytes (K+V)");
        size_t first_bytes = session.ttt_state_bytes();
        bool constant = true;
        for (int target : {64, 256, 1024}) {
            while (session.position() < target) session.decode(held.tokens[static_cast<size_t>(session.position() % kSeqLen)]);
            constant &= session.ttt_state_bytes() == first_bytes;
            std::printf("  %9d  %16zu  %22lld\n", session.position(), session.ttt_state_bytes(),
                        2LL * c.num_hidden_layers * session.position() * c.num_key_value_heads * c.head_dim * 4);
        }
        std::printf("  TTT state per layer: W (d x f) + a buffer of C rows of Z and S_src = %d + %d numbers.\n",
                    c.hidden_size * c.intermediate_size, c.ttt_chunk * (c.intermediate_size + c.hidden_size));
        checks.expect(constant, "the TTT state has the same size at every position");
        return checks.finish();
    });
}
