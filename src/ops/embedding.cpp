// embedding.cpp: ops::embedding_forward / embedding_backward on top of kernels/embedding.
//
// tokens may be (N) or (B, n): out and dout have tokens' shape plus a last dim d.
#include "kernels/embedding/embedding_versions.h"
#include "ops/ops.h"
#include "ops/versions.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {


// The kernels index the table with these ids unchecked, so one bad id would read
// or write outside it; find the first one and say where it is. On CUDA the ids are
// copied to the host for this: N ints and a wait for the GPU, small next to a
// silent out-of-bounds write.
void require_ids_in_range(const Tensor& tokens, const Tensor* host_tokens, int64_t vocab, const char* op) {
    if (host_tokens) {
        ITTT_CHECK(host_tokens->device() == Device::CPU && host_tokens->dtype() == DType::I32 && host_tokens->numel() == tokens.numel(), op,
                   ": host_tokens is ", host_tokens->describe(), ", expected the ", tokens.numel(), " ids of tokens on the CPU");
    }
    const Tensor host = host_tokens ? *host_tokens : tokens.device() == Device::CPU ? tokens : tokens.to(Device::CPU);
    const int32_t* ids = host.data<int32_t>();
    for (int64_t t = 0; t < host.numel(); ++t)
        ITTT_CHECK(ids[t] >= 0 && ids[t] < vocab, op, ": tokens[", t, "] = ", ids[t],
                   " is out of range: ids must be in [0, V) with V = ", vocab);
}

Shape with_last_dim(Shape shape, int64_t last) {
    shape.push_back(last);
    return shape;
}

}  // namespace


void embedding_forward(Tensor& out, const Tensor& table, const Tensor& tokens, const Tensor* host_tokens) {
    ITTT_NVTX_RANGE("embedding_forward");
    const char* op = "embedding_forward";
    require_float(table, op, "table");
    ITTT_CHECK(table.ndim() == 2, op, ": table must be 2-D (V, d), found ", table.describe());
    require_same_dtype_device(table, out, op, "table", "out");
    require_i32(tokens, table, op, "tokens");
    require_shape(out, with_last_dim(tokens.shape(), table.dim(1)), op, "out");
    require_ids_in_range(tokens, host_tokens, table.dim(0), op);
    run_kernel(kernels::embedding_versions, op, table, forward_kernel, [&](auto kernel, auto t) {
        using T = decltype(t);
        kernel(out.data<T>(), table.data<T>(), tokens.data<int32_t>(), tokens.numel(), table.dim(1));
    });
}

void embedding_backward(Tensor& dtable, const Tensor& dout, const Tensor& tokens, const Tensor* host_tokens) {
    ITTT_NVTX_RANGE("embedding_backward");
    const char* op = "embedding_backward";
    require_float(dtable, op, "dtable");
    ITTT_CHECK(dtable.ndim() == 2, op, ": dtable must be 2-D (V, d), found ", dtable.describe());
    require_same_dtype_device(dtable, dout, op, "dtable", "dout");
    require_i32(tokens, dtable, op, "tokens");
    require_shape(dout, with_last_dim(tokens.shape(), dtable.dim(1)), op, "dout");
    require_ids_in_range(tokens, host_tokens, dtable.dim(0), op);
    if (dtable.device() == Device::CUDA) {
        require_cuda_f32(dtable, op);
        built(cuda_entry(kernels::embedding_versions, op).backward, op)(dtable.data<float>(), dout.data<float>(), tokens.data<int32_t>(), tokens.numel(),
                                                      dtable.dim(0), dtable.dim(1));
        return;
    }
    with_float_type(dtable.dtype(), [&](auto t) {
        using T = decltype(t);
        cpu_entry(kernels::embedding_versions, op).backward.get<T>()(dtable.data<T>(), dout.data<T>(), tokens.data<int32_t>(), tokens.numel(),
                                                   dtable.dim(1));
    });
}

}  // namespace ittt::ops
