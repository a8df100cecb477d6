// finite.h: finite or refuse. Where a NaN or an Inf first shows up, named.
//
// A non-finite number never leaves the program as an answer: training does not
// save it, loading does not accept it, and logits holding one stop forward,
// eval, generate and step with an error that names the tensor and the first
// bad index. These helpers find and describe that first element.
//
//   int64_t i = first_nonfinite(t);              // -1 when every element is finite
//   std::string where = first_nonfinite_parameter(model);   // "" when all are finite
//   require_finite_logits(model, logits, "forward");        // throws, naming what went wrong
#pragma once
#include <cstdint>
#include <string>

#include "model/model.h"

namespace ittt {

// The flat index of the first NaN / +-Inf element, or -1 (any float dtype, any device).
int64_t first_nonfinite(const Tensor& t);
// "NaN at index 5 (element [0, 5])": what is there and where. index >= 0.
std::string describe_nonfinite(const Tensor& t, int64_t index);

// "'<name>' holds NaN at index 5 (element [0, 5])" for the first parameter
// (in parameters() order) that is not finite; "" when every one is.
std::string first_nonfinite_parameter(const Model& m);
std::string first_nonfinite_gradient(const Model& m);
// "the gradient of '<name>' holds ..." likewise.
// The same over the activations the last forward kept, in the order they were
// computed (embeddings, then each layer's q, k, v, attention, MLP, TTT
// targets, then the logits): the first one is where the overflow began.
std::string first_nonfinite_activation(const Model& m, const Tensor& logits);
// The largest |value| over the parameters and whose it is: "'<name>' (3.1e+30)".
std::string largest_parameter(const Model& m);

// Throws an Error when `logits` (rows = positions) hold a NaN or Inf:
//   "<what>: the logits are not finite: NaN at position 3 (token id 17 of the
//    vocabulary); the first non-finite activation is layer 0 ..."
// `model` must be the one that produced the logits in its last forward (for
// the activation search); pass nullptr when it kept none (streaming decode).
void require_finite_logits(const Model* model, const Tensor& logits, const std::string& what);

}  // namespace ittt
