// Tests of the attention-block ops (ops::attention_block_*): ring attention's pieces on
// tensors. The kernels themselves are checked against one whole attention call in
// tests/test_parallel.cpp ("block attention: ..."); here the ops must give exactly what
// the kernels give, in F32 and F64, and refuse bad arguments naming the op, the
// argument and what was expected versus found.
#include <string>

#include "kernels/attention_block/attention_block.h"
#include "ops/ops.h"
#include "runtime/tensor.h"
#include "test_util.h"

using namespace ittt;
using ittt::test::bitwise_equal;
using ittt::test::random_tensor;

TEST_CASE("attention-block ops give exactly what the kernels give, F32 and F64", "[attention][parallel]") {
    // GQA, a window that hides part of the block, queries after the block (rows 8..12 vs keys 3..9)
    const int64_t B = 2, nq = 5, nk = 7, Hq = 4, Hkv = 2, hd = 3, q_pos0 = 8, k_pos0 = 3;
    const int window = 6;
    for (DType dtype : {DType::F64, DType::F32}) {
        INFO(dtype_name(dtype));
        Tensor q = random_tensor({B, nq, Hq, hd}, 11, 1.0, dtype), dout = random_tensor({B, nq, Hq, hd}, 12, 1.0, dtype);
        Tensor k = random_tensor({B, nk, Hkv, hd}, 13, 1.0, dtype), v = random_tensor({B, nk, Hkv, hd}, 14, 1.0, dtype);
        kernels::AttentionBlockDims d;
        d.B = B, d.nq = nq, d.nk = nk, d.Hq = Hq, d.Hkv = Hkv, d.hd = hd;
        d.q_pos0 = q_pos0, d.k_pos0 = k_pos0, d.window = window;

        Tensor out = Tensor::empty(q.shape(), dtype), lse = Tensor::empty({B, Hq, nq}, dtype);
        Tensor out_k = Tensor::empty(q.shape(), dtype), lse_k = Tensor::empty({B, Hq, nq}, dtype);
        ops::attention_block_forward(out, lse, q, k, v, q_pos0, k_pos0, window);
        // the merge: a second block (keys 0..2) into the first
        Tensor k2 = random_tensor({B, 3, Hkv, hd}, 15, 1.0, dtype), v2 = random_tensor({B, 3, Hkv, hd}, 16, 1.0, dtype);
        Tensor out_b = Tensor::empty(q.shape(), dtype), lse_b = Tensor::empty({B, Hq, nq}, dtype);
        ops::attention_block_forward(out_b, lse_b, q, k2, v2, q_pos0, 0, 0);
        ops::attention_block_merge(out, lse, out_b, lse_b);
        Tensor dq = Tensor::zeros(q.shape(), dtype), dk = Tensor::empty(k.shape(), dtype), dv = Tensor::empty(v.shape(), dtype);
        ops::attention_block_backward(dq, dk, dv, dout, q, k, v, out, lse, q_pos0, k_pos0, window);

        Tensor dq_k = Tensor::zeros(q.shape(), dtype), dk_k = Tensor::empty(k.shape(), dtype), dv_k = Tensor::empty(v.shape(), dtype);
        auto kernels_run = [&](auto tag) {
            using T = decltype(tag);
            kernels::AttentionBlockDims d2 = d;
            d2.nk = 3, d2.k_pos0 = 0, d2.window = 0;
            Tensor ob = Tensor::empty(q.shape(), dtype), lb = Tensor::empty({B, Hq, nq}, dtype);
            kernels::attention_block_forward_cpu<T>(d, out_k.data<T>(), lse_k.data<T>(), q.data<T>(), k.data<T>(), v.data<T>());
            kernels::attention_block_forward_cpu<T>(d2, ob.data<T>(), lb.data<T>(), q.data<T>(), k2.data<T>(), v2.data<T>());
            kernels::attention_block_merge_cpu<T>(B, nq, Hq, hd, out_k.data<T>(), lse_k.data<T>(), ob.data<T>(), lb.data<T>());
            kernels::attention_block_backward_cpu<T>(d, dq_k.data<T>(), dk_k.data<T>(), dv_k.data<T>(), dout.data<T>(), q.data<T>(),
                                                     k.data<T>(), v.data<T>(), out_k.data<T>(), lse_k.data<T>());
        };
        if (dtype == DType::F64) kernels_run(double{});
        else kernels_run(float{});
        CHECK(bitwise_equal(out, out_k));
        CHECK(bitwise_equal(lse, lse_k));
        CHECK(bitwise_equal(dq, dq_k));
        CHECK(bitwise_equal(dk, dk_k));
        CHECK(bitwise_equal(dv, dv_k));
    }
}

TEST_CASE("attention-block ops reject bad arguments with messages naming the problem", "[attention][parallel]") {
    using Catch::Contains;
    Tensor q = Tensor::zeros({1, 5, 4, 8}), k = Tensor::zeros({1, 6, 2, 8}), v = Tensor::zeros({1, 6, 2, 8});
    Tensor out = Tensor::zeros({1, 5, 4, 8}), lse = Tensor::zeros({1, 4, 5});

    Tensor k3 = Tensor::zeros({1, 6, 3, 8});
    CHECK_THROWS_WITH(ops::attention_block_forward(out, lse, q, k3, k3, 0, 0, 0),
                      Contains("attention_block_forward") && Contains("4 query heads") && Contains("not a multiple of 3 KV heads"));
    Tensor k_hd = Tensor::zeros({1, 6, 2, 4});
    CHECK_THROWS_WITH(ops::attention_block_forward(out, lse, q, k_hd, k_hd, 0, 0, 0), Contains("head dims differ"));
    CHECK_THROWS_WITH(ops::attention_block_forward(out, lse, q, k, Tensor::zeros({1, 7, 2, 8}), 0, 0, 0),
                      Contains("v is F32 (1, 7, 2, 8)") && Contains("expected shape (1, 6, 2, 8)"));
    CHECK_THROWS_WITH(ops::attention_block_forward(out, lse, q, k, v, 0, -1, 0), Contains("k_pos0 must be >= 0, found -1"));
    Tensor lse_bad = Tensor::zeros({1, 5, 4});
    CHECK_THROWS_WITH(ops::attention_block_forward(out, lse_bad, q, k, v, 0, 0, 0),
                      Contains("attention_block_forward: lse") && Contains("expected shape (1, 4, 5)"));
    CHECK_THROWS_WITH(ops::attention_block_forward(out, lse, q, Tensor::zeros({1, 6, 2, 8}, DType::F64), v, 0, 0, 0),
                      Contains("q is F32") && Contains("k is F64") && Contains("dtype and device must match"));

    CHECK_THROWS_WITH(ops::attention_block_merge(out, lse, Tensor::zeros({1, 5, 4, 4}), lse),
                      Contains("attention_block_merge: out_b is F32 (1, 5, 4, 4)") && Contains("shapes must match"));
    CHECK_THROWS_WITH(ops::attention_block_merge(out, lse_bad, out, lse),
                      Contains("attention_block_merge: lse") && Contains("expected shape (1, 4, 5)"));

    Tensor dq = Tensor::zeros(q.shape()), dk = Tensor::zeros(k.shape()), dv = Tensor::zeros(v.shape());
    Tensor dv_bad = Tensor::zeros({1, 5, 2, 8}), dq_bad = Tensor::zeros({1, 5, 4});
    CHECK_THROWS_WITH(ops::attention_block_backward(dq, dk, dv_bad, out, q, k, v, out, lse, 0, 0, 0),
                      Contains("attention_block_backward: dv is F32 (1, 5, 2, 8)") && Contains("shapes must match"));
    CHECK_THROWS_WITH(ops::attention_block_backward(dq_bad, dk, dv, out, q, k, v, out, lse, 0, 0, 0),
                      Contains("attention_block_backward: dq") && Contains("shapes must match"));
}
