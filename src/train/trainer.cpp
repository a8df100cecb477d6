#include "train/trainer.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <unistd.h>

#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "model/finite.h"
#include "model/model_io.h"
#include "model/model_ranks.h"
#include "ops/ops.h"
#include "runtime/nvtx.h"

namespace ittt {

Trainer::Trainer(Model& model, const TrainConfig& cfg, BatchFn batches)
    : Trainer(model, cfg, DocumentBatchFn([batches](int64_t step, int micro, Tensor& tokens, Tensor& targets, std::vector<std::vector<int>>&) {
          batches(step, micro, tokens, targets);
      })) {}

Trainer::Trainer(Model& model, const TrainConfig& cfg, DocumentBatchFn batches) : model_(model), cfg_(cfg), batches_(std::move(batches)) {
    ITTT_CHECK(cfg_.steps >= 0, "train: --steps must be >= 0, found ", cfg_.steps);
    ITTT_CHECK(cfg_.grad_accum >= 1, "train: --grad-accum must be >= 1, found ", cfg_.grad_accum);
    ITTT_CHECK(std::isfinite(cfg_.lr) && cfg_.lr > 0, "train: --lr must be > 0 and finite, found ", cfg_.lr);
    ITTT_CHECK(cfg_.warmup >= 0, "train: --warmup must be >= 0, found ", cfg_.warmup);
    ITTT_CHECK(cfg_.grad_clip >= 0, "train: --grad-clip must be >= 0 (0 = off), found ", cfg_.grad_clip);
    ITTT_CHECK(std::isfinite(cfg_.ttt_lr_scale) && cfg_.ttt_lr_scale > 0, "train: --ttt-lr-scale must be > 0 and finite, found ", cfg_.ttt_lr_scale);
    ITTT_CHECK(cfg_.keep >= 1, "train: --keep must be >= 1, found ", cfg_.keep);
    cfg_.weights_format();  // a bad save_dtype is refused before the first step, not at the first save
    for (const Parameter& p : model_.parameters()) {  // frozen ones get none (undefined tensors)
        m_.push_back(p.trainable ? Tensor::zeros(p.value.shape(), p.value.dtype(), p.value.device()) : Tensor());
        v_.push_back(p.trainable ? Tensor::zeros(p.value.shape(), p.value.dtype(), p.value.device()) : Tensor());
    }
}

double scheduled_lr(const RunSettings& cfg, int64_t step) {
    if (cfg.warmup > 0 && step <= cfg.warmup) return cfg.lr * static_cast<double>(step) / static_cast<double>(cfg.warmup);
    int64_t decay_steps = cfg.steps - cfg.warmup;
    if (decay_steps <= 0) return cfg.lr;
    double progress = std::min(1.0, static_cast<double>(step - cfg.warmup) / static_cast<double>(decay_steps));
    double cosine = 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress));
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine);
}

double Trainer::lr_at(int64_t step) const { return scheduled_lr(cfg_, step); }

std::string Trainer::kept_text() const {
    if (last_checkpoint_step_ >= 0)
        return cat("the last checkpoint, ", last_checkpoint_, " (step ", last_checkpoint_step_, "), is kept");
    if (cfg_.out_dir.empty()) return "this run writes no checkpoints (no output directory)";
    return cat("no checkpoint of this run exists yet in ", cfg_.out_dir,
               cfg_.checkpoint_every > 0 ? "" : " (without --checkpoint-every one is written only at the end)");
}

void Trainer::stop(int64_t step, const std::string& why) const {
    fail(cat("training stopped at step ", step, ": ", why, "; nothing was saved for this step; ", kept_text()));
}

// The slots of Trainer::report_, an F64 tensor on the model's device. The step adds into
// them on the device and reads them all with one copy after the backward: on CUDA that copy
// is the step's only wait for the GPU (the counters in runtime/device.h show it).
constexpr int64_t kReportOverflow = 0;    // the previous update left a non-finite weight (CUDA: checked late)
constexpr int64_t kReportSumSquares = 1;  // sum of squares of every trained gradient
constexpr int64_t kReportBadGrads = 2;    // gradients holding NaN or Inf
constexpr int64_t kReportLoss = 3;        // then one loss sum per micro-batch

StepStats Trainer::step() {
    ITTT_NVTX_RANGE("train_step");
    const int64_t next = step_ + 1;
    auto t0 = std::chrono::steady_clock::now();
    // Draw every micro-batch first, on the host: the loss is a mean over all scored tokens of
    // the step, so each micro-batch's gradient is scaled by 1/total.
    std::vector<Tensor> tokens(static_cast<size_t>(cfg_.grad_accum)), targets(static_cast<size_t>(cfg_.grad_accum));
    std::vector<ForwardOptions> options(static_cast<size_t>(cfg_.grad_accum));  // each micro-batch's document boundaries
    int64_t scored = 0, n_tokens = 0;
    for (int mb = 0; mb < cfg_.grad_accum; ++mb) {
        batches_(next, mb, tokens[static_cast<size_t>(mb)], targets[static_cast<size_t>(mb)], options[static_cast<size_t>(mb)].document_starts);
        for (int32_t t : targets[static_cast<size_t>(mb)].to_i32_vector()) scored += t >= 0;
        n_tokens += tokens[static_cast<size_t>(mb)].numel();
    }
    ITTT_CHECK(scored > 0, "train: step ", next, " has no scored positions (every target is -1)");

    const int64_t report_size = kReportLoss + cfg_.grad_accum;
    if (!report_.defined() || report_.numel() != report_size) report_ = Tensor::zeros({report_size}, DType::F64, model_.device());
    model_.zero_grad();
    parallel::Context* cp = model_.context_parallel();
    for (int mb = 0; mb < cfg_.grad_accum; ++mb) {
        const Tensor& logits = model_.forward(tokens[static_cast<size_t>(mb)], options[static_cast<size_t>(mb)]);  // host ids: the model uploads them
        Tensor mb_targets = targets[static_cast<size_t>(mb)];
        if (cp) {  // context parallel: the logits are this rank's slice; so are the targets it scores
            const Tensor& t = tokens[static_cast<size_t>(mb)];
            mb_targets = parallel::local_slice(mb_targets.view({t.dim(0), t.dim(1)}), model_.slice_plan(), cp->rank()).view({logits.dim(0)});
        }
        Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
        ops::cross_entropy_into(report_, kReportLoss + mb, &dlogits, logits, mb_targets.to(model_.device()), mb_targets,
                                1.0 / static_cast<double>(scored));
        model_.backward(dlogits);
    }
    if (cp) parallel::allreduce_gradients(*cp, model_);  // each rank holds its slices' share
    std::vector<Tensor*> grads;
    for (Parameter& p : model_.parameters())
        if (p.trainable) grads.push_back(&p.grad);
    for (Tensor* g : grads) {
        ops::sum_squares_into(report_, kReportSumSquares, *g);
        ops::flag_nonfinite_into(report_, kReportBadGrads, *g);
    }
    const std::vector<double> report = report_.to_f64_vector();  // the one wait for the device

    if (report[kReportOverflow] > 0)
        stop(step_, cat("after the AdamW update (lr ", last_lr_, ") the weight ", first_nonfinite_parameter(model_), "; the update overflowed"));
    double loss_sum = 0;
    for (int mb = 0; mb < cfg_.grad_accum; ++mb) {
        double mb_loss = report[static_cast<size_t>(kReportLoss + mb)];
        if (cp) mb_loss = cp->allreduce_sum(mb_loss);  // the whole sequences' loss, on every rank
        if (!std::isfinite(mb_loss)) {
            // Name the culprit: a weight already holding NaN/Inf, else the first activation of
            // this micro-batch's forward that overflowed (run again: the weights are unchanged).
            std::string cause = first_nonfinite_parameter(model_);
            if (cause.empty()) {
                const Tensor& logits = model_.forward(tokens[static_cast<size_t>(mb)], options[static_cast<size_t>(mb)]);
                cause = cat("every weight is finite (the largest is ", largest_parameter(model_),
                            "); the first non-finite activation: ", first_nonfinite_activation(model_, logits));
            } else {
                cause = "the weight " + cause;
            }
            stop(next, cat("the loss is ", std::isnan(mb_loss) ? "NaN" : mb_loss > 0 ? "+Inf" : "-Inf", " (micro-batch ", mb, "); ", cause));
        }
        loss_sum += mb_loss;
    }
    if (report[kReportBadGrads] > 0) {
        // Every gradient that is not finite: one may be the cause, the rest its reach.
        std::string all;
        for (const Parameter& p : model_.parameters())
            if (p.trainable && !ops::all_finite(p.grad)) all += (all.empty() ? "'" : ", '") + p.name + "'";
        stop(next, cat("the loss is finite but ", first_nonfinite_gradient(model_), " (non-finite gradients: ", all, ")"));
    }
    StepStats s;
    s.grad_norm = std::sqrt(report[kReportSumSquares]);
    if (cfg_.grad_clip > 0) ops::clip_grads_to(grads, s.grad_norm, cfg_.grad_clip);
    s.lr = lr_at(next);
    auto& params = model_.parameters();
    for (size_t i = 0; i < params.size(); ++i) {
        if (!params[i].trainable) continue;
        ops::AdamWConfig ac;
        // The target's conv and P start at (near) zero and get no weight decay; a
        // larger step for them alone is one of the levers of docs/results.md section 1.
        ac.lr = params[i].name.find(".ttt_") != std::string::npos ? s.lr * cfg_.ttt_lr_scale : s.lr;
        ac.beta1 = cfg_.beta1;
        ac.beta2 = cfg_.beta2;
        ac.eps = cfg_.adam_eps;
        ac.weight_decay = params[i].weight_decay ? cfg_.weight_decay : 0.0;
        ops::adamw_step(params[i].value, params[i].grad, m_[i], v_[i], ac, next);
    }
    // A finite gradient can still overflow the update (a huge --lr): these weights must never
    // reach a checkpoint (save() checks every one). On the CPU the check is free and runs now;
    // on CUDA it is flagged on the device and read with the next step's report, so the step
    // does not wait for the GPU twice (the next forward then runs on them, and stops).
    report_.zero_();
    last_lr_ = s.lr;
    if (model_.device() == Device::CPU) {
        if (std::string bad = first_nonfinite_parameter(model_); !bad.empty())
            stop(next, cat("after the AdamW update (lr ", s.lr, ") the weight ", bad, "; the update overflowed"));
    } else {
        for (Parameter& p : params)
            if (p.trainable) ops::flag_nonfinite_into(report_, kReportOverflow, p.value);
    }
    step_ = next;
    check_tokens_ = tokens[0];
    check_options_ = options[0];
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
    std::FILE* log = cfg_.log;
    const bool tty = log && isatty(fileno(log));
    auto start = std::chrono::steady_clock::now();
    int64_t first = step_;
    while (step_ < cfg_.steps) {
        // Between steps: the save a step owed is done, so stopping here loses nothing written.
        if (cfg_.stop_requested && *cfg_.stop_requested) {
            stopped_by_ = static_cast<int>(*cfg_.stop_requested);
            break;
        }
        StepStats s = step();
        all.push_back(s);
        double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        double eta = elapsed / static_cast<double>(step_ - first) * static_cast<double>(cfg_.steps - step_);
        bool last = step_ == cfg_.steps;
        if (!log) {
        } else if (cfg_.json) {
            // Throughput and time to 0.1 token/s and 1 ms: digits beyond those are noise.
            JsonWriter line;
            line.begin_object().field("step", s.step).field("loss", s.loss).field("lr", s.lr).field("grad_norm", s.grad_norm);
            line.field("tokens_per_s", std::round(s.tokens_per_s * 10) / 10).field("elapsed_s", std::round(elapsed * 1000) / 1000);
            std::fprintf(log, "%s\n", line.end_object().text().c_str());
        } else if (tty || cfg_.log_every <= 0 || s.step % cfg_.log_every == 0 || last || s.step == first + 1) {
            std::fprintf(log, "%sstep %lld/%lld  loss %.4f  lr %.2e  gnorm %.3f  %.1fk tok/s  ETA %s%s", tty ? "\r" : "",
                         static_cast<long long>(s.step), static_cast<long long>(cfg_.steps), s.loss, s.lr, s.grad_norm,
                         s.tokens_per_s / 1000.0, format_duration(eta).c_str(), tty ? (last ? "\n" : "   ") : "\n");
        }
        if (log && (std::fflush(log) != 0 || std::ferror(log))) {
            // The reader went away (a closed pipe) or the disk is full: progress
            // is lost, the run is not. Say so once and go on without lines.
            const int error = errno;
            log = nullptr;
            if (cfg_.on_log_failure) cfg_.on_log_failure(error, step_);
            else
                std::fprintf(stderr, "ittt: cannot write progress lines (%s) at step %lld; training goes on without them\n",
                             std::strerror(error), static_cast<long long>(step_));
        }
        // Every rank of a context-parallel job calls save(): its checks are collective, rank 0 writes.
        if (!cfg_.out_dir.empty() && ((cfg_.checkpoint_every > 0 && step_ % cfg_.checkpoint_every == 0) || last)) save();
    }
    check_last_update();
    return all;
}

void Trainer::check_last_update() {
    if (!report_.defined() || model_.device() == Device::CPU) return;  // the CPU checks every update at once
    if (report_.to_f64_vector()[kReportOverflow] > 0)
        stop(step_, cat("after the AdamW update (lr ", last_lr_, ") the weight ", first_nonfinite_parameter(model_), "; the update overflowed"));
}

// ---------------------------------------------------------------- checkpoints

Json Trainer::recorded_settings() const { return settings_to_json(cfg_); }

void Trainer::check_saveable() {
    // Finite or refuse: step() never leaves non-finite weights behind, but a
    // checkpoint is the one thing that must not hold one, so check again.
    std::string bad = first_nonfinite_parameter(model_);
    for (size_t i = 0; bad.empty() && i < m_.size(); ++i) {
        if (!m_[i].defined()) continue;  // frozen
        const std::string& name = model_.parameters()[i].name;
        if (int64_t k = first_nonfinite(m_[i]); k >= 0) bad = cat("'", name, ".exp_avg' holds ", describe_nonfinite(m_[i], k));
        else if (int64_t j = first_nonfinite(v_[i]); j >= 0) bad = cat("'", name, ".exp_avg_sq' holds ", describe_nonfinite(v_[i], j));
    }
    ITTT_CHECK(bad.empty(), "refusing to write a checkpoint at step ", step_, ": ", bad, "; ", kept_text());
    // Finite but huge weights (an update of lr 1e38) are as broken as Inf ones:
    // the checkpoint must also give finite logits on the last batch it trained on.
    // Under context parallelism the forward is collective and each rank sees its
    // slice's logits: the verdict is summed over the ranks, so all stop together.
    if (check_tokens_.defined()) {
        const Tensor& logits = model_.forward(check_tokens_.to(model_.device()), check_options_);
        double non_finite = first_nonfinite(logits) >= 0 ? 1 : 0;
        if (parallel::Context* cp = model_.context_parallel()) non_finite = cp->allreduce_sum(non_finite);
        if (non_finite > 0)
            fail(cat("refusing to write a checkpoint at step ", step_, ": every weight is finite (the largest is ", largest_parameter(model_),
                     "), but they give non-finite logits on the step's own batch; the first non-finite activation: ",
                     first_nonfinite_activation(model_, logits), "; ", kept_text()));
    }
}

std::string Trainer::save(const std::string& run_dir) {
    ITTT_NVTX_RANGE("checkpoint_save");
    ITTT_CHECK(!run_dir.empty(), "Trainer::save: no run directory");
    check_saveable();
    // Every rank holds the same weights and optimizer state: rank 0 writes them.
    if (parallel::Context* cp = model_.context_parallel(); cp && cp->rank() != 0) return "";
    std::vector<NamedTensor> opt;
    const auto& params = model_.parameters();
    for (size_t i = 0; i < params.size(); ++i) {
        if (!m_[i].defined()) continue;  // frozen: no state
        opt.push_back({params[i].name + ".exp_avg", m_[i]});
        opt.push_back({params[i].name + ".exp_avg_sq", v_[i]});
    }
    Json state = Json::object();
    state.set("step", step_);
    state.set("settings", recorded_settings());
    try {
        last_checkpoint_ = save_run_checkpoint(run_dir, step_, model_.config(), model_weights(model_), &opt, &state, cfg_.keep, cfg_.weights_format());
    } catch (const Error& e) {
        fail(cat("cannot write the checkpoint of step ", step_, ": ", e.what(), "; ", kept_text()));
    }
    last_checkpoint_step_ = step_;
    return last_checkpoint_;
}

Json Trainer::resume(const std::string& path) {
    ITTT_NVTX_RANGE("checkpoint_resume");
    const std::string dir = resolve_checkpoint(path).dir;
    std::vector<std::pair<std::string, Tensor*>> weights, moments;
    auto& params = model_.parameters();
    for (size_t i = 0; i < params.size(); ++i) {
        weights.push_back({params[i].name, &params[i].value});
        if (!m_[i].defined()) continue;
        moments.push_back({params[i].name + ".exp_avg", &m_[i]});
        moments.push_back({params[i].name + ".exp_avg_sq", &v_[i]});
    }
    ITTT_CHECK(checkpoint_has_optimizer_state(dir) && checkpoint_has_trainer_state(dir), "--resume ", dir,
               ": the checkpoint has no optimizer.safetensors or trainer_state.json (written by `ittt init`, not `ittt train`?)");
    Json state = load_checkpoint_trainer_state(dir);
    const int64_t step = state.at("step").as_int64();
    // The name of a step directory decides which checkpoint is newest and which
    // --keep prunes: one that disagrees with the state inside would resume an
    // older step and then prune newer ones.
    if (std::optional<int64_t> named = run_checkpoint_step(base_name(dir)); named && *named != step)
        fail(cat("--resume ", dir, ": its trainer_state.json says step ", step, ", but the directory is named for step ", *named,
                 " (renamed or copied by hand?); refusing to resume, since the names decide which checkpoint is newest and which "
                 "--keep removes: rename it ", run_checkpoint_name(step), " or remove it"));
    ITTT_CHECK(step >= 0 && step <= cfg_.steps, "--resume ", dir, ": checkpoint is at step ", step, ", but --steps is ", cfg_.steps);
    load_checkpoint_weights(dir, weights);
    // Moments of a frozen tensor (older checkpoints kept zeros for the fixed targets)
    // are not state of this run: dropped; every trained tensor's must be there.
    SafetensorsFile opt_file = load_checkpoint_optimizer_state(dir);
    std::vector<NamedTensor>& stored = opt_file.tensors;
    stored.erase(std::remove_if(stored.begin(), stored.end(),
                                [&](const NamedTensor& t) {
                                    for (size_t i = 0; i < params.size(); ++i)
                                        if (!m_[i].defined() && (t.name == params[i].name + ".exp_avg" || t.name == params[i].name + ".exp_avg_sq"))
                                            return true;
                                    return false;
                                }),
                 stored.end());
    load_into(opt_file, checkpoint_optimizer_path(dir), moments, "the trained parameters");
    if (std::string bad = first_nonfinite_parameter(model_); !bad.empty())
        fail(cat("--resume ", dir, ": tensor ", bad, " in model.safetensors; refusing to continue from non-finite weights"));
    step_ = step;
    last_checkpoint_ = dir;
    last_checkpoint_step_ = step;
    return state;
}

}  // namespace ittt
