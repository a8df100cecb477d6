// Tests of ops::embedding_forward / embedding_backward (kernels/embedding): lookups and the
// scatter-add against their definitions, thread counts and errors. Every version on every device
// in F64 and F32, and the backward against finite differences, are in the op harness
// (tests/test_ops_harness.cpp).
#include "ops/ops.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;

namespace {

struct EmbeddingCase {
    int64_t vocab, dim, n_tokens;
};
// Ragged sizes; dim 70 and 130 span more than one 64-column block of the backward.
const EmbeddingCase kCases[] = {{1, 1, 1}, {17, 13, 29}, {5, 70, 3}, {3, 130, 41}};

// dtable + scatter-add of dout rows by token, in double, one token at a time.
std::vector<double> scatter_add_reference(const Tensor& dtable, const Tensor& dout, const Tensor& tokens) {
    std::vector<double> ref = dtable.to_f64_vector(), grad = dout.to_f64_vector();
    std::vector<int32_t> ids = tokens.to_i32_vector();
    const int64_t dim = dtable.dim(1);
    for (size_t t = 0; t < ids.size(); ++t)
        for (int64_t j = 0; j < dim; ++j) ref[ids[t] * dim + j] += grad[t * dim + j];
    return ref;
}

Tensor embed(const Tensor& table, const Tensor& tokens) {
    Shape shape = tokens.shape();
    shape.push_back(table.dim(1));
    Tensor out = Tensor::empty(shape, table.dtype());
    ops::embedding_forward(out, table, tokens);
    return out;
}

}  // namespace

TEST_CASE("embedding forward copies table rows, ragged shapes, F32 and F64", "[embedding]") {
    for (const EmbeddingCase& c : kCases) {
        for (DType dtype : {DType::F32, DType::F64}) {
            Tensor table = random_tensor({c.vocab, c.dim}, 1, 1.0, dtype);
            Tensor tokens = random_ints({c.n_tokens}, 2, 0, static_cast<int>(c.vocab));
            Tensor out = embed(table, tokens);
            std::vector<double> t = table.to_f64_vector(), ref;
            for (int32_t id : tokens.to_i32_vector())
                for (int64_t j = 0; j < c.dim; ++j) ref.push_back(t[id * c.dim + j]);
            // A lookup copies bits: nothing to round.
            CHECK(check_close(out.to_f64_vector(), ref, 0, 0, "embedding out " + shape_str(out.shape())));
        }
    }
}

TEST_CASE("embedding forward takes (B, n) tokens and gives (B, n, d)", "[embedding]") {
    Tensor table = random_tensor({11, 6}, 3);
    Tensor tokens = random_ints({2, 5}, 4, 0, 11);
    Tensor out = embed(table, tokens);
    REQUIRE(out.shape() == Shape{2, 5, 6});
    Tensor flat = embed(table, tokens.view({10}));
    CHECK(bitwise_equal(out.view({10, 6}), flat));
}

TEST_CASE("embedding backward sums the rows of repeated ids", "[embedding]") {
    // Hand-worked: id 2 appears three times, id 1 never.
    Tensor tokens = Tensor::from_vector<int32_t>({2, 0, 2, 2}, {4});
    Tensor dout = Tensor::from_vector<double>({1, 10, 2, 20, 3, 30, 4, 40}, {4, 2});
    Tensor dtable = Tensor::from_vector<double>({0.5, 0.5, 0.5, 0.5, 0.5, 0.5}, {3, 2});
    ops::embedding_backward(dtable, dout, tokens);
    // Small integers plus 0.5 are exact in double.
    CHECK(check_close(dtable.to_f64_vector(), {2.5, 20.5, 0.5, 0.5, 8.5, 80.5}, 0, 0, "dtable"));
}

TEST_CASE("embedding backward accumulates a scatter-add, ragged shapes, F32 and F64", "[embedding]") {
    for (const EmbeddingCase& c : kCases) {
        // Few ids for many tokens: most rows receive several contributions.
        Tensor tokens = random_ints({c.n_tokens}, 5, 0, static_cast<int>(std::min<int64_t>(c.vocab, 4)));
        Tensor dout64 = random_tensor({c.n_tokens, c.dim}, 6, 1.0, DType::F64);
        Tensor dtable64 = random_tensor({c.vocab, c.dim}, 7, 1.0, DType::F64);
        Tensor dout32 = dout64.to_dtype(DType::F32), dtable32 = dtable64.to_dtype(DType::F32);
        std::vector<double> ref64 = scatter_add_reference(dtable64, dout64, tokens);
        std::vector<double> ref32 = scatter_add_reference(dtable32, dout32, tokens);
        ops::embedding_backward(dtable64, dout64, tokens);
        ops::embedding_backward(dtable32, dout32, tokens);
        const std::string name = "dtable " + shape_str(dtable64.shape());
        // Same sums in the same order in double: only rounding noise of a few terms.
        CHECK(check_close(dtable64.to_f64_vector(), ref64, 1e-14, 1e-14, name + " F64"));
        // F32 sums of up to ~40 unit-scale terms: a few ulp of float per add.
        CHECK(check_close(dtable32.to_f64_vector(), ref32, 1e-5, 1e-6, name + " F32"));
        // F32 against F64 also carries the rounding of the F32 inputs.
        CHECK(check_close(dtable32.to_f64_vector(), ref64, 1e-5, 1e-5, name + " F32 vs F64"));
    }
}

TEST_CASE("embedding backward gives the same bits for 1 and 2 threads", "[embedding]") {
    // 600 x 200 is above the kernel's threshold for going parallel.
    Tensor tokens = random_ints({600}, 11, 0, 50);
    Tensor dout = random_tensor({600, 200}, 12);
    Tensor start = random_tensor({50, 200}, 13);
    std::vector<Tensor> results;
    for (int threads : {1, 2, 2}) {
        with_threads(threads, [&] {
            Tensor dtable = start.clone();
            ops::embedding_backward(dtable, dout, tokens);
            results.push_back(dtable);
        });
    }
    CHECK(bitwise_equal(results[0], results[1]));
    CHECK(bitwise_equal(results[1], results[2]));
}

TEST_CASE("embedding rejects out-of-range ids, naming the position, the id and V", "[embedding]") {
    Tensor table = random_tensor({17, 4}, 14);
    Tensor out = Tensor::empty({5, 4});
    Tensor negative = Tensor::from_vector<int32_t>({0, 1, 2, -1, 3}, {5});
    Tensor too_big = Tensor::from_vector<int32_t>({0, 1, 17, 2, 3}, {5});
    CHECK_THROWS_WITH(ops::embedding_forward(out, table, negative),
                      Catch::Contains("tokens[3] = -1") && Catch::Contains("V = 17"));
    CHECK_THROWS_WITH(ops::embedding_forward(out, table, too_big),
                      Catch::Contains("tokens[2] = 17") && Catch::Contains("V = 17"));
    // The backward checks every id before it writes anything.
    Tensor dtable = Tensor::zeros({17, 4});
    Tensor dout = random_tensor({5, 4}, 15);
    CHECK_THROWS_WITH(ops::embedding_backward(dtable, dout, too_big),
                      Catch::Contains("embedding_backward") && Catch::Contains("tokens[2] = 17"));
    CHECK(ops::sum_squares(dtable) == 0);
}

TEST_CASE("embedding rejects bad shapes and dtypes with a message naming them", "[embedding]") {
    Tensor table = random_tensor({17, 4}, 16);
    Tensor tokens = random_ints({5}, 17, 0, 17);
    Tensor wrong_out = Tensor::empty({5, 3});
    CHECK_THROWS_WITH(ops::embedding_forward(wrong_out, table, tokens),
                      Catch::Contains("out is F32 (5, 3)") && Catch::Contains("expected shape (5, 4)"));
    Tensor float_tokens = Tensor::zeros({5});
    Tensor out = Tensor::empty({5, 4});
    CHECK_THROWS_WITH(ops::embedding_forward(out, table, float_tokens), Catch::Contains("tokens must be I32"));
    Tensor flat_table = Tensor::zeros({68});
    CHECK_THROWS_WITH(ops::embedding_forward(out, flat_table, tokens), Catch::Contains("table must be 2-D"));
    Tensor out64 = Tensor::empty({5, 4}, DType::F64);
    CHECK_THROWS_WITH(ops::embedding_forward(out64, table, tokens), Catch::Contains("dtype and device must match"));
    Tensor dtable = Tensor::zeros({17, 4});
    Tensor wrong_dout = Tensor::zeros({4, 4});
    CHECK_THROWS_WITH(ops::embedding_backward(dtable, wrong_dout, tokens),
                      Catch::Contains("dout is F32 (4, 4)") && Catch::Contains("expected shape (5, 4)"));
}
