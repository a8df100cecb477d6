// embedding.h: token embedding lookup and its gradient, on the CPU and GPU.
//
//   forward:  out[t, :] = table[tokens[t], :]
//   backward: dtable[tokens[t], :] += dout[t, :]   for every t (repeated ids add up)
//
// One version on the CPU, two on CUDA (their rows: src/ops/embedding.cpp, `build/ittt info
// --kernels`); the two CUDA versions share the forward's gather and differ in the backward.
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

// ---- CUDA (embedding.cu), F32; every pointer is device memory ----

// out: (n_tokens, dim); table: (vocab, dim); tokens: (n_tokens), each in [0, vocab)
void embedding_forward_cuda(float* out, const float* table, const int32_t* tokens, int64_t n_tokens, int64_t dim);

// dtable: (vocab, dim), accumulated; dout: (n_tokens, dim); tokens: (n_tokens), each in [0, vocab).
using EmbeddingBackwardCuda = void(float* dtable, const float* dout, const int32_t* tokens, int64_t n_tokens, int64_t vocab,
                                   int64_t dim);
// One thread per element, float atomicAdd: repeated ids add in whatever order the threads
// arrive, so the bits can change from run to run.
EmbeddingBackwardCuda embedding_backward_atomic_cuda;
// Sorts the ids (stable), then one block per vocab row adds its tokens' rows in token order:
// the same bits every run, and the same bits as the CPU (exact --resume needs that).
EmbeddingBackwardCuda embedding_backward_sorted_cuda;

}  // namespace ittt::kernels
