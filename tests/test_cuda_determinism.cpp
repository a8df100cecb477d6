// [cuda] tests of the same bits: kernels without atomics repeat every bit from run to run
// (what an exact --resume on a GPU rests on), and kernels that may write an output into an
// input's buffer give the bits of the out-of-place call. How close each kernel is to the CPU
// is the op harness's (tests/test_ops_harness.cpp); these check what one run cannot show.
// Every case starts with ITTT_SKIP_WITHOUT_CUDA(): without a GPU it is skipped.
#include <vector>

#include "ops/ops.h"
#include "runtime/tensor.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

TEST_CASE("attention CUDA flash forward and backward give the same bits every run", "[cuda][attention]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // No atomics in version 2: dk and dv of a KV head are summed inside one block.
    const int B = 2, n = 150, Hq = 8, Hkv = 2, hd = 64, window = 40;
    ScopedVersion flash("attention", 2);
    Tensor q = gpu(random_tensor({B, n, Hq, hd}, 600)), k = gpu(random_tensor({B, n, Hkv, hd}, 601));
    Tensor v = gpu(random_tensor({B, n, Hkv, hd}, 602)), dout = gpu(random_tensor({B, n, Hq, hd}, 603));
    auto forward = [&](Tensor& out, Tensor& lse) {
        out = nan_tensor(q.shape(), DType::F32, Device::CUDA);
        lse = nan_tensor({B, Hq, n}, DType::F32, Device::CUDA);
        ops::attention_forward(out, lse, q, k, v, 0, window);
    };
    auto backward = [&](const Tensor& out, const Tensor& lse, Tensor& dq, Tensor& dk, Tensor& dv) {
        dq = nan_tensor(q.shape(), DType::F32, Device::CUDA);
        dk = nan_tensor(k.shape(), DType::F32, Device::CUDA);
        dv = nan_tensor(v.shape(), DType::F32, Device::CUDA);
        ops::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, window);
    };
    Tensor out, lse, dq, dk, dv;
    forward(out, lse);
    backward(out, lse, dq, dk, dv);
    for (int run = 0; run < 3; ++run) {
        Tensor out2, lse2, dq2, dk2, dv2;
        forward(out2, lse2);
        backward(out, lse, dq2, dk2, dv2);
        CHECK(bitwise_equal(out2, out));
        CHECK(bitwise_equal(lse2, lse));
        CHECK(bitwise_equal(dq2, dq));
        CHECK(bitwise_equal(dk2, dk));
        CHECK(bitwise_equal(dv2, dv));
    }
}

TEST_CASE("embedding CUDA backward version 2 (sorted) gives the same bits every run", "[cuda][embedding][grad]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // The op harness's embedding shapes: one token of one column, ragged sizes, thousands of
    // tokens over 5 ids (long runs for one block each), a sparse vocabulary. (The harness
    // checks these bits equal the CPU's; here, that they do on every run.)
    struct EmbeddingShape {
        int64_t vocab, dim, tokens;
        int max_id;
    };
    for (const EmbeddingShape& s : subset_if_small(std::vector<EmbeddingShape>{{1, 1, 1, 1}, {17, 13, 29, 17}, {5, 70, 21, 5}, {300, 33, 5000, 5},
                                                               {260, 64, 4000, 260}, {100000, 16, 777, 100000}},
                                           2)) {
        INFO("vocab " << s.vocab << " dim " << s.dim << " tokens " << s.tokens);
        Tensor tokens = gpu(random_ints({s.tokens}, 62, 0, s.max_id)), dout = gpu(random_tensor({s.tokens, s.dim}, 63));
        const Tensor dtable0 = random_tensor({s.vocab, s.dim}, 64);
        ScopedVersion sorted("embedding", 2);
        Tensor first = gpu(dtable0);
        ops::embedding_backward(first, dout, tokens);
        for (int run = 0; run < 2; ++run) {
            Tensor again = gpu(dtable0);
            ops::embedding_backward(again, dout, tokens);
            CHECK(bitwise_equal(again, first));
        }
    }
}

TEST_CASE("rmsnorm CUDA backward may write dx into dout, and gives the same bits every run", "[cuda][rmsnorm][grad]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const Shape shape{1000, 96};  // four row groups in the dweight reduction
    Tensor x = gpu(random_tensor(shape, 30)), weight = gpu(random_tensor({96}, 31));
    Tensor out = Tensor::empty(shape, DType::F32, Device::CUDA), rstd = Tensor::empty({1000}, DType::F32, Device::CUDA);
    ops::rmsnorm_forward(out, rstd, x, weight, 1e-6);
    const Tensor dout = random_tensor(shape, 32);

    Tensor dx = Tensor::empty(shape, DType::F32, Device::CUDA), dweight = Tensor::zeros({96}, DType::F32, Device::CUDA);
    ops::rmsnorm_backward(dx, dweight, gpu(dout), x, weight, rstd);
    // in place: dx written into dout's buffer (dweight reads dout first)
    Tensor dio = gpu(dout), dweight_inplace = Tensor::zeros({96}, DType::F32, Device::CUDA);
    ops::rmsnorm_backward(dio, dweight_inplace, dio, x, weight, rstd);
    CHECK(bitwise_equal(dio, dx));
    CHECK(bitwise_equal(dweight_inplace, dweight));
    // no atomics anywhere: a second run repeats every bit
    for (int run = 0; run < 3; ++run) {
        Tensor dx2 = Tensor::empty(shape, DType::F32, Device::CUDA), dweight2 = Tensor::zeros({96}, DType::F32, Device::CUDA);
        ops::rmsnorm_backward(dx2, dweight2, gpu(dout), x, weight, rstd);
        CHECK(bitwise_equal(dx2, dx));
        CHECK(bitwise_equal(dweight2, dweight));
    }
}

TEST_CASE("rope CUDA may rotate in place, and the backward undoes the forward", "[cuda][rope]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const Shape shape{33, 4, 16};
    Tensor x = random_tensor(shape, 42), positions = gpu(random_ints({33}, 43, 0, 200000));
    Tensor separate = Tensor::empty(shape, DType::F32, Device::CUDA);
    ops::rope_forward(separate, gpu(x), positions, 1e6);
    Tensor inplace = gpu(x);
    ops::rope_forward(inplace, inplace, positions, 1e6);
    CHECK(bitwise_equal(inplace, separate));
    ops::rope_backward(inplace, inplace, positions, 1e6);
    // R^T R x = x up to two float roundings of O(1) values
    CHECK(check_close(host(inplace), x, 1e-6, 1e-6, "rope backward of forward"));
}

TEST_CASE("swiglu CUDA may write z into g and dg into dz", "[cuda][swiglu]") {
    ITTT_SKIP_WITHOUT_CUDA();
    Tensor g = random_tensor({1000}, 55, 3.0), u = random_tensor({1000}, 56), dz = random_tensor({1000}, 57);
    Tensor z_separate = Tensor::empty({1000}, DType::F32, Device::CUDA), g_inplace = gpu(g);
    ops::swiglu_forward(z_separate, gpu(g), gpu(u));
    ops::swiglu_forward(g_inplace, g_inplace, gpu(u));
    CHECK(bitwise_equal(g_inplace, z_separate));
    Tensor dg = Tensor::empty({1000}, DType::F32, Device::CUDA), du = Tensor::empty({1000}, DType::F32, Device::CUDA);
    ops::swiglu_backward(dg, du, gpu(dz), gpu(g), gpu(u));
    Tensor dz_inplace = gpu(dz), du2 = Tensor::empty({1000}, DType::F32, Device::CUDA);
    ops::swiglu_backward(dz_inplace, du2, dz_inplace, gpu(g), gpu(u));
    CHECK(bitwise_equal(dz_inplace, dg));
    CHECK(bitwise_equal(du2, du));
}

TEST_CASE("CUDA conv1d_chunked_backward: dweight is the same bits on every run", "[cuda][conv1d]") {
    ITTT_SKIP_WITHOUT_CUDA();
    const int64_t B = 3, n = 257, d = 65;
    const std::vector<int> offsets = {-2, -1, 0, 1, 2};
    Tensor x = gpu(random_tensor({B, n, d}, 111)), w = gpu(random_tensor({d, 5}, 112)), dout = gpu(random_tensor({B, n, d}, 113));
    Tensor dx = Tensor::zeros({B, n, d}, DType::F32, Device::CUDA);
    Tensor dw1 = Tensor::zeros({d, 5}, DType::F32, Device::CUDA), dw2 = Tensor::zeros({d, 5}, DType::F32, Device::CUDA);
    ops::conv1d_chunked_backward(dx, dw1, dout, x, w, offsets, 64);
    ops::conv1d_chunked_backward(dx, dw2, dout, x, w, offsets, 64);
    CHECK(bitwise_equal(dw1, dw2));
}

TEST_CASE("CUDA TTT chunk loop (loop and flat) and attention_block give the same bits every run", "[cuda][ttt_loop][attention_block]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // No atomics: the loop's GEMMs and kernels sum in a fixed order (dWd over the sequences in
    // sequence order); attention_block's dk, dv of a key row are summed by one warp.
    const int64_t B = 3, n = 37, d = 24, f = 40;
    const int C = 8;
    Tensor z = gpu(random_tensor({B, n, f}, 700, 0.5)), v = gpu(random_tensor({B, n, d}, 701, 0.5));
    Tensor wd = gpu(random_tensor({d, f}, 702, 0.5)), dout = gpu(random_tensor({B, n, d}, 703));
    for (bool flat : {false, true}) {
        INFO((flat ? "flat" : "loop"));
        auto run = [&](Tensor& o, Tensor& dz, Tensor& dv, Tensor& dwd) {
            o = nan_tensor({B, n, d}, DType::F32, Device::CUDA);
            dz = nan_tensor({B, n, f}, DType::F32, Device::CUDA);
            dv = nan_tensor({B, n, d}, DType::F32, Device::CUDA);
            dwd = Tensor::zeros({d, f}, DType::F32, Device::CUDA);
            ops::TttLoopOptions opt;
            opt.keep_all = !flat;
            opt.keep_last = flat;
            ops::TttLoopResult r = ops::ttt_loop_forward(o, z, v, wd, 0.7, C, opt);
            ops::ttt_loop_backward(dz, dv, dwd, dout, z, v, 0.7, C, flat ? r.w_last : r.w_all);
        };
        Tensor o, dz, dv, dwd;
        run(o, dz, dv, dwd);
        for (int again = 0; again < 2; ++again) {
            Tensor o2, dz2, dv2, dwd2;
            run(o2, dz2, dv2, dwd2);
            CHECK(bitwise_equal(o2, o));
            CHECK(bitwise_equal(dz2, dz));
            CHECK(bitwise_equal(dv2, dv));
            CHECK(bitwise_equal(dwd2, dwd));
        }
    }
    // attention_block: queries 40 .. 79 against the earlier block of keys 0 .. 39, window 50.
    const int64_t nq = 40, nk = 40, Hq = 4, Hkv = 2, hd = 64;
    Tensor q = gpu(random_tensor({2, nq, Hq, hd}, 710)), k = gpu(random_tensor({2, nk, Hkv, hd}, 711));
    Tensor vb = gpu(random_tensor({2, nk, Hkv, hd}, 712)), dob = gpu(random_tensor({2, nq, Hq, hd}, 713));
    auto block = [&](Tensor& out, Tensor& lse, Tensor& dq, Tensor& dk, Tensor& dvb) {
        out = nan_tensor(q.shape(), DType::F32, Device::CUDA);
        lse = nan_tensor({2, Hq, nq}, DType::F32, Device::CUDA);
        ops::attention_block_forward(out, lse, q, k, vb, nq, 0, 50);
        dq = Tensor::zeros(q.shape(), DType::F32, Device::CUDA);
        dk = nan_tensor(k.shape(), DType::F32, Device::CUDA);
        dvb = nan_tensor(k.shape(), DType::F32, Device::CUDA);
        ops::attention_block_backward(dq, dk, dvb, dob, q, k, vb, out, lse, nq, 0, 50);
    };
    Tensor out, lse, dq, dk, dvb;
    block(out, lse, dq, dk, dvb);
    for (int again = 0; again < 2; ++again) {
        Tensor out2, lse2, dq2, dk2, dvb2;
        block(out2, lse2, dq2, dk2, dvb2);
        CHECK(bitwise_equal(out2, out));
        CHECK(bitwise_equal(lse2, lse));
        CHECK(bitwise_equal(dq2, dq));
        CHECK(bitwise_equal(dk2, dk));
        CHECK(bitwise_equal(dvb2, dvb));
    }
}
