// Lab 07's reference solutions. Try the exercises in lab.cpp before you read this.
#include "model/model.h"
#include "ops/ops.h"

#include "../lab_util.h"
#include "profile.h"

LAB_SOLUTION_FILE;

namespace solution {

using namespace ittt;

// The forward's three steps, backwards: Wbar_i = dO_[i]^T Z_[i] (the chunk-delta op with dO in V's
// place), G_i = sum_{j>i} Wbar_j (the scan, reversed), then dZ and dV from the apply's backward.
bool profile_ttt_backward(Profile& prof, const Model& m, int l, const Shapes& s, const Tensor& dO, Tensor& dZ, Tensor& dV) {
    const ModelConfig& c = m.config();
    const LayerActivations& a = m.activations(l);
    const int C = c.ttt_chunk;
    const int64_t T = (s.n + C - 1) / C;
    Tensor Wbar = Tensor::empty({s.B, T, s.d, s.f}), G = Tensor::empty({s.B, T, s.d, s.f});
    Tensor z = a.z.view({s.B, s.n, s.f}), v = a.ttt_v.view({s.B, s.n, s.d});
    prof.time("ttt: delta (backward)", [&] { ops::ttt_chunk_delta(Wbar, dO, z, C); });
    prof.time("ttt: scan (backward)", [&] { ops::prefix_scan_exclusive(G, Wbar, true); });
    prof.time("ttt: apply (backward)", [&] { ops::ttt_apply_backward(dZ, dV, dO, z, v, m.layer(l).down_proj, a.ttt_s, G, c.ttt_lr, C); });
    return true;
}

}  // namespace solution
