// embedding.h: token embedding lookup and its gradient, on the CPU.
//
//   forward:  out[t, :] = table[tokens[t], :]
//   backward: dtable[tokens[t], :] += dout[t, :]   for every t (repeated ids add up)
//
// Versions (ops::set_version("embedding", v)):
//   1  embedding_*_cpu   row copy; backward blocked over columns (see below)
//   0  the best CPU version (currently 1)
//
// The kernels trust their ids: src/ops/embedding.cpp checks every id is in
// [0, vocab) first, so that an error names the position instead of corrupting memory.
#pragma once
#include <cstdint>

namespace ittt::kernels {

// out: (n_tokens, dim); table: (vocab, dim); tokens: (n_tokens), each in [0, vocab)
template <class T>
void embedding_forward_cpu(T* out, const T* table, const int32_t* tokens, int64_t n_tokens, int64_t dim);

// dtable: (vocab, dim), accumulated; dout: (n_tokens, dim); tokens: (n_tokens), each in [0, vocab)
template <class T>
void embedding_backward_cpu(T* dtable, const T* dout, const int32_t* tokens, int64_t n_tokens, int64_t dim);

}  // namespace ittt::kernels
