#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <unistd.h>

#include "ops/ops.h"
#include "runtime/nvtx.h"

namespace ittt {

Trainer::Trainer(Model& model, const TrainConfig& cfg, BatchFn batches) : model_(model), cfg_(cfg), batches_(std::move(batches)) {
    ITTT_CHECK(cfg_.steps >= 0, "train: --steps must be >= 0, found ", cfg_.steps);
    ITTT_CHECK(cfg_.grad_accum >= 1, "train: --grad-accum must be >= 1, found ", cfg_.grad_accum);
    ITTT_CHECK(cfg_.lr > 0, "train: --lr must be > 0, found ", cfg_.lr);
    ITTT_CHECK(cfg_.warmup >= 0, "train: --warmup must be >= 0, found ", cfg_.warmup);
    for (const Parameter& p : model_.parameters()) {
        m_.push_back(Tensor::zeros(p.value.shape(), p.value.dtype(), p.value.device()));
        v_.push_back(Tensor::zeros(p.value.shape(), p.value.dtype(), p.value.device()));
    }
}

double Trainer::lr_at(int64_t step) const {
    if (cfg_.warmup > 0 && step <= cfg_.warmup) return cfg_.lr * static_cast<double>(step) / static_cast<double>(cfg_.warmup);
    int64_t decay_steps = cfg_.steps - cfg_.warmup;
    if (decay_steps <= 0) return cfg_.lr;
    double progress = std::min(1.0, static_cast<double>(step - cfg_.warmup) / static_cast<double>(decay_steps));
    double cosine = 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress));
    return cfg_.lr * (cfg_.min_lr_ratio + (1.0 - cfg_.min_lr_ratio) * cosine);
}

StepStats Trainer::step() {
    ITTT_NVTX_RANGE("train_step");
    const int64_t next = step_ + 1;
    auto t0 = std::chrono::steady_clock::now();
    // Draw every micro-batch first: the loss is a mean over all scored tokens of
    // the step, so each micro-batch's gradient is scaled by 1/total.
    std::vector<Tensor> tokens(static_cast<size_t>(cfg_.grad_accum)), targets(static_cast<size_t>(cfg_.grad_accum));
    int64_t scored = 0, n_tokens = 0;
    for (int mb = 0; mb < cfg_.grad_accum; ++mb) {
        batches_(next, mb, tokens[static_cast<size_t>(mb)], targets[static_cast<size_t>(mb)]);
        for (int32_t t : targets[static_cast<size_t>(mb)].to_i32_vector()) scored += t >= 0;
        n_tokens += tokens[static_cast<size_t>(mb)].numel();
    }
    ITTT_CHECK(scored > 0, "train: step ", next, " has no scored positions (every target is -1)");

    model_.zero_grad();
    double loss_sum = 0;
    parallel::Context* cp = model_.context_parallel();
    for (int mb = 0; mb < cfg_.grad_accum; ++mb) {
        const Tensor& logits = model_.forward(tokens[static_cast<size_t>(mb)].to(model_.device()));
        Tensor mb_targets = targets[static_cast<size_t>(mb)];
        if (cp) {  // context parallel: the logits are this rank's slice; so are the targets it scores
            const Tensor& t = tokens[static_cast<size_t>(mb)];
            mb_targets = parallel::local_slice(mb_targets.view({t.dim(0), t.dim(1)}), model_.slice_plan(), cp->rank()).view({logits.dim(0)});
        }
        Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
        ops::CrossEntropyResult r =
            ops::cross_entropy(&dlogits, logits, mb_targets.to(model_.device()), 1.0 / static_cast<double>(scored));
        if (cp) r.loss_sum = cp->allreduce_sum(r.loss_sum);  // the whole sequences' loss, on every rank
        if (!std::isfinite(r.loss_sum)) {
            // Name the culprit: a weight already holding NaN/Inf, else the activations overflowed.
            std::string cause = "every parameter is finite, so an activation overflowed";
            for (const Parameter& p : model_.parameters())
                if (!ops::all_finite(p.value)) {
                    cause = "the weight '" + p.name + "' contains NaN or Inf";
                    break;
                }
            fail(cat("training stopped at step ", next, ": the loss is ", r.loss_sum, " (NaN or Inf); ", cause,
                     "; the last checkpoint written before this step is kept"));
        }
        loss_sum += r.loss_sum;
        model_.backward(dlogits);
    }
    if (cp) parallel::allreduce_gradients(*cp, model_);  // each rank holds its slices' share
    std::vector<Tensor*> grads;
    std::string bad;  // every parameter whose gradient is not finite: one may be the cause, the rest its reach
    for (Parameter& p : model_.parameters()) {
        if (!p.trainable) continue;
        if (!ops::all_finite(p.grad)) bad += (bad.empty() ? "'" : ", '") + p.name + "'";
        grads.push_back(&p.grad);
    }
    ITTT_CHECK(bad.empty(), "training stopped at step ", next, ": the gradient of ", bad,
               " contains NaN or Inf; the last checkpoint written before this step is kept");
    StepStats s;
    s.grad_norm = cfg_.grad_clip > 0 ? ops::clip_grad_norm(grads, cfg_.grad_clip) : std::sqrt([&] {
        double t = 0;
        for (Tensor* g : grads) t += ops::sum_squares(*g);
        return t;
    }());
    s.lr = lr_at(next);
    auto& params = model_.parameters();
    for (size_t i = 0; i < params.size(); ++i) {
        if (!params[i].trainable) continue;
        ops::AdamWConfig ac;
        ac.lr = s.lr;
        ac.beta1 = cfg_.beta1;
        ac.beta2 = cfg_.beta2;
        ac.eps = cfg_.adam_eps;
        ac.weight_decay = params[i].weight_decay ? cfg_.weight_decay : 0.0;
        ops::adamw_step(params[i].value, params[i].grad, m_[i], v_[i], ac, next);
    }
    step_ = next;
    s.step = next;
    s.loss = loss_sum / static_cast<double>(scored);
    s.scored = scored;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s.tokens_per_s = static_cast<double>(n_tokens) / std::max(secs, 1e-9);
    return s;
}

namespace {
std::string format_duration(double s) {
    long t = static_cast<long>(s + 0.5);
    char buf[32];
    if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
    return buf;
}
}  // namespace

std::vector<StepStats> Trainer::run() {
    std::vector<StepStats> all;
    const bool tty = isatty(fileno(stdout));
    auto start = std::chrono::steady_clock::now();
    int64_t first = step_;
    while (step_ < cfg_.steps) {
        StepStats s = step();
        all.push_back(s);
        double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        double eta = elapsed / static_cast<double>(step_ - first) * static_cast<double>(cfg_.steps - step_);
        bool last = step_ == cfg_.steps;
        if (cfg_.json) {
            std::printf("{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"tokens_per_s\": %.1f, \"elapsed_s\": %.3f}\n",
                        static_cast<long long>(s.step), s.loss, s.lr, s.grad_norm, s.tokens_per_s, elapsed);
        } else if (tty || cfg_.log_every <= 0 || s.step % cfg_.log_every == 0 || last || s.step == first + 1) {
            std::printf("%sstep %lld/%lld  loss %.4f  lr %.2e  gnorm %.3f  %.1fk tok/s  ETA %s%s", tty ? "\r" : "",
                        static_cast<long long>(s.step), static_cast<long long>(cfg_.steps), s.loss, s.lr, s.grad_norm,
                        s.tokens_per_s / 1000.0, format_duration(eta).c_str(), tty ? (last ? "\n" : "   ") : "\n");
        }
        std::fflush(stdout);
        const bool writer = !model_.context_parallel() || model_.context_parallel()->rank() == 0;  // every rank holds the same weights
        if (writer && !cfg_.out_dir.empty() && ((cfg_.checkpoint_every > 0 && step_ % cfg_.checkpoint_every == 0) || last)) save(cfg_.out_dir);
    }
    return all;
}

}  // namespace ittt

// ---------------------------------------------------------------- checkpoints

#include "io/checkpoint.h"
#include "model/model_io.h"

namespace ittt {

void Trainer::save(const std::string& dir) const {
    ITTT_NVTX_RANGE("checkpoint_save");
    std::vector<NamedTensor> opt;
    const auto& params = model_.parameters();
    for (size_t i = 0; i < params.size(); ++i) {
        opt.push_back({params[i].name + ".exp_avg", m_[i]});
        opt.push_back({params[i].name + ".exp_avg_sq", v_[i]});
    }
    Json state = Json::object();
    state.set("step", step_);
    state.set("total_steps", cfg_.steps);
    state.set("lr", cfg_.lr);
    state.set("warmup", cfg_.warmup);
    state.set("grad_accum", cfg_.grad_accum);
    save_checkpoint(dir, model_.config(), model_weights(model_), &opt, &state);
}

void Trainer::resume(const std::string& dir) {
    ITTT_NVTX_RANGE("checkpoint_resume");
    std::vector<std::pair<std::string, Tensor*>> weights, moments;
    auto& params = model_.parameters();
    for (size_t i = 0; i < params.size(); ++i) {
        weights.push_back({params[i].name, &params[i].value});
        moments.push_back({params[i].name + ".exp_avg", &m_[i]});
        moments.push_back({params[i].name + ".exp_avg_sq", &v_[i]});
    }
    ITTT_CHECK(checkpoint_has_optimizer_state(dir) && checkpoint_has_trainer_state(dir), "--resume ", dir,
               ": the checkpoint has no optimizer.safetensors or trainer_state.json (written by `ittt init`, not `ittt train`?)");
    load_checkpoint_weights(dir, weights);
    load_into(checkpoint_optimizer_path(dir), moments);
    Json state = load_checkpoint_trainer_state(dir);
    step_ = state.at("step").as_int64();
    ITTT_CHECK(step_ >= 0 && step_ <= cfg_.steps, "--resume ", dir, ": checkpoint is at step ", step_, ", but --steps is ", cfg_.steps);
}

}  // namespace ittt
