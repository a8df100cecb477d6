#include "model/session.h"

#include "runtime/nvtx.h"

namespace ittt {

Tensor Session::prefill(const std::vector<int32_t>& tokens) {
    ITTT_NVTX_RANGE("session_prefill");
    ITTT_CHECK(!tokens.empty(), "prefill: no tokens");
    ForwardOptions opt;
    opt.inference = true;
    return model_.forward(Tensor::from_vector(tokens, {1, static_cast<int64_t>(tokens.size())}), opt, &state_).clone();
}

Tensor Session::decode(int32_t token) {
    ITTT_NVTX_RANGE("session_decode");
    return prefill({token}).view({model_.config().vocab_size});
}

const Tensor& Session::fast_weight(int l) const {
    ITTT_CHECK(model_.config().is_ttt_layer(l), "fast_weight: layer ", l, " is not a TTT layer");
    return state_.layers[static_cast<size_t>(l)].w;
}

double Session::last_update_norm(int l) const {
    for (auto u = state_.updates.rbegin(); u != state_.updates.rend(); ++u)
        if (u->layer == l) return u->applied;
    return 0;
}

size_t Session::ttt_state_bytes() const {
    size_t b = 0;
    for (const ForwardState::Layer& s : state_.layers)
        if (s.w.defined()) b += s.w.bytes() + s.z_chunk.bytes() + s.src_chunk.bytes();
    return b;
}

}  // namespace ittt
