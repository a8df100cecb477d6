// [cuda] tests of the errors the CUDA side gives: F64 tensors (the kernels are F32 only),
// versions no device has, and bad ids or positions, each named in the message.
// Every case starts with ITTT_SKIP_WITHOUT_CUDA(): without a GPU it is skipped.
#include <vector>

#include "ops/ops.h"
#include "runtime/tensor.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;
using Catch::Contains;

TEST_CASE("CUDA matmul refuses F64 tensors", "[cuda][gemm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    Tensor A = gpu(random_tensor({4, 3}, 7000, 1.0, DType::F64)), B = gpu(random_tensor({3, 5}, 7001, 1.0, DType::F64));
    Tensor C = Tensor::zeros({4, 5}, DType::F64, Device::CUDA);
    CHECK_THROWS_WITH(ops::matmul(C, A, false, B, false), Contains("CUDA kernels are F32 only"));
}

TEST_CASE("attention CUDA rejects F64 and unknown versions", "[cuda][attention]") {
    ITTT_SKIP_WITHOUT_CUDA();
    Tensor q64 = Tensor::zeros({1, 3, 2, 4}, DType::F64, Device::CUDA), k64 = Tensor::zeros({1, 3, 1, 4}, DType::F64, Device::CUDA);
    Tensor out64 = Tensor::zeros({1, 3, 2, 4}, DType::F64, Device::CUDA), lse64 = Tensor::zeros({1, 2, 3}, DType::F64, Device::CUDA);
    CHECK_THROWS_WITH(ops::attention_forward(out64, lse64, q64, k64, k64, 0, 0), Contains("F32 only"));
    CHECK_THROWS_WITH(ops::set_version("attention", 4), Contains("expected 0 (best) to 3, found 4"));
}

TEST_CASE("rmsnorm CUDA rejects F64 and unknown versions with a message", "[cuda][rmsnorm]") {
    ITTT_SKIP_WITHOUT_CUDA();
    Tensor x64 = Tensor::zeros({2, 8}, DType::F64, Device::CUDA), w64 = Tensor::zeros({8}, DType::F64, Device::CUDA);
    Tensor out64 = Tensor::zeros({2, 8}, DType::F64, Device::CUDA), rstd64 = Tensor::zeros({2}, DType::F64, Device::CUDA);
    CHECK_THROWS_WITH(ops::rmsnorm_forward(out64, rstd64, x64, w64, 1e-6), Contains("F32 only"));
    CHECK_THROWS_WITH(ops::set_version("rmsnorm", 3), Contains("expected 0 (best) to 2, found 3"));
}

TEST_CASE("rope CUDA rejects negative positions and F64 with a message", "[cuda][rope]") {
    ITTT_SKIP_WITHOUT_CUDA();
    Tensor x = Tensor::zeros({3, 2, 4}, DType::F32, Device::CUDA), out = Tensor::zeros({3, 2, 4}, DType::F32, Device::CUDA);
    Tensor bad = gpu(Tensor::from_vector(std::vector<int32_t>{0, -5, 2}, {3}));
    CHECK_THROWS_WITH(ops::rope_forward(out, x, bad, 1e6), Contains("positions[1] = -5"));
    Tensor x64 = Tensor::zeros({3, 2, 4}, DType::F64, Device::CUDA), out64 = Tensor::zeros({3, 2, 4}, DType::F64, Device::CUDA);
    Tensor good = gpu(Tensor::from_vector(std::vector<int32_t>{0, 1, 2}, {3}));
    CHECK_THROWS_WITH(ops::rope_forward(out64, x64, good, 1e6), Contains("F32 only"));
}

TEST_CASE("embedding CUDA rejects out-of-range ids and unknown versions with a message", "[cuda][embedding]") {
    ITTT_SKIP_WITHOUT_CUDA();
    Tensor table = Tensor::zeros({5, 4}, DType::F32, Device::CUDA), out = Tensor::zeros({3, 4}, DType::F32, Device::CUDA);
    Tensor bad = gpu(Tensor::from_vector(std::vector<int32_t>{0, 5, 2}, {3}));
    CHECK_THROWS_WITH(ops::embedding_forward(out, table, bad), Contains("tokens[1] = 5") && Contains("V) with V = 5"));
    CHECK_THROWS_WITH(ops::embedding_backward(table, out, bad), Contains("tokens[1] = 5"));
    CHECK_THROWS_WITH(ops::set_version("embedding", 3), Contains("expected 0 (best) to 2, found 3"));
}
