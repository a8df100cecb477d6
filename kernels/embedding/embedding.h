// embedding.h: token embedding lookup and its gradient, on the CPU and GPU.
//
//   forward:  out[t, :] = table[tokens[t], :]
//   backward: dtable[tokens[t], :] += dout[t, :]   for every t (repeated ids add up)
//
// Versions (ops::set_version("embedding", v)):
//   CPU   1  embedding_*_cpu   row copy; backward blocked over columns (see below)
//         0  the best CPU version (currently 1)
//   CUDA  1  one thread per element; backward by float atomicAdd: repeated ids add in
//            whatever order the threads arrive, so the bits can change from run to run
//         2  backward sorts the ids (stable), then one block per vocab row adds its tokens'
//            rows in token order: the same bits every run, and the same bits as the CPU
//         0  the best CUDA version: 2 (exact --resume needs reproducible gradients)
//   The forward is the same gather in both CUDA versions. See embedding.cu.
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
// version: 1 atomics, 2 sorted (0 = 2).
void embedding_backward_cuda(float* dtable, const float* dout, const int32_t* tokens, int64_t n_tokens, int64_t vocab,
                             int64_t dim, int version);

}  // namespace ittt::kernels
