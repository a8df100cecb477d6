// session.h: streaming decode with a KV cache and In-Place TTT state.
//
// State per TTT layer: the current fast weight W (d x f) and the unfinished
// chunk's rows of Z and S_src. A token's MLP output uses the current W; when
// the buffer holds C rows, that chunk's delta (with the chunk-local conv) is
// folded into W and the buffer empties (docs/method.md section 4). So the TTT state
// is O(d*f + C*(d+f)) per layer whatever the sequence length.
//
//   Session s(model);
//   Tensor logits = s.prefill({1, 5, 9});   // (3, V), parallel form
//   Tensor next = s.decode(7);              // (V), one token
//   s.reset();                              // document boundary
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.h"

namespace ittt {

class Session {
public:
    explicit Session(Model& model);

    // Feeds tokens from the current position and returns their logits (len, V).
    // At position 0 this runs the parallel form once; later it decodes token by token.
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
    // Frobenius norm of eta*dW of the last chunk update of layer l (0 before any).
    double last_update_norm(int l) const;

private:
    struct LayerState {
        Tensor k_cache, v_cache;  // (1, cap, Hkv, hd)
        Tensor W;                 // (d, f) fast weight (TTT layers)
        Tensor z_buf, src_buf;    // (C, f), (C, d)
        int buffered = 0;
        double last_update_norm = 0;
    };
    void ensure_capacity(int needed);
    void flush_chunk(int l);
    Tensor new_tensor(const Shape& s) const;

    Model& model_;
    std::vector<LayerState> layers_;
    int pos_ = 0;
    int cap_ = 0;
};

}  // namespace ittt
