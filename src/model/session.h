// session.h: streaming decode with a KV cache and In-Place TTT state.
//
// State per TTT layer: the current fast weight W (d x f) and the unfinished
// chunk's rows of Z and S_src. A token's MLP output uses the current W; when
// the buffer holds C rows, that chunk's delta (with the chunk-local conv) is
// folded into W and the buffer empties (docs/method.md section 4). So the TTT state
// is O(d*f + C*(d+f)) per layer whatever the sequence length.
//
// Tokens fed after the start (a prompt arriving mid-stream, or decode's one token)
// go through the layers together: every projection, the attention over the cache and
// the MLP run on all m rows at once; a TTT layer applies its fast weight to each
// chunk's rows in one product and folds each completed chunk in before the next, which
// is the decode math in the decode order, so feeding m tokens at once gives the same
// numbers as feeding them one by one.
//
//   Session s(model);
//   Tensor logits = s.prefill({1, 5, 9});   // (3, V), parallel form (Model::forward)
//   Tensor more = s.prefill({4, 4, 2, 8});  // (4, V), mid-stream: all four rows at once
//   Tensor next = s.decode(7);              // (V), one token
//   s.reset();                              // document boundary
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.h"

namespace ittt {

// One fast-weight update: TTT layer `layer` folded chunk `chunk` (positions
// [chunk*C, (chunk+1)*C)) into its W.
struct TttUpdate {
    int layer = 0, chunk = 0;
    double norm = 0;     // ||eta dW||_F of the chunk's delta, before clipping
    double applied = 0;  // ||eta dW||_F as folded in: tau when clipped, else norm
    bool clipped = false;  // ttt_clip_tau > 0 and norm > tau
};

class Session {
public:
    explicit Session(Model& model);

    // Feeds tokens from the current position and returns their logits (len, V).
    // At position 0 this runs the parallel form once (Model::forward); later, the
    // tokens go through the layers together (see above).
    Tensor prefill(const std::vector<int32_t>& tokens);
    // One token at the current position: logits (V).
    Tensor decode(int32_t token);
    // Document boundary: empty KV caches, fast weights back to the slow Wd.
    void reset();

    int position() const { return pos_; }
    // Current fast weight of layer l (a TTT layer): (d, f).
    const Tensor& fast_weight(int l) const;
    // Rows waiting in layer l's chunk buffer.
    int buffered_rows(int l) const;
    // Bytes of TTT state (fast weights + chunk buffers) over all layers.
    size_t ttt_state_bytes() const;
    // Frobenius norm of eta*dW of the last chunk update of layer l (0 before any), after clipping.
    double last_update_norm(int l) const;
    // Every chunk update since the start or the last reset(), in order (layers by chunk).
    const std::vector<TttUpdate>& updates() const { return updates_; }

private:
    struct LayerState {
        Tensor k_cache, v_cache;  // (1, cap, Hkv, hd)
        Tensor W;                 // (d, f) fast weight (TTT layers)
        Tensor z_buf, src_buf;    // (C, f), (C, d)
        int buffered = 0;
        int chunks_done = 0;      // chunks folded into W so far
        double last_update_norm = 0;
    };
    void ensure_capacity(int needed);
    // tokens at positions pos_ .. pos_+m-1, all layers, rows together: logits (m, V).
    Tensor extend(const std::vector<int32_t>& tokens);
    // out = z @ W^T in chunk segments, buffering rows and folding full chunks (TTT layer l).
    void ttt_mlp_rows(int l, Tensor& out, const Tensor& z, const Tensor& src);
    void flush_chunk(int l);
    void record_update(int l, int chunk, double norm, double applied);
    Tensor new_tensor(const Shape& s) const;

    Model& model_;
    std::vector<LayerState> layers_;
    std::vector<TttUpdate> updates_;
    int pos_ = 0;
    int cap_ = 0;
};

}  // namespace ittt
