// dispatch.h: argument checks shared by the src/ops/*.cpp files.
//
// Each check throws an Error naming the op, the argument and what was expected
// versus found, e.g. "rmsnorm_forward: weight is F32 (64) on cpu, expected 32 elements".
#pragma once
#include <string>

#include "runtime/tensor.h"

namespace ittt::ops {

inline void require_float(const Tensor& t, const char* op, const char* name) {
    ITTT_CHECK(t.defined(), op, ": ", name, " is undefined");
    ITTT_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, op, ": ", name, " is ", t.describe(),
               ", expected F32 or F64");
}

inline void require_same_dtype_device(const Tensor& a, const Tensor& b, const char* op, const char* name_a, const char* name_b) {
    ITTT_CHECK(a.defined() && b.defined(), op, ": ", name_a, " or ", name_b, " is undefined");
    ITTT_CHECK(a.dtype() == b.dtype() && a.device() == b.device(), op, ": ", name_a, " is ", a.describe(), " but ", name_b, " is ",
               b.describe(), " (dtype and device must match)");
}

inline void require_same(const Tensor& a, const Tensor& b, const char* op, const char* name_a, const char* name_b) {
    require_float(a, op, name_a);
    require_same_dtype_device(a, b, op, name_a, name_b);
    ITTT_CHECK(a.shape() == b.shape(), op, ": ", name_a, " is ", a.describe(), " but ", name_b, " is ", b.describe(),
               " (shapes must match)");
}

inline void require_shape(const Tensor& t, const Shape& expected, const char* op, const char* name) {
    ITTT_CHECK(t.defined(), op, ": ", name, " is undefined");
    ITTT_CHECK(t.shape() == expected, op, ": ", name, " is ", t.describe(), ", expected shape ", shape_str(expected));
}

inline void require_i32(const Tensor& t, const Tensor& like, const char* op, const char* name) {
    ITTT_CHECK(t.defined() && t.dtype() == DType::I32, op, ": ", name, " must be I32, found ", t.describe());
    ITTT_CHECK(t.device() == like.device(), op, ": ", name, " is on ", device_name(t.device()), ", expected ",
               device_name(like.device()));
}

// q (B, nq, Hq, hd) and k, v (B, nk, Hkv, hd) of one float dtype and device, with Hq a
// multiple of Hkv: what attention and its ring-attention blocks both take.
inline void require_attention_heads(const Tensor& q, const Tensor& k, const Tensor& v, const char* op) {
    require_float(q, op, "q");
    require_same_dtype_device(q, k, op, "q", "k");
    require_same_dtype_device(q, v, op, "q", "v");
    ITTT_CHECK(q.ndim() == 4, op, ": q is ", q.describe(), ", expected 4-D (B, nq, Hq, hd)");
    ITTT_CHECK(k.ndim() == 4, op, ": k is ", k.describe(), ", expected 4-D (B, keys, Hkv, hd)");
    require_shape(v, k.shape(), op, "v");
    ITTT_CHECK(k.dim(0) == q.dim(0), op, ": k is ", k.describe(), " but q is ", q.describe(), " (batch sizes differ)");
    ITTT_CHECK(k.dim(3) == q.dim(3), op, ": k is ", k.describe(), " but q is ", q.describe(), " (head dims differ)");
    ITTT_CHECK(q.dim(3) > 0, op, ": q is ", q.describe(), ", head dim must be positive");
    ITTT_CHECK(k.dim(2) > 0 && q.dim(2) % k.dim(2) == 0, op, ": ", q.dim(2), " query heads (q ", q.describe(),
               ") is not a multiple of ", k.dim(2), " KV heads (k ", k.describe(), ")");
}

// A CUDA kernel that is not written yet: say so plainly instead of computing garbage.
[[noreturn]] inline void no_cuda_kernel(const char* op) {
    fail(cat(op, ": no CUDA kernel in this build; run with --device cpu"));
}

}  // namespace ittt::ops
