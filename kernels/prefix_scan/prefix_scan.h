// prefix_scan.h: exclusive scan along the chunk axis of (B, T, m).
//
//   forward:  out[b,i,:] = sum_{j < i} in[b,j,:]     (S_i from the deltas, forward pass)
//   reverse:  out[b,i,:] = sum_{j > i} in[b,j,:]     (G_i from the P_i, backward pass)
//
// The TTT shape is "short scan over a very wide array": T = n / C is a handful
// of chunks while m = d * f is large, so the parallelism is across m (and b)
// and each column is scanned sequentially. Each output is the previous output
// plus one input, in chunk order, so the result is bit-identical to a plain
// sequential loop.
//
// Versions (ops::set_version("prefix_scan", v)):
//   1  prefix_scan_exclusive_cpu   column blocks in parallel, sequential along T
//   0  the best CPU version (currently 1)
#pragma once
#include <cstdint>

namespace ittt::kernels {

// out: (B, T, m) overwritten; in: (B, T, m), not overlapping out.
template <class T>
void prefix_scan_exclusive_cpu(T* out, const T* in, int64_t batch, int64_t n_chunks, int64_t m, bool reverse);

}  // namespace ittt::kernels
