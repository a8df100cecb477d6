#include "parallel/traffic_model.h"

namespace ittt::parallel {

LayerTraffic predicted_layer_traffic(const ModelConfig& cfg, int layer, const SlicePlan& plan, int rank, int64_t batch,
                                     size_t element_bytes, bool backward) {
    LayerTraffic t;
    const int R = plan.ranks;
    const int64_t e = static_cast<int64_t>(element_bytes);
    const int64_t kv_row = 2 * batch * cfg.num_key_value_heads * cfg.head_dim * e;  // keys + values of one position
    if (cfg.is_ttt_layer(layer)) {
        const int64_t message = batch * static_cast<int64_t>(cfg.hidden_size) * cfg.intermediate_size * e;
        for (int dist = 1; dist < R; dist *= 2)
            if (backward ? rank - dist >= 0 : rank + dist < R) t.scan += message;
    }
    const int window = cfg.window_for_layer(layer);
    if (window > 0) {
        const auto pieces = backward ? plan.halo_sources(rank, window) : plan.halo_destinations(rank, window);
        for (const SlicePlan::Piece& p : pieces) t.halo += (p.end - p.begin) * kv_row;
    } else {
        if (rank + 1 < R)
            for (int j = 0; j <= rank; ++j) t.ring += plan.length(j) * kv_row;
        if (backward)
            for (int j = 0; j < rank; ++j) t.ring += plan.length(j) * kv_row;
    }
    return t;
}

}  // namespace ittt::parallel
