// trainer.h: AdamW training with warm-up + cosine schedule, gradient clipping,
// gradient accumulation, NaN/Inf guards, checkpoints and exact resume.
//
// Data comes from a callback that must be a pure function of (step, micro):
// that, plus the optimizer state in the checkpoint, is what makes --resume
// reproduce an uninterrupted run exactly.
//
// Checkpoints go to a run directory (io/checkpoint.h): out_dir/step-N, each
// published whole, the newest `keep` kept. Finite or refuse: a step whose
// loss, gradient or updated weights hold a NaN or Inf stops training with an
// Error naming the step, the first such tensor and index, and the checkpoint
// that is kept (or that none exists); no checkpoint ever holds a non-finite value.
#pragma once
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/json.h"
#include "model/model.h"
#include "train/run_settings.h"

namespace ittt {

// The recorded settings (train/run_settings.h: the schedule, the optimizer,
// the cadence and what the command line adds), and how this process runs.
struct TrainConfig : RunSettings {
    std::string out_dir;            // the run directory (empty: no checkpoints)
    bool json = false;              // JSON lines instead of the progress line
    std::FILE* log = stdout;        // progress lines go here; nullptr: silent
    // A progress line that cannot be written (stdout closed, a full disk) does
    // not stop training: the lines stop, and this is called once with the errno
    // and the step (nullptr: one line on stderr says so).
    std::function<void(int error, int64_t step)> on_log_failure;
    // Checked between steps: when it points at a nonzero value (the number of
    // the signal that asked, set by a handler), run() returns after the step in
    // progress and any save it owes; stopped_by() then says which.
    const volatile std::sig_atomic_t* stop_requested = nullptr;
};

// Learning rate of optimizer step `step` (1-based): linear warm-up to cfg.lr,
// then cosine down to cfg.lr * cfg.min_lr_ratio at step cfg.steps.
double scheduled_lr(const RunSettings& cfg, int64_t step);

// Fills tokens (B, n) I32 and targets (B*n) I32 (-1 = unscored) for one micro-batch.
using BatchFn = std::function<void(int64_t step, int micro, Tensor& tokens, Tensor& targets)>;
// The same, and the micro-batch's document boundaries (ForwardOptions::document_starts:
// B lists of document starts, or none when it has no boundaries), which the forward honours.
using DocumentBatchFn =
    std::function<void(int64_t step, int micro, Tensor& tokens, Tensor& targets, std::vector<std::vector<int>>& document_starts)>;

struct StepStats {
    int64_t step = 0;      // 1-based number of the optimizer step just taken
    double loss = 0;       // mean over scored tokens of the whole step
    double grad_norm = 0;  // before clipping
    double lr = 0;
    double tokens_per_s = 0;
    int64_t scored = 0;
};

// Frozen parameters (Parameter::trainable false: the fixed targets, or those
// --train-only leaves out) get no optimizer state, no update and no weight
// decay: a checkpoint holds them byte for byte as they were loaded, and its
// optimizer.safetensors has moments only for the trained ones.
class Trainer {
public:
    Trainer(Model& model, const TrainConfig& cfg, BatchFn batches);
    Trainer(Model& model, const TrainConfig& cfg, DocumentBatchFn batches);

    // Learning rate for optimizer step `step` (1-based).
    double lr_at(int64_t step) const;
    // Runs until cfg.steps, or until a stop is requested (cfg.stop_requested);
    // returns the stats of every step taken in this call.
    std::vector<StepStats> run();
    // The signal that stopped run() early, or 0.
    int stopped_by() const { return stopped_by_; }
    // Takes one optimizer step (grad_accum micro-batches). On CUDA, whether the update left a
    // non-finite weight is read with the next step's numbers (one wait for the GPU per step):
    // the next step(), save(), run()'s end or check_last_update() stops then, naming this step.
    StepStats step();
    void check_last_update();

    // Restores weights, optimizer state and step count from a checkpoint: a
    // run directory (its newest complete checkpoint) or one checkpoint
    // directory. The step is trainer_state.json's; a step-N directory whose N
    // differs from it (renamed by hand) is refused, since its name decides
    // what is newest and what --keep prunes. Returns the trainer_state.json it read.
    Json resume(const std::string& path);
    // Writes run_dir/step-N (weights, optimizer state, trainer state) and
    // prunes to cfg.keep; returns the directory. Refuses non-finite values.
    // Under context parallelism every rank calls it (its checks are
    // collective); rank 0 writes, the others return "".
    std::string save(const std::string& run_dir);
    std::string save() { return save(cfg_.out_dir); }
    int64_t steps_done() const { return step_; }
    // The checkpoint this run last wrote or resumed from ("" if none).
    const std::string& last_checkpoint() const { return last_checkpoint_; }
    // Every setting recorded in trainer_state.json: settings_to_json of the config.
    Json recorded_settings() const;
    // "the last checkpoint, D/step-4 (step 4), is kept" or why there is none.
    std::string kept_text() const;

private:
    // Every weight and moment finite, and finite logits on the last step's batch.
    void check_saveable();
    [[noreturn]] void stop(int64_t step, const std::string& why) const;

    Model& model_;
    TrainConfig cfg_;
    DocumentBatchFn batches_;
    std::vector<Tensor> m_, v_;  // AdamW moments, one per parameter
    int64_t step_ = 0;
    std::string last_checkpoint_;
    int64_t last_checkpoint_step_ = -1;
    Tensor check_tokens_;  // the last step's first micro-batch: save() runs it once more
    ForwardOptions check_options_;  // and its document boundaries
    int stopped_by_ = 0;
    // What a step needs from the device, kept there and read with one copy per step (on CUDA
    // the step's only wait for the GPU): see kReport* in trainer.cpp.
    Tensor report_;
    double last_lr_ = 0;  // the lr of the last update, for a late report of its overflow

};


}  // namespace ittt
