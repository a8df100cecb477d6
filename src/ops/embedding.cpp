// embedding.cpp: ops::embedding_forward / embedding_backward on top of kernels/embedding.
//
// tokens may be (N) or (B, n): out and dout have tokens' shape plus a last dim d.
// CUDA tensors (F32 only) go to embedding.cu, whose backward has two versions
// (1 atomics, 2 sorted and deterministic; 0 = 2).
#include "kernels/embedding/embedding.h"
#include "ops/dispatch.h"
#include "ops/ops.h"
#include "runtime/nvtx.h"

namespace ittt::ops {

namespace {

void require_cpu_version(const char* op) {
    int v = version("embedding");
    ITTT_CHECK(v == 0 || v == 1, op, ": no CPU version ", v, " of embedding (versions: 1 reference)");
}

// The kernels index the table with these ids unchecked, so one bad id would read
// or write outside it; find the first one and say where it is. On CUDA the ids are
// copied to the host for this: N ints and a wait for the GPU, small next to a
// silent out-of-bounds write.
void require_ids_in_range(const Tensor& tokens, int64_t vocab, const char* op) {
    const Tensor host = tokens.device() == Device::CPU ? tokens : tokens.to(Device::CPU);
    const int32_t* ids = host.data<int32_t>();
    for (int64_t t = 0; t < host.numel(); ++t)
        ITTT_CHECK(ids[t] >= 0 && ids[t] < vocab, op, ": tokens[", t, "] = ", ids[t],
                   " is out of range: ids must be in [0, V) with V = ", vocab);
}

template <class T>
void forward_cpu(Tensor& out, const Tensor& table, const Tensor& tokens) {
    kernels::embedding_forward_cpu<T>(out.data<T>(), table.data<T>(), tokens.data<int32_t>(), tokens.numel(), table.dim(1));
}

template <class T>
void backward_cpu(Tensor& dtable, const Tensor& dout, const Tensor& tokens) {
    kernels::embedding_backward_cpu<T>(dtable.data<T>(), dout.data<T>(), tokens.data<int32_t>(), tokens.numel(), dtable.dim(1));
}

#if ITTT_WITH_CUDA
int cuda_version(const char* op, const Tensor& table) {
    ITTT_CHECK(table.dtype() == DType::F32, op, ": CUDA kernels are F32 only, found ", table.describe());
    int v = version("embedding");
    ITTT_CHECK(v >= 0 && v <= 2, op, ": no CUDA version ", v, " of embedding (versions: 1 atomics, 2 sorted, 0 best = 2)");
    return v;
}
#endif

Shape with_last_dim(Shape shape, int64_t last) {
    shape.push_back(last);
    return shape;
}

}  // namespace

void embedding_forward(Tensor& out, const Tensor& table, const Tensor& tokens) {
    ITTT_NVTX_RANGE("embedding_forward");
    const char* op = "embedding_forward";
    require_float(table, op, "table");
    ITTT_CHECK(table.ndim() == 2, op, ": table must be 2-D (V, d), found ", table.describe());
    require_same_dtype_device(table, out, op, "table", "out");
    require_i32(tokens, table, op, "tokens");
    require_shape(out, with_last_dim(tokens.shape(), table.dim(1)), op, "out");
    if (out.device() == Device::CUDA) {
#if ITTT_WITH_CUDA
        cuda_version(op, table);  // both versions share the forward; this checks the number and dtype
        require_ids_in_range(tokens, table.dim(0), op);
        kernels::embedding_forward_cuda(out.data<float>(), table.data<float>(), tokens.data<int32_t>(), tokens.numel(),
                                        table.dim(1));
        return;
#else
        no_cuda_kernel(op);
#endif
    }
    require_cpu_version(op);
    require_ids_in_range(tokens, table.dim(0), op);
    if (table.dtype() == DType::F32) forward_cpu<float>(out, table, tokens);
    else forward_cpu<double>(out, table, tokens);
}

void embedding_backward(Tensor& dtable, const Tensor& dout, const Tensor& tokens) {
    ITTT_NVTX_RANGE("embedding_backward");
    const char* op = "embedding_backward";
    require_float(dtable, op, "dtable");
    ITTT_CHECK(dtable.ndim() == 2, op, ": dtable must be 2-D (V, d), found ", dtable.describe());
    require_same_dtype_device(dtable, dout, op, "dtable", "dout");
    require_i32(tokens, dtable, op, "tokens");
    require_shape(dout, with_last_dim(tokens.shape(), dtable.dim(1)), op, "dout");
    if (dtable.device() == Device::CUDA) {
#if ITTT_WITH_CUDA
        const int v = cuda_version(op, dtable);
        require_ids_in_range(tokens, dtable.dim(0), op);
        kernels::embedding_backward_cuda(dtable.data<float>(), dout.data<float>(), tokens.data<int32_t>(), tokens.numel(),
                                         dtable.dim(0), dtable.dim(1), v);
        return;
#else
        no_cuda_kernel(op);
#endif
    }
    require_cpu_version(op);
    require_ids_in_range(tokens, dtable.dim(0), op);
    if (dtable.dtype() == DType::F32) backward_cpu<float>(dtable, dout, tokens);
    else backward_cpu<double>(dtable, dout, tokens);
}

}  // namespace ittt::ops
