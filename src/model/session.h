// session.h: streaming inference, the model's own forward with a state (llama2.c's
// forward(transformer, token, pos)).
//
// The state (ForwardState, model.h) holds every layer's KV cache and, per TTT layer, the
// current fast weight W (d x f) and the unfinished chunk's rows of Z and S_src. Each call
// runs Model::forward on the new tokens with that state: attention over the cache, and the
// TTT layers' chunk loop continued from W, folding in each chunk as it completes
// (docs/method.md section 4, docs/ttt.md). The TTT state is O(d*f + C*(d+f)) per layer
// whatever the sequence length. Within a chunk every row sees the same W and every product
// computes a row independently of the others, so feeding m tokens at once gives the numbers
// of feeding them one by one, bit for bit.
//
//   Session s(model);
//   Tensor logits = s.prefill({1, 5, 9});   // (3, V)
//   Tensor more = s.prefill({4, 4, 2, 8});  // (4, V), mid-stream: all four rows at once
//   Tensor next = s.decode(7);              // (V), one token
//   s.reset();                              // document boundary
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.h"

namespace ittt {

class Session {
public:
    explicit Session(Model& model) : model_(model), state_(model.start_state()) {}

    // Feeds tokens from the current position and returns their logits (len, V).
    Tensor prefill(const std::vector<int32_t>& tokens);
    // One token at the current position: logits (V).
    Tensor decode(int32_t token);
    // Document boundary: empty KV caches, fast weights back to the slow Wd.
    void reset() { state_ = model_.start_state(); }

    int position() const { return state_.position; }
    // Current fast weight of layer l (a TTT layer): (d, f).
    const Tensor& fast_weight(int l) const;
    // Rows waiting in layer l's chunk buffer.
    int buffered_rows(int l) const { return state_.layers[static_cast<size_t>(l)].buffered; }
    // Bytes of TTT state (fast weights + chunk buffers) over all layers.
    size_t ttt_state_bytes() const;
    // Frobenius norm of eta*dW of the last chunk update of layer l (0 before any), after clipping.
    double last_update_norm(int l) const;
    // Every chunk update since the start or the last reset(), in order (layers by chunk).
    const std::vector<TttUpdate>& updates() const { return state_.updates; }

private:
    Model& model_;
    ForwardState state_;
};

}  // namespace ittt
