// memory_budget.h: refuse a request that cannot fit before allocating it.
//
// A batch of 10^8 sequences or a config with 10^6 heads must end in one line
// that says how much it needs and how much there is, not in std::bad_alloc
// after a minute of swapping. The estimates count the big buffers (parameters,
// the activations Model::forward keeps, logits); they are approximate (about
// +-30%) and meant to catch requests that are off by orders of magnitude.
//
//   require_memory(forward_bytes(cfg, B, n, /*training=*/false), cat("a forward of ", B, " x ", n, " tokens"));
#pragma once
#include <cstdint>
#include <string>

#include "io/model_config.h"

namespace ittt {

// MemAvailable from /proc/meminfo (physical memory where that is missing).
double available_memory_bytes();
// "1.5 GiB", "320 MiB".
std::string format_bytes(double bytes);
// Throws "needs about X for <what>, but this machine has Y available" when
// bytes > available_memory_bytes().
void require_memory(double bytes, const std::string& what);

// Parameters of a config (computed in double: no overflow for absurd configs).
double parameter_count(const ModelConfig& cfg);
// Bytes of what Model::forward keeps for B sequences of n tokens in F32 (the
// backward's buffers too when training).
// A TTT layer is counted in its parallel form: it keeps S and the deltas, 2 (d x f) per chunk.
double forward_bytes(const ModelConfig& cfg, int64_t B, int64_t n, bool training);
// The same with each TTT layer keeping ttt_floats_per_sequence floats for its fast weights.
double forward_bytes(const ModelConfig& cfg, int64_t B, int64_t n, bool training, double ttt_floats_per_sequence);
// The same for this model's TTT form at n (Model::resolve_ttt_form): S and the deltas
// (parallel), every W_i (loop) or one W (flat). Defined beside resolve_ttt_form in
// model/ttt_layer.cpp, so that this file's estimates link without the model (the fuzz targets).
class Model;
double forward_bytes(const Model& model, int64_t B, int64_t n, bool training);

}  // namespace ittt
