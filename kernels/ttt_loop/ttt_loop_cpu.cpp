// ttt_loop_cpu.cpp: the chunk loop with a running fast weight, forward and backward, on the CPU.
//
// One sequence is a serial walk over its chunks; every step is a handful of GEMMs of
// rows x d x f and one pass over a d x f matrix. The walks of different sequences are
// independent, so they are the unit of parallel work (see ttt_loop.h).
#include <algorithm>
#include <cmath>
#include <limits>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/gemm/gemm.h"
#include "kernels/ttt_delta/ttt_delta.h"
#include "kernels/ttt_loop/ttt_loop.h"

namespace ittt::kernels {

namespace {

// gv: the GEMM the rest of the model uses (the gemm op's selected CPU version), so that a
// chunk whose weight is still Wd computes its rows exactly as the plain MLP's product does.
template <class T>
void gemm(GemmCpuFn<T>* gv, bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
    gv(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <class T>
bool all_zero(const T* x, int64_t count) {
    for (int64_t i = 0; i < count; ++i)
        if (x[i] != T(0)) return false;  // -0 counts as zero, NaN does not
    return true;
}

template <class T>
double sum_squares(const T* x, int64_t count) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < count; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    return s;
}

// next = w + alpha * delta (next may be w).
template <class T>
void axpy_into(T* next, const T* w, T alpha, const T* delta, int64_t count) {
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) next[i] = w[i] + alpha * delta[i];
}

// The same, returning sum delta^2 from the same pass (the inference forward reports every norm).
template <class T>
double axpy_into_sum_squares(T* next, const T* w, T alpha, const T* delta, int64_t count) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < count; ++i) {
        s += static_cast<double>(delta[i]) * static_cast<double>(delta[i]);
        next[i] = w[i] + alpha * delta[i];
    }
    return s;
}

// Sequences in parallel when there are enough of them to keep every thread busy; otherwise
// one after the other, and the GEMMs inside use the threads.
bool parallel_over_sequences(int64_t batch) {
#ifdef _OPENMP
    const int threads = omp_get_max_threads();
    return threads > 1 && batch >= threads && !omp_in_parallel();
#else
    (void)batch;
    return false;
#endif
}

template <class T>
void forward_sequence(const TttLoopShape& s, int64_t b, T* o, const T* z, const T* v, const T* wd, T eta, const TttLoopUpdates& u,
                      const TttLoopForwardOut<T>& out, T* workspace, GemmCpuFn<T>* gv) {
    const int64_t n = s.n, d = s.d, f = s.f, C = s.chunk, n_chunks = s.chunks(), df = d * f;
    // W_i, advanced chunk by chunk: in the store of every W_i, in the streaming state, or in scratch.
    T* W = out.w_all ? out.w_all + b * n_chunks * df : out.w_state ? out.w_state + b * df : workspace + (s.batch + b) * df;
    T* delta = workspace + b * df;
    if (wd) std::copy(wd, wd + df, W);  // else W continues the state
    for (int64_t i = 0; i < n_chunks; ++i) {
        const int64_t r0 = i * C, rows = std::min(C, n - r0), k = b * n_chunks + i;
        const int64_t seen = i == 0 ? s.start : 0;  // rows of this chunk applied by an earlier call
        const T* Zi = z + (b * n + r0) * f;
        const T* Vi = v + (b * n + r0) * d;
        // apply: O_[i] (rows, d) = Z_[i] (rows, f) @ W_i^T (f, d), for the rows not seen before
        gemm<T>(gv, false, true, rows - seen, d, f, T(1), Zi + seen * f, f, W, f, T(0), o + (b * (n - s.start) + r0 + seen - s.start) * d,
                d);
        if (out.w_last && i == n_chunks - 1) std::copy(W, W + df, out.w_last + b * df);

        // update: W_{i+1} = W_i + eta c_i V_[i]^T Z_[i]. The last chunk's reaches no output:
        // only the streaming state of a complete chunk needs it.
        if (i + 1 == n_chunks && !(out.w_state && rows == C)) break;
        T* next = out.w_all ? W + df : W;
        const bool folds = eta != T(0) && (u.limit < 0 || i < u.limit);
        if (out.norm) out.norm[k] = 0;
        if (out.applied) out.applied[k] = 0;
        if (all_zero(Vi, rows * d) || (!folds && !out.norm)) {  // no step, or one nobody looks at
            if (next != W) std::copy(W, W + df, next);
            W = next;
            continue;
        }
        if (folds && u.clip_tau <= 0 && !out.norm) {
            // Training: nothing looks at the step itself, so the GEMM adds it straight into the weight,
            // W_{i+1} = W_i + eta V_[i]^T (d, rows) @ Z_[i] (rows, f) (alpha = eta, beta = 1): no delta
            // buffer and no separate pass over d x f.
            if (next != W) std::copy(W, W + df, next);
            gemm<T>(gv, true, false, d, f, rows, eta, Vi, d, Zi, f, T(1), next, f);
            W = next;
            continue;
        }
        // delta (d, f) = V_[i]^T (d, rows) @ Z_[i] (rows, f); its norm and clipping factor: ttt_delta.h
        gemm<T>(gv, true, false, d, f, rows, T(1), Vi, d, Zi, f, T(0), delta, f);
        double norm = 0, factor = 1;
        if (u.clip_tau > 0 || !folds) {  // the norm decides the step (or is all that is asked): a pass of its own
            norm = ttt_update_norm(eta, sum_squares(delta, df));
            factor = ttt_clip_factor(norm, u.clip_tau);
            if (folds) axpy_into(next, W, static_cast<T>(static_cast<double>(eta) * factor), delta, df);
            else if (next != W) std::copy(W, W + df, next);
        } else {  // unclipped, with its norm reported: the update's pass sums the squares too
            norm = ttt_update_norm(eta, axpy_into_sum_squares(next, W, eta, delta, df));
        }
        if (out.norm) out.norm[k] = norm;
        if (out.applied && folds) out.applied[k] = norm * factor;
        W = next;
    }
}

template <class T>
void backward_sequence(const TttLoopShape& s, int64_t b, T* dz, T* dv, const T* dout, const T* z, const T* v, T eta,
                       const TttLoopUpdates& u, const T* w_all, const T* w_last, T* workspace, GemmCpuFn<T>* gv) {
    const int64_t n = s.n, d = s.d, f = s.f, C = s.chunk, n_chunks = s.chunks(), df = d * f;
    T* G = workspace + (2 * b) * df;  // sum of P_j over the chunks after i; after chunk 0, this sequence's dWd
    T* W_rebuilt = workspace + (2 * b + 1) * df;
    const T* W = w_all ? w_all + (b * n_chunks + n_chunks - 1) * df : W_rebuilt;
    if (!w_all) std::copy(w_last + b * df, w_last + (b + 1) * df, W_rebuilt);
    bool g_zero = true;  // G = 0 before the last chunk's P is added
    for (int64_t i = n_chunks - 1; i >= 0; --i) {
        const int64_t r0 = i * C, rows = std::min(C, n - r0);
        const T* dOi = dout + (b * n + r0) * d;
        const T* Zi = z + (b * n + r0) * f;
        const T* Vi = v + (b * n + r0) * d;
        T* dZi = dz + (b * n + r0) * f;
        T* dVi = dv + (b * n + r0) * d;
        // dZ_[i] (rows, f) = dO_[i] (rows, d) @ W_i (d, f)
        gemm<T>(gv, false, false, rows, f, d, T(1), dOi, d, W, f, T(0), dZi, f);
        // Chunk i's update reaches the later chunks through G (unless it was dropped).
        const bool folds = eta != T(0) && (u.limit < 0 || i < u.limit);
        if (folds && !g_zero) {
            gemm<T>(gv, false, false, rows, f, d, eta, Vi, d, G, f, T(1), dZi, f);  // dZ_[i] += eta V_[i] G
            gemm<T>(gv, false, true, rows, d, f, eta, Zi, f, G, f, T(0), dVi, d);   // dV_[i] = eta Z_[i] G^T
        } else {
            std::fill(dVi, dVi + rows * d, T(0));
        }
        // G += Wbar_i = dO_[i]^T (d, rows) @ Z_[i] (rows, f)
        gemm<T>(gv, true, false, d, f, rows, T(1), dOi, d, Zi, f, g_zero ? T(0) : T(1), G, f);
        g_zero = false;
        if (i == 0) break;
        if (w_all) {
            W = w_all + (b * n_chunks + i - 1) * df;
            continue;
        }
        // Flat form: W_{i-1} = W_i - eta V_[i-1]^T Z_[i-1], the forward's step undone (chunk i-1 is complete).
        const T* Zp = z + (b * n + r0 - C) * f;
        const T* Vp = v + (b * n + r0 - C) * d;
        const bool folded = eta != T(0) && (u.limit < 0 || i - 1 < u.limit) && !all_zero(Vp, C * d);
        if (!folded) continue;
        gemm<T>(gv, true, false, d, f, C, static_cast<T>(-eta), Vp, d, Zp, f, T(1), W_rebuilt, f);  // in place, as the forward's step
    }
}

}  // namespace

template <class T>
void ttt_loop_forward_cpu(const TttLoopShape& s, T* o, const T* z, const T* v, const T* wd, T eta, const TttLoopUpdates& updates,
                          const TttLoopForwardOut<T>& out, T* workspace, GemmCpuFn<T>* gemm) {
    if (s.batch * s.n == 0) return;
    if (out.norm) std::fill(out.norm, out.norm + s.batch * s.chunks(), std::numeric_limits<double>::quiet_NaN());
    if (out.applied) std::fill(out.applied, out.applied + s.batch * s.chunks(), 0.0);
#pragma omp parallel for schedule(dynamic) if (parallel_over_sequences(s.batch))
    for (int64_t b = 0; b < s.batch; ++b) forward_sequence(s, b, o, z, v, wd, eta, updates, out, workspace, gemm);
}

template <class T>
void ttt_loop_backward_cpu(const TttLoopShape& s, T* dz, T* dv, T* dwd, const T* dout, const T* z, const T* v, T eta,
                           const TttLoopUpdates& updates, const T* w_all, const T* w_last, T* workspace, GemmCpuFn<T>* gemm) {
    if (s.batch * s.n == 0) return;
#pragma omp parallel for schedule(dynamic) if (parallel_over_sequences(s.batch))
    for (int64_t b = 0; b < s.batch; ++b) backward_sequence(s, b, dz, dv, dout, z, v, eta, updates, w_all, w_last, workspace, gemm);
    // dWd += sum_b G_b, added in sequence order whatever the thread count.
    const int64_t df = s.d * s.f;
#pragma omp parallel for if (df * s.batch > (1 << 16))
    for (int64_t k = 0; k < df; ++k) {
        T acc = dwd[k];
        for (int64_t b = 0; b < s.batch; ++b) acc += workspace[2 * b * df + k];
        dwd[k] = acc;
    }
}

template void ttt_loop_forward_cpu<float>(const TttLoopShape&, float*, const float*, const float*, const float*, float,
                                          const TttLoopUpdates&, const TttLoopForwardOut<float>&, float*, GemmCpuFn<float>*);
template void ttt_loop_forward_cpu<double>(const TttLoopShape&, double*, const double*, const double*, const double*, double,
                                           const TttLoopUpdates&, const TttLoopForwardOut<double>&, double*, GemmCpuFn<double>*);
template void ttt_loop_backward_cpu<float>(const TttLoopShape&, float*, float*, float*, const float*, const float*, const float*,
                                           float, const TttLoopUpdates&, const float*, const float*, float*, GemmCpuFn<float>*);
template void ttt_loop_backward_cpu<double>(const TttLoopShape&, double*, double*, double*, const double*, const double*,
                                            const double*, double, const TttLoopUpdates&, const double*, const double*, double*,
                                            GemmCpuFn<double>*);

}  // namespace ittt::kernels
