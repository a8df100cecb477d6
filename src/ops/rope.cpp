// rope.cpp: ops::rope_forward / rope_backward on top of kernels/rope.
//
// x is (N, H, hd) with positions (N); more leading dimensions work the same way,
// e.g. x (B, n, H, hd) with positions (B, n): positions has x's shape without its
// last two dimensions.
#include <cmath>

#include "kernels/rope/rope_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {


struct RopeShape {
    int64_t n_tokens, n_heads, head_dim;
};

// Checks everything but the positions' values.
RopeShape require_rope_args(const Tensor& out, const Tensor& in, const Tensor& positions, double theta, const char* op,
                            const char* out_name, const char* in_name) {
    require_same(out, in, op, out_name, in_name);
    ITTT_CHECK(in.ndim() >= 3, op, ": ", in_name, " must be (N, H, hd), found ", in.describe());
    const int64_t head_dim = in.dim(-1);
    ITTT_CHECK(head_dim > 0 && head_dim % 2 == 0, op, ": head_dim (the last dim of ", in_name, " ", in.describe(),
               ") must be even and > 0, found ", head_dim);
    require_i32(positions, in, op, "positions");
    const Shape token_shape(in.shape().begin(), in.shape().end() - 2);
    ITTT_CHECK(positions.shape() == token_shape, op, ": positions is ", positions.describe(), ", expected shape ",
               shape_str(token_shape), " (one per token of ", in_name, " ", in.describe(), ")");
    ITTT_CHECK(theta > 0 && std::isfinite(theta), op, ": theta must be finite and > 0, found ", theta);
    return {positions.numel(), in.dim(-2), head_dim};
}

// On CUDA the positions are copied to the host for this check: n_tokens ints and a
// wait for the GPU, small next to the error it turns into a message.
void require_positions_non_negative(const Tensor& positions, const Tensor* host_positions, const char* op) {
    if (host_positions) {
        ITTT_CHECK(host_positions->device() == Device::CPU && host_positions->dtype() == DType::I32 &&
                       host_positions->numel() == positions.numel(),
                   op, ": host_positions is ", host_positions->describe(), ", expected the ", positions.numel(), " positions on the CPU");
    }
    const Tensor host = host_positions ? *host_positions : positions.device() == Device::CPU ? positions : positions.to(Device::CPU);
    const int32_t* p = host.data<int32_t>();
    for (int64_t t = 0; t < host.numel(); ++t)
        ITTT_CHECK(p[t] >= 0, op, ": positions[", t, "] = ", p[t], ", expected an absolute position >= 0");
}

// Forward and backward are the same rotation with the angle's sign flipped
// (R^T = R(-angle)), so one dispatcher serves both.
void rotate(Tensor& out, const Tensor& in, const Tensor& positions, const Tensor* host_positions, double theta, bool inverse) {
    const char* op = inverse ? "rope_backward" : "rope_forward";
    const RopeShape s = inverse ? require_rope_args(out, in, positions, theta, op, "dx", "dout")
                                : require_rope_args(out, in, positions, theta, op, "out", "x");
    require_positions_non_negative(positions, host_positions, op);
    auto pick = [inverse](const auto& entry) -> const auto& { return inverse ? entry.backward : entry.forward; };
    run_kernel(kernels::rope_versions, op, in, pick, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(out.data<T>(), in.data<T>(), positions.data<int32_t>(), s.n_tokens, s.n_heads, s.head_dim, theta);
    });
}
}  // namespace


void rope_forward(Tensor& out, const Tensor& x, const Tensor& positions, double theta, const Tensor* host_positions) {
    ITTT_NVTX_RANGE("rope_forward");
    rotate(out, x, positions, host_positions, theta, false);
}

void rope_backward(Tensor& dx, const Tensor& dout, const Tensor& positions, double theta, const Tensor* host_positions) {
    ITTT_NVTX_RANGE("rope_backward");
    rotate(dx, dout, positions, host_positions, theta, true);
}

}  // namespace ittt::ops
