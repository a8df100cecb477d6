// model_ranks.h: one Model held by every rank of a context-parallel run
// (docs/parallelism.md): the check that the ranks really hold the same model, and
// the sum of its gradients over the ranks after a backward.
//
// These take a whole Model, so they live here, above src/parallel/: parallel moves
// tensors between ranks and knows nothing of models (docs/architecture.md, layers).
#pragma once
#include "model/model.h"
#include "parallel/context.h"

namespace ittt::parallel {

// Sums every trainable parameter's grad over the ranks (Traffic::Gradients); after it
// every rank holds the single-process gradient, bit for bit the same on every rank.
void allreduce_gradients(Context& ctx, Model& model);

// Throws the same Error on every rank unless all ranks hold the same model: config,
// dtype, device and a hash of every parameter's bytes.
void require_same_model(Context& ctx, const Model& model);

}  // namespace ittt::parallel
