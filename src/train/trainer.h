// trainer.h: AdamW training with warm-up + cosine schedule, gradient clipping,
// gradient accumulation, NaN/Inf guards, checkpoints and exact resume.
//
// Data comes from a callback that must be a pure function of (step, micro):
// that, plus the optimizer state in the checkpoint, is what makes --resume
// reproduce an uninterrupted run exactly.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"

namespace ittt {

struct TrainConfig {
    int64_t steps = 200;
    int grad_accum = 1;             // micro-batches per optimizer step
    double lr = 3e-3;               // peak learning rate
    double min_lr_ratio = 0.1;      // cosine decays to lr * min_lr_ratio
    int64_t warmup = 20;            // linear warm-up steps
    double weight_decay = 0.1;      // decoupled, matrices only
    double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
    double grad_clip = 1.0;         // global L2 norm; <= 0 off
    int64_t checkpoint_every = 0;   // 0: only at the end
    int64_t log_every = 10;
    std::string out_dir;            // checkpoints go here (empty: none)
    bool json = false;              // JSON lines instead of the progress line
};

// Fills tokens (B, n) I32 and targets (B*n) I32 (-1 = unscored) for one micro-batch.
using BatchFn = std::function<void(int64_t step, int micro, Tensor& tokens, Tensor& targets)>;

struct StepStats {
    int64_t step = 0;      // 1-based number of the optimizer step just taken
    double loss = 0;       // mean over scored tokens of the whole step
    double grad_norm = 0;  // before clipping
    double lr = 0;
    double tokens_per_s = 0;
    int64_t scored = 0;
};

class Trainer {
public:
    Trainer(Model& model, const TrainConfig& cfg, BatchFn batches);

    // Learning rate for optimizer step `step` (1-based).
    double lr_at(int64_t step) const;
    // Runs until cfg.steps; returns the stats of every step taken in this call.
    std::vector<StepStats> run();
    // Takes one optimizer step (grad_accum micro-batches).
    StepStats step();

    // Restores weights, optimizer state and step count from a checkpoint directory.
    void resume(const std::string& dir);
    // Writes a checkpoint (weights, optimizer state, trainer state) to dir.
    void save(const std::string& dir) const;
    int64_t steps_done() const { return step_; }

private:
    Model& model_;
    TrainConfig cfg_;
    BatchFn batches_;
    std::vector<Tensor> m_, v_;  // AdamW moments, one per parameter
    int64_t step_ = 0;
};

}  // namespace ittt
