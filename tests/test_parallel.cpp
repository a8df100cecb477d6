// Context parallelism (docs/parallelism.md).
//
// [parallel]: the pieces that need no MPI: the slice plan, the chunk-local conv that
// lets slices skip a TTT halo, the block attention the ring is made of (on the CPU, and on
// CUDA the ring's schedule of ops in one process, [cuda]).
// [mpi]: launches `mpirun --oversubscribe -np R` on build/ittt_cp_check (equivalence
// with one process for R = 1..4, a dying, a hanging and a mismatched rank) and on
// build/ittt (forward, eval, 20 training steps, inputs that differ between ranks).
// Skipped, with the reason printed, in a build without MPI.
#include <sstream>

#include "io/json.h"
#include "kernels/attention_block/attention_block.h"
#include "ops/ops.h"
#include "parallel/slice_plan.h"
#include "test_process.h"
#include "test_util.h"

using namespace ittt;
using namespace ittt::test;
using Catch::Contains;

// ---------------------------------------------------------------- slice plan

TEST_CASE("slice plan: contiguous chunk-aligned slices, balanced, the short chunk last", "[parallel]") {
    parallel::SlicePlan p = parallel::SlicePlan::make(22, 4, 4);  // 6 chunks: 2, 2, 1, 1
    CHECK(p.starts == std::vector<int64_t>{0, 8, 16, 20, 22});
    CHECK(p.owner(0) == 0);
    CHECK(p.owner(15) == 1);
    CHECK(p.owner(21) == 3);
    for (int64_t n = 1; n <= 41; ++n)
        for (int C = 1; C <= 6; ++C)
            for (int R = 1; R <= 5; ++R) {
                if ((n + C - 1) / C < R) continue;
                parallel::SlicePlan q = parallel::SlicePlan::make(n, C, R);
                INFO("n " << n << " C " << C << " R " << R);
                REQUIRE(q.starts.size() == static_cast<size_t>(R) + 1);
                CHECK(q.begin(0) == 0);
                CHECK(q.end(R - 1) == n);
                int64_t min_chunks = n, max_chunks = 0;
                for (int r = 0; r < R; ++r) {
                    CHECK(q.begin(r) % C == 0);                      // every slice starts on a chunk edge
                    CHECK(q.length(r) >= 1);
                    if (r + 1 < R) CHECK(q.length(r) % C == 0);      // only the last may end inside a chunk
                    int64_t chunks = (q.length(r) + C - 1) / C;
                    min_chunks = std::min(min_chunks, chunks);
                    max_chunks = std::max(max_chunks, chunks);
                    CHECK(q.owner(q.begin(r)) == r);
                    CHECK(q.owner(q.end(r) - 1) == r);
                }
                CHECK(max_chunks - min_chunks <= 1);
            }
    CHECK_THROWS_WITH(parallel::SlicePlan::make(10, 4, 4), Contains("3 chunks of ttt_chunk 4, fewer than the 4 ranks"));
}

TEST_CASE("slice plan: a window wider than a slice takes its halo from several ranks", "[parallel]") {
    parallel::SlicePlan p = parallel::SlicePlan::make(22, 4, 4);  // 0 | 8 | 16 | 20 | 22
    // rank 3 starts at 20; window 11 reaches back to 10: rows 10..15 of rank 1, 16..19 of rank 2
    auto src = p.halo_sources(3, 11);
    REQUIRE(src.size() == 2);
    CHECK((src[0].rank == 1 && src[0].begin == 10 && src[0].end == 16));
    CHECK((src[1].rank == 2 && src[1].begin == 16 && src[1].end == 20));
    CHECK(p.halo_sources(0, 11).empty());
    CHECK(p.halo_sources(2, 1).empty());  // window 1: a query sees only itself
    CHECK(p.halo_sources(2, 0).empty());  // no window: the ring's job
    // the sender's view is the same relation
    auto dst = p.halo_destinations(1, 11);
    REQUIRE(dst.size() == 2);
    CHECK((dst[0].rank == 2 && dst[0].begin == 8 && dst[0].end == 16));
    CHECK((dst[1].rank == 3 && dst[1].begin == 10 && dst[1].end == 16));
}

// ---------------------------------------------------------------- the TTT conv needs no halo

TEST_CASE("TTT conv: a chunk-aligned slice gives the same values alone, a misaligned one does not", "[parallel][conv1d]") {
    // This is why context parallelism cuts sequences on chunk edges: the conv that builds
    // the TTT targets is cut at chunk edges, so a slice that starts on one computes its rows
    // exactly as the whole sequence does, with nothing from its neighbour.
    const int64_t B = 2, n = 23, d = 5, C = 4;
    const std::vector<int> offsets = {-2, -1, 0, 1, 2};
    Tensor x = random_tensor({B, n, d}, 1, 1.0, DType::F64);
    Tensor w = random_tensor({d, 5}, 2, 0.7, DType::F64);
    Tensor full = Tensor::empty({B, n, d}, DType::F64);
    ops::conv1d_chunked_forward(full, x, w, offsets, C);
    auto slice = [&](const Tensor& t, int64_t b0, int64_t b1) {
        Tensor out = Tensor::empty({B, b1 - b0, d}, DType::F64);
        for (int64_t b = 0; b < B; ++b) {
            Tensor dst = out.view({B * (b1 - b0), d}).rows(b * (b1 - b0), (b + 1) * (b1 - b0));
            dst.copy_from(t.view({B * n, d}).rows(b * n + b0, b * n + b1));
        }
        return out;
    };
    auto conv_alone = [&](int64_t b0, int64_t b1) {
        Tensor part = slice(x, b0, b1), out = Tensor::empty(part.shape(), DType::F64);
        ops::conv1d_chunked_forward(out, part, w, offsets, C);
        return out;
    };
    for (auto [b0, b1] : std::vector<std::pair<int64_t, int64_t>>{{0, 8}, {8, 12}, {12, 23}, {4, 20}}) {
        INFO("slice [" << b0 << ", " << b1 << ")");
        CHECK(bitwise_equal(conv_alone(b0, b1), slice(full, b0, b1)));
    }
    // starting at row 5 (inside chunk 1), the slice cuts the conv where the sequence does not
    std::vector<double> alone = conv_alone(5, 12).to_f64_vector(), whole = slice(full, 5, 12).to_f64_vector();
    double max_diff = 0;
    for (size_t i = 0; i < alone.size(); ++i) max_diff = std::max(max_diff, std::fabs(alone[i] - whole[i]));
    CHECK(max_diff > 0.1);
}

// ---------------------------------------------------------------- block attention (the ring's pieces)

namespace {
struct BlockCase {
    int64_t B, n, Hq, Hkv, hd;
    int window;
    std::vector<int64_t> cuts;  // key blocks [cuts[i], cuts[i+1])
    int64_t q0;                 // queries of rows [q0, n)
};
}  // namespace

TEST_CASE("block attention: blocks merged by log-sum-exp equal one attention call, forward and backward", "[parallel][attention]") {
    const std::vector<BlockCase> cases = {
        {1, 13, 2, 2, 4, 0, {0, 5, 9, 13}, 0},   // full attention, three blocks
        {2, 17, 4, 2, 3, 0, {0, 8, 16, 17}, 8},  // GQA, a one-key block, the queries of the later rows only
        {2, 19, 4, 1, 4, 6, {0, 4, 11, 19}, 4},  // MQA, window 6 (a block can be out of reach of a query)
        {1, 9, 2, 1, 2, 1, {0, 3, 9}, 0},        // window 1: each query sees itself only
    };
    for (DType dtype : {DType::F64, DType::F32}) {
        // F64: the merge is exact up to rounding; F32: rounding of ~n terms in another order
        const double tol = dtype == DType::F64 ? 1e-12 : 2e-5;
        for (const BlockCase& c : cases) {
            INFO("n " << c.n << " window " << c.window << " q0 " << c.q0 << " " << dtype_name(dtype));
            Tensor q = random_tensor({c.B, c.n, c.Hq, c.hd}, 3, 1.0, dtype), k = random_tensor({c.B, c.n, c.Hkv, c.hd}, 4, 1.0, dtype);
            Tensor v = random_tensor({c.B, c.n, c.Hkv, c.hd}, 5, 1.0, dtype), dout = random_tensor({c.B, c.n, c.Hq, c.hd}, 6, 1.0, dtype);
            // reference: the ordinary op on the whole sequence
            Tensor out = Tensor::empty(q.shape(), dtype), lse = Tensor::empty({c.B, c.Hq, c.n}, dtype);
            ops::attention_forward(out, lse, q, k, v, 0, c.window);
            Tensor dq = Tensor::empty(q.shape(), dtype), dk = Tensor::empty(k.shape(), dtype), dv = Tensor::empty(v.shape(), dtype);
            ops::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, c.window);

            // the rows [q0, n) of a tensor (B, n, ...), and a block [b0, b1) of keys
            auto rows = [&](const Tensor& t, int64_t r0, int64_t r1) {
                Shape s = t.shape();
                const int64_t W = t.numel() / (c.B * c.n);
                s[1] = r1 - r0;
                Tensor o = Tensor::empty(s, dtype);
                for (int64_t b = 0; b < c.B; ++b) {
                    Tensor dst = o.view({c.B * (r1 - r0), W}).rows(b * (r1 - r0), (b + 1) * (r1 - r0));
                    dst.copy_from(t.view({c.B * c.n, W}).rows(b * c.n + r0, b * c.n + r1));
                }
                return o;
            };
            const int64_t nq = c.n - c.q0;
            Tensor qs = rows(q, c.q0, c.n), douts = rows(dout, c.q0, c.n);
            Tensor acc = Tensor::empty(qs.shape(), dtype), acc_lse = Tensor::empty({c.B, c.Hq, nq}, dtype);
            Tensor part = Tensor::empty(qs.shape(), dtype), part_lse = Tensor::empty({c.B, c.Hq, nq}, dtype);
            auto dims_of = [&](int64_t b0, int64_t b1) {
                kernels::AttentionBlockDims d;
                d.B = c.B, d.nq = nq, d.nk = b1 - b0, d.Hq = c.Hq, d.Hkv = c.Hkv, d.hd = c.hd;
                d.q_pos0 = c.q0, d.k_pos0 = b0, d.window = c.window;
                return d;
            };
            auto run = [&](auto tag) {
                using T = decltype(tag);
                // forward: the first block initialises, every other merges in
                for (size_t i = 0; i + 1 < c.cuts.size(); ++i) {
                    const int64_t b0 = c.cuts[i], b1 = c.cuts[i + 1];
                    Tensor kb = rows(k, b0, b1), vb = rows(v, b0, b1);
                    Tensor& o = i == 0 ? acc : part;
                    Tensor& l = i == 0 ? acc_lse : part_lse;
                    kernels::attention_block_forward_cpu<T>(dims_of(b0, b1), o.data<T>(), l.data<T>(), qs.data<T>(), kb.data<T>(), vb.data<T>());
                    if (i > 0)
                        kernels::attention_block_merge_cpu<T>(c.B, nq, c.Hq, c.hd, acc.data<T>(), acc_lse.data<T>(), part.data<T>(), part_lse.data<T>());
                }
                // backward: each block's dk, dv from the final out and lse; dq summed over blocks
                Tensor dqs = Tensor::zeros(qs.shape(), dtype);
                for (size_t i = 0; i + 1 < c.cuts.size(); ++i) {
                    const int64_t b0 = c.cuts[i], b1 = c.cuts[i + 1];
                    Tensor kb = rows(k, b0, b1), vb = rows(v, b0, b1);
                    Tensor dkb = Tensor::empty(kb.shape(), dtype), dvb = Tensor::empty(vb.shape(), dtype);
                    kernels::attention_block_backward_cpu<T>(dims_of(b0, b1), dqs.data<T>(), dkb.data<T>(), dvb.data<T>(), douts.data<T>(),
                                                             qs.data<T>(), kb.data<T>(), vb.data<T>(), acc.data<T>(), acc_lse.data<T>());
                    if (c.q0 == 0) {  // with every query present, each block's dk, dv is the whole gradient of its keys
                        CHECK(check_close(dkb, rows(dk, b0, b1), tol, tol, "dk of a block"));
                        CHECK(check_close(dvb, rows(dv, b0, b1), tol, tol, "dv of a block"));
                    }
                }
                CHECK(check_close(dqs, rows(dq, c.q0, c.n), tol, tol, "dq summed over blocks"));
            };
            if (dtype == DType::F64) run(double{});
            else run(float{});
            CHECK(check_close(acc, rows(out, c.q0, c.n), tol, tol, "out merged over blocks"));
            // lse (B, Hq, n): its rows [q0, n) along the last dim
            Tensor lse_ref = Tensor::empty({c.B, c.Hq, nq}, dtype);
            for (int64_t bh = 0; bh < c.B * c.Hq; ++bh) {
                Tensor dst = lse_ref.view({c.B * c.Hq * nq, 1}).rows(bh * nq, (bh + 1) * nq);
                dst.copy_from(lse.view({c.B * c.Hq * c.n, 1}).rows(bh * c.n + c.q0, (bh + 1) * c.n));
            }
            CHECK(check_close(acc_lse, lse_ref, tol, tol, "lse merged over blocks"));
        }
    }
}

namespace {
// Rows [r0, r1) of every sequence of x (B, n, ...), on the host.
Tensor sequence_rows(const Tensor& x, int64_t r0, int64_t r1) {
    const int64_t B = x.dim(0), n = x.dim(1), W = x.numel() / (B * n);
    Shape s = x.shape();
    s[1] = r1 - r0;
    Tensor out = Tensor::empty(s, x.dtype());
    for (int64_t b = 0; b < B; ++b)
        out.view({B * (r1 - r0), W}).rows(b * (r1 - r0), (b + 1) * (r1 - r0)).copy_from(x.view({B * n, W}).rows(b * n + r0, b * n + r1));
    return out;
}
}  // namespace

TEST_CASE("ring attention's schedule on CUDA tensors: every rank's slice equals one attention call, forward and backward",
          "[cuda][parallel][attention]") {
    ITTT_SKIP_WITHOUT_CUDA();
    // What src/parallel/attention_parallel.cpp runs on rank r, with the exchanges left out:
    // the diagonal block through the attention op (flash, version 2, from the final lse), the
    // earlier blocks r-1, ..., 0 through attention_block_forward and _merge, then each earlier
    // block's share of dq, dk, dv through attention_block_backward, the shares of dk, dv added
    // into the block's owner. Against ops::attention_forward/backward on the whole sequence, CPU F64.
    const std::vector<BlockCase> cases = {
        {1, 13, 2, 2, 4, 0, {0, 5, 9, 13}, 0},     // full attention, three ranks
        {2, 17, 4, 2, 3, 0, {0, 8, 16, 17}, 0},    // GQA, a rank of one token
        {2, 19, 4, 1, 4, 6, {0, 4, 11, 19}, 0},    // MQA, window 6 (an earlier block out of reach of some queries)
        {1, 40, 4, 2, 64, 0, {0, 16, 32, 40}, 0},  // head dim 64, the short slice last
    };
    const double tol = 2e-5;  // F32 rounding of sums of ~n terms in another order, as the CPU F32 check above
    ScopedVersion flash("attention", 2);  // the ring's diagonal backward needs version 2 (attention_parallel.cpp)
    for (const BlockCase& c : cases) {
        INFO("n " << c.n << " hd " << c.hd << " window " << c.window << ", " << c.cuts.size() - 1 << " ranks");
        Tensor q = random_tensor({c.B, c.n, c.Hq, c.hd}, 3), k = random_tensor({c.B, c.n, c.Hkv, c.hd}, 4);
        Tensor v = random_tensor({c.B, c.n, c.Hkv, c.hd}, 5), dout = random_tensor({c.B, c.n, c.Hq, c.hd}, 6);
        auto f64 = [](const Tensor& t) { return t.to_dtype(DType::F64); };
        Tensor out = Tensor::empty(q.shape(), DType::F64), lse = Tensor::empty({c.B, c.Hq, c.n}, DType::F64);
        ops::attention_forward(out, lse, f64(q), f64(k), f64(v), 0, c.window);
        Tensor dq = Tensor::empty(q.shape(), DType::F64), dk = Tensor::empty(k.shape(), DType::F64), dv = Tensor::empty(v.shape(), DType::F64);
        ops::attention_backward(dq, dk, dv, f64(dout), f64(q), f64(k), f64(v), out, lse, c.window);

        const size_t R = c.cuts.size() - 1;
        auto slice = [&](const Tensor& x, size_t r) { return sequence_rows(x, c.cuts[r], c.cuts[r + 1]).to(Device::CUDA); };
        std::vector<Tensor> dk_rank(R), dv_rank(R);  // each rank's own block's gradients, shares added as they come back
        for (size_t r = 0; r < R; ++r) {
            const int64_t nq = c.cuts[r + 1] - c.cuts[r];
            Tensor qr = slice(q, r), kr = slice(k, r), vr = slice(v, r), dor = slice(dout, r);
            Tensor o = Tensor::empty(qr.shape(), DType::F32, Device::CUDA), l = Tensor::empty({c.B, c.Hq, nq}, DType::F32, Device::CUDA);
            ops::attention_forward(o, l, qr, kr, vr, 0, c.window);
            Tensor ob = Tensor::empty(qr.shape(), DType::F32, Device::CUDA), lb = Tensor::empty({c.B, c.Hq, nq}, DType::F32, Device::CUDA);
            for (size_t j = r; j-- > 0;) {
                ops::attention_block_forward(ob, lb, qr, slice(k, j), slice(v, j), c.cuts[r], c.cuts[j], c.window);
                ops::attention_block_merge(o, l, ob, lb);
            }
            CHECK(check_close(o.to(Device::CPU), sequence_rows(out, c.cuts[r], c.cuts[r + 1]), tol, tol, cat("out of rank ", r)));
            Tensor lse_ref = Tensor::empty({c.B, c.Hq, nq}, DType::F64);  // lse (B, Hq, n): the slice along its last dim
            for (int64_t bh = 0; bh < c.B * c.Hq; ++bh)
                lse_ref.view({c.B * c.Hq * nq, 1}).rows(bh * nq, (bh + 1) * nq).copy_from(
                    lse.view({c.B * c.Hq * c.n, 1}).rows(bh * c.n + c.cuts[r], bh * c.n + c.cuts[r + 1]));
            CHECK(check_close(l.to(Device::CPU), lse_ref, tol, tol, cat("lse of rank ", r)));

            Tensor dqr = Tensor::empty(qr.shape(), DType::F32, Device::CUDA);
            dk_rank[r] = Tensor::empty(kr.shape(), DType::F32, Device::CUDA);
            dv_rank[r] = Tensor::empty(vr.shape(), DType::F32, Device::CUDA);
            ops::attention_backward(dqr, dk_rank[r], dv_rank[r], dor, qr, kr, vr, o, l, c.window);
            for (size_t j = r; j-- > 0;) {
                Tensor sk = Tensor::empty(slice(k, j).shape(), DType::F32, Device::CUDA), sv = Tensor::empty(sk.shape(), DType::F32, Device::CUDA);
                ops::attention_block_backward(dqr, sk, sv, dor, qr, slice(k, j), slice(v, j), o, l, c.cuts[r], c.cuts[j], c.window);
                ops::add_inplace(dk_rank[j], sk);  // rank j gets its block's share from rank r
                ops::add_inplace(dv_rank[j], sv);
            }
            CHECK(check_close(dqr.to(Device::CPU), sequence_rows(dq, c.cuts[r], c.cuts[r + 1]), tol, tol, cat("dq of rank ", r)));
        }
        for (size_t r = 0; r < R; ++r) {
            CHECK(check_close(dk_rank[r].to(Device::CPU), sequence_rows(dk, c.cuts[r], c.cuts[r + 1]), tol, tol, cat("dk of rank ", r)));
            CHECK(check_close(dv_rank[r].to(Device::CPU), sequence_rows(dv, c.cuts[r], c.cuts[r + 1]), tol, tol, cat("dv of rank ", r)));
        }
    }
}

// ---------------------------------------------------------------- [mpi]: several processes

namespace {

// A program beside this test binary (build/ittt_cp_check, build/ittt).
std::string beside(const std::string& name) { return self_dir() + "/" + name; }

// OpenMPI, as root, refuses to start without the two ALLOW variables; one OpenMP
// thread per rank, because the ranks already outnumber the cores. Under `make sanitize`
// LeakSanitizer would report OpenMPI's own allocations at exit: off for these children
// (the single-process tests check this code's leaks).
Result run(const TempDir& tmp, const std::string& cmd) {
    std::string asan = "ASAN_OPTIONS=detect_leaks=0";
    if (const char* a = std::getenv("ASAN_OPTIONS")) asan = "ASAN_OPTIONS=" + std::string(a) + ":detect_leaks=0";
    return run_shell(tmp, "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " + asan + " " + cmd);
}

std::string mpirun(int ranks) { return "mpirun --oversubscribe -np " + std::to_string(ranks) + " "; }

// Every number of the arrays under `key` in a JSON document (one level of nesting).
std::vector<double> numbers(const Json& j) {
    std::vector<double> out;
    if (j.is_number()) out.push_back(j.as_number());
    if (j.is_array())
        for (const Json& x : j.as_array())
            for (double v : numbers(x)) out.push_back(v);
    return out;
}

std::vector<double> losses_of(const std::string& json_lines) {
    std::vector<double> out;
    std::stringstream ss(json_lines);
    for (std::string line; std::getline(ss, line);)
        if (line.rfind("{\"step\"", 0) == 0) out.push_back(Json::parse(line, "train --json").at("loss").as_number());
    return out;
}

}  // namespace

TEST_CASE("mpi: R = 1, 2, 3, 4 ranks give the one-process logits and gradients, and the bytes of the cost model", "[mpi]") {
    ITTT_SKIP_WITHOUT_MPI();
    TempDir tmp("ittt_test_parallel");
    for (int R = 1; R <= 4; ++R) {
        Result r = run(tmp, mpirun(R) + beside("ittt_cp_check") + " equivalence");
        INFO("R = " << R << "\nstdout:\n" << r.out << "stderr:\n" << r.err);
        std::printf("%s", r.out.c_str());
        CHECK(r.rc == 0);
        CHECK_THAT(r.out, Contains("equivalence: 0 failures on " + std::to_string(R) + " rank"));
        CHECK(r.out.find("FAIL") == std::string::npos);
    }
}

TEST_CASE("mpi: a rank that dies, hangs or holds another model ends the job with a named error on rank 0", "[mpi]") {
    ITTT_SKIP_WITHOUT_MPI();
    TempDir tmp("ittt_test_parallel");
    // dies: mpirun stops rank 0, which says what it was waiting for; mpirun names the rank
    Result die = run(tmp, mpirun(2) + beside("ittt_cp_check") + " die");
    INFO("die: stderr:\n" << die.err);
    CHECK(die.rc != 0);
    CHECK_THAT(die.err, Contains("rank 0 of 2): stopped by SIGTERM") && Contains("waiting for") && Contains("from rank 1"));
    CHECK(die.seconds < 60);
    // hangs: rank 0's wait times out (3 s here) naming the rank it waited for
    Result hang = run(tmp, "ITTT_CP_TIMEOUT=3 " + mpirun(2) + beside("ittt_cp_check") + " hang");
    INFO("hang: stderr:\n" << hang.err);
    CHECK(hang.rc != 0);
    CHECK_THAT(hang.err, Contains("rank 0 of 2: timed out after 3 s waiting for rank 1"));
    CHECK(hang.seconds < 30);  // not the 60 s that rank 1 sleeps
    // another model: the check when the model is attached names the field
    Result mismatch = run(tmp, mpirun(2) + beside("ittt_cp_check") + " mismatch");
    INFO("mismatch: stderr:\n" << mismatch.err);
    CHECK(mismatch.rc != 0);
    CHECK_THAT(mismatch.err, Contains("rank 1 disagrees with rank 0 on the model: ttt_chunk is 8 on rank 1, 4 on rank 0"));
}

TEST_CASE("mpi: ittt train, forward and eval --context-parallel print what one process prints", "[mpi][cli]") {
    ITTT_SKIP_WITHOUT_MPI();
    TempDir tmp("ittt_test_parallel");
    const std::string ittt = beside("ittt"), config = repo_file("data/configs/tiny.json");
    // tiny.json: a sliding-window TTT layer (window 16, chunk 16) and a full-attention layer.
    // 40 tokens = 3 chunks (16, 16, 8): two slices of 16 and 24 tokens, or three.
    const std::string train = " train --config " + config + " --task induction --seq-len 40 --batch 4 --warmup 2 --lr 1e-2 --steps 20 --json";
    Result one = run(tmp, ittt + train + " --out " + (tmp / "one"));
    Result two = run(tmp, mpirun(2) + ittt + train + " --out " + (tmp / "two") + " --context-parallel");
    INFO("one process:\n" << one.out << one.err << "two ranks:\n" << two.out << two.err);
    REQUIRE(one.rc == 0);
    REQUIRE(two.rc == 0);
    std::vector<double> l1 = losses_of(one.out), l2 = losses_of(two.out);
    REQUIRE(l1.size() == 20);
    // the same 20 losses up to rounding: the ranks add the same terms in another order
    CHECK(check_close(l2, l1, 1e-5, 0, "training losses, 2 ranks vs 1 process"));
    std::printf("[mpi] 20 training steps: loss %.6f -> %.6f in one process, %.6f -> %.6f on 2 ranks\n", l1.front(), l1.back(),
                l2.front(), l2.back());

    const std::string ckpt = tmp / "one";  // trained: its TTT conv is no longer zero
    const std::string tokens = "1,5,9,2,3,4,11,12,13,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,2,9";
    Result f1 = run(tmp, ittt + " forward --ckpt " + ckpt + " --tokens " + tokens + " --json");
    for (int R : {2, 3}) {
        Result fr = run(tmp, mpirun(R) + ittt + " forward --ckpt " + ckpt + " --tokens " + tokens + " --json --context-parallel");
        INFO("forward on " << R << " ranks:\n" << fr.out << fr.err);
        REQUIRE(f1.rc == 0);
        REQUIRE(fr.rc == 0);
        std::vector<double> a = numbers(Json::parse(f1.out, "forward").at("logits")), b = numbers(Json::parse(fr.out, "forward").at("logits"));
        REQUIRE(a.size() == 43u * 68u);
        CHECK(check_close(b, a, 1e-5, 1e-5, "forward logits"));  // F32 rounding in another order
    }
    const std::string eval = " eval --ckpt " + ckpt + " --task induction --seq-len 40 --batch 4 --batches 2 --seed 9 --json";
    Result e1 = run(tmp, ittt + eval), e2 = run(tmp, mpirun(2) + ittt + eval + " --context-parallel");
    INFO("eval:\n" << e1.out << e1.err << e2.out << e2.err);
    REQUIRE(e1.rc == 0);
    REQUIRE(e2.rc == 0);
    Json j1 = Json::parse(e1.out, "eval"), j2 = Json::parse(e2.out, "eval");
    CHECK(j2.at("correct").as_int64() == j1.at("correct").as_int64());
    CHECK(j2.at("scored").as_int64() == j1.at("scored").as_int64());
    CHECK(std::fabs(j2.at("loss").as_number() - j1.at("loss").as_number()) <= 1e-5);
    // every rank must get the same input: two programs with different tokens (mpirun's MPMD form)
    Result bad = run(tmp, "mpirun --oversubscribe -np 1 " + ittt + " forward --ckpt " + ckpt + " --tokens " + tokens +
                           " --context-parallel : -np 1 " + ittt + " forward --ckpt " + ckpt + " --tokens 7," + tokens + " --context-parallel");
    INFO("different inputs:\n" << bad.err);
    CHECK(bad.rc != 0);
    CHECK_THAT(bad.err, Contains("rank 1 disagrees with rank 0 on the input: shape is (1, 44) on rank 1, (1, 43) on rank 0"));
}
