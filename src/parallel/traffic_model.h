// traffic_model.h: the bytes a rank sends per layer under context parallelism, by
// formula: the cost model of docs/parallelism.md. tests/mpi/cp_check.cpp checks it
// against the counted bytes of real runs (parallel::TrafficCounter), byte for byte,
// and the docs extrapolate it to long sequences on many GPUs.
//
// With B sequences, element size e, slice lengths n_j, KV width Hkv*hd:
//   TTT layer   forward: one d x f message per sequence in each round of the log-step
//               scan in which this rank has a partner after it: B d f e per round;
//               backward: the same with the partners before it (the reverse scan)
//   sliding w   forward: the keys and values its later ranks need, 2 B Hkv hd e per row
//               (at most w - 1 rows to each); backward: the same rows' gradients, sent
//               by the other side (what it received, it returns)
//   full        forward: the blocks of ranks 0 .. r, passed on to r + 1 (none from the
//               last rank), 2 B n_j Hkv hd e each; backward: those again, plus the dk, dv
//               share of each earlier block, returned to its owner
#pragma once
#include <cstddef>
#include <cstdint>

#include "io/model_config.h"
#include "parallel/slice_plan.h"

namespace ittt::parallel {

struct LayerTraffic {
    int64_t scan = 0, halo = 0, ring = 0;  // bytes sent by one rank
};

LayerTraffic predicted_layer_traffic(const ModelConfig& cfg, int layer, const SlicePlan& plan, int rank, int64_t batch,
                                     size_t element_bytes, bool backward);

}  // namespace ittt::parallel
