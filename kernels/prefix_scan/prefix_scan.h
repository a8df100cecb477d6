// prefix_scan.h: exclusive scan along the chunk axis of (B, T, m).
//
//   forward:  out[b,i,:] = sum_{j < i} in[b,j,:]     (S_i from the deltas, forward pass)
//   reverse:  out[b,i,:] = sum_{j > i} in[b,j,:]     (G_i from the Wbar_i, backward pass)
//
// The TTT shape is "short scan over a very wide array": T = n / C is a handful
// of chunks while m = d * f is large, so the parallelism is across m (and b)
// and each column is scanned sequentially. Each output is the previous output
// plus one input, in chunk order, so the result is bit-identical to a plain
// sequential loop.
//
// One version per device; their rows (idea, kernels, test tolerance): prefix_scan_versions.h.
//
// For the labs, the other kind of scan: ONE long 1-D array (n up to ~1e9), where
// the parallelism must come from the scan direction itself. Two GPU versions with
// their own launchers (not used by the model; tests "[cuda][prefix_scan]"):
//   prefix_scan_1d_blelloch_cuda   work-efficient block scan (up-sweep / down-sweep),
//                                  block totals scanned recursively, then added back
//   prefix_scan_1d_lookback_cuda   one pass: each block waits only for its predecessors'
//                                  published totals (decoupled look-back)
#pragma once
#include <cstdint>

namespace ittt::kernels {

// out: (B, T, m) overwritten; in: (B, T, m), not overlapping out.
template <class T>
void prefix_scan_exclusive_cpu(T* out, const T* in, int64_t batch, int64_t n_chunks, int64_t m, bool reverse);

// ---- CUDA (prefix_scan.cu), F32, device pointers ----

// out: (B, T, m) overwritten; in: (B, T, m), not overlapping out.
void prefix_scan_exclusive_cuda(float* out, const float* in, int64_t batch, int64_t n_chunks, int64_t m, bool reverse);

// Long 1-D exclusive scans, out[i] = sum_{j<i} in[j]: out, in: (n), not overlapping.
// Each needs a device workspace of the size its *_workspace_bytes(n) returns.
int64_t prefix_scan_1d_blelloch_workspace_bytes(int64_t n);
void prefix_scan_1d_blelloch_cuda(float* out, const float* in, int64_t n, void* workspace);
int64_t prefix_scan_1d_lookback_workspace_bytes(int64_t n);
void prefix_scan_1d_lookback_cuda(float* out, const float* in, int64_t n, void* workspace);

}  // namespace ittt::kernels
