// Tests of the CPU ISA choice (src/runtime/cpu_isa.h) and of the op table's machine-dependent
// versions (kernels/versions.h, src/ops/op_table.cpp): version 0 falls back to what this CPU
// runs, an explicit version it cannot run is an error naming the ISA, ITTT_CPU lowers the ISA
// and refuses one the CPU lacks. Every case runs on any x86-64-v3 machine: lowering to AVX2
// is always possible; the cases that need the other kind of CPU say so where they skip.
#include <cstdlib>
#include <string>
#include <vector>

#include "cli_util.h"
#include "kernels/adamw/adamw.h"
#include "kernels/attention/attention.h"
#include "kernels/cross_entropy/cross_entropy.h"
#include "kernels/elementwise/elementwise.h"
#include "kernels/gemm/gemm.h"
#include "kernels/gemv/gemv.h"
#include "kernels/rmsnorm/rmsnorm.h"
#include "kernels/rope/rope.h"
#include "kernels/swiglu/swiglu.h"
#include "ops/op_table.h"
#include "ops/ops.h"
#include "runtime/cpu_isa.h"
#include "test_util.h"

using namespace ittt;
using Catch::Contains;
using ittt::test::random_tensor;
using ittt::test::ScopedVersion;

namespace {

// Chooses the ISA for one scope, then goes back to ITTT_CPU / cpuid (also when a check throws).
struct ScopedCpuIsa {
    explicit ScopedCpuIsa(const std::string& name) { set_cpu_isa(name); }
    ~ScopedCpuIsa() { set_cpu_isa(""); }
    ScopedCpuIsa(const ScopedCpuIsa&) = delete;
    ScopedCpuIsa& operator=(const ScopedCpuIsa&) = delete;
};

// Availability tests for the made-up rows below.
bool never() { return false; }
bool always() { return true; }

}  // namespace

TEST_CASE("cpu isa: cpuid decides, set_cpu_isa and ITTT_CPU can only lower it", "[cpu_isa]") {
    const CpuIsa detected = cpu_isa_detected();
    INFO("this CPU: " << describe_cpu_isa());
    // What ITTT_CPU chose for this run (make test sets none: then cpuid's answer).
    const char* env = std::getenv("ITTT_CPU");
    const CpuIsa start = env && std::string(env) == "avx2" ? CpuIsa::AVX2 : detected;
    CHECK(cpu_isa() == start);
    CHECK_THAT(describe_cpu_isa(), Contains(cat("(cpuid: ", cpu_isa_name(detected))));
    CHECK_THAT(device::describe(Device::CPU), Contains(cat("ISA ", cpu_isa_name(start), " (cpuid: ", cpu_isa_name(detected))));
    {
        ScopedCpuIsa avx2("avx2");
        CHECK(cpu_isa() == CpuIsa::AVX2);
        CHECK_FALSE(cpu_runs_avx512());
        CHECK(cpu_runs(CpuIsa::AVX2));
        CHECK_THAT(describe_cpu_isa(), Contains("AVX2 (cpuid: ") && Contains("set_cpu_isa(\"avx2\")"));
    }
    CHECK(cpu_isa() == start);
    CHECK_THROWS_WITH(set_cpu_isa("sse2"), Contains("expected avx2 or avx512, found 'sse2'") && Contains(cpu_isa_name(detected)));
    if (detected == CpuIsa::AVX512) {
        ScopedCpuIsa avx512("avx512");
        CHECK(cpu_runs_avx512());
    } else {
        CHECK_THROWS_WITH(set_cpu_isa("avx512"), Contains("this CPU has no AVX-512 (cpuid reports AVX2)"));
    }
    CHECK(cpu_isa() == start);
}

TEST_CASE("op table: version 0 is best if available, else the highest available below it", "[cpu_isa]") {
    // Made-up rows: what the rule does with each pattern of availability.
    auto versions = [](bool (*two)(), bool (*three)()) {
        ops::DeviceVersions dv;
        dv.best = 3;
        dv.versions = {{1, "reference", "", "", {}}, {2, "two", "", "", {}, two ? "ISA two" : "", two}, {3, "three", "", "", {}, "ISA three", three}};
        return dv;
    };
    CHECK(versions(nullptr, always).best_here() == 3);
    CHECK(versions(nullptr, never).best_here() == 2);
    CHECK(versions(never, never).best_here() == 1);
    CHECK(versions(always, never).best_here() == 2);
    CHECK_THAT(versions(never, never).describe(),
               Contains("2 two (needs ISA two: not here), 3 three (needs ISA three: not here); 0 = best = 1"));
    // Above best nothing is chosen, even when available: best is the table's judgement.
    ops::DeviceVersions four = versions(nullptr, always);
    four.best = 2;
    four.versions.push_back({4, "four", "", "", {}});
    CHECK(four.best_here() == 2);
}

TEST_CASE("op table: an AVX-512 version on an AVX2 CPU (or under ITTT_CPU=avx2) is refused by name", "[cpu_isa]") {
    ScopedCpuIsa avx2("avx2");  // what an AVX2-only CPU sees
    const ops::DeviceVersions& gemm = ops::op_spec("gemm").cpu;
    CHECK(gemm.best == 3);
    CHECK(gemm.best_here() == 2);
    CHECK(ops::selected_version("gemm", Device::CPU, "test") == 2);
    CHECK_THAT(gemm.describe(), Contains("3 blocked AVX-512 (needs AVX-512: not here); 0 = best = 2"));
    const std::string table = ops::describe_op_table();
    CHECK_THAT(table, Contains("CPU ISA in use: AVX2"));
    CHECK_THAT(table, Contains("cpu   2* blocked"));
    CHECK_THAT(table, Contains("[gemm_blocked_avx512_cpu]  (not here: needs AVX-512; this CPU runs AVX2"));

    Tensor A = random_tensor({4, 3}, 1), B = random_tensor({3, 5}, 2), C = Tensor::zeros({4, 5});
    ops::matmul(C, A, false, B, false);  // version 0: runs version 2
    ScopedVersion three("gemm", 3);      // accepted when set: CUDA has a version 3 too
    CHECK_THROWS_WITH(ops::matmul(C, A, false, B, false),
                      Contains("matmul: gemm CPU version 3 (blocked AVX-512) needs AVX-512; this CPU runs AVX2"));
}

TEST_CASE("op table: every row that needs something says what, and version 1 needs nothing", "[cpu_isa]") {
    // op_table() checks this when it is built; here it is visible as a test.
    for (const ops::OpSpec& op : ops::op_table())
        for (const ops::DeviceVersions* dv : {&op.cpu, &op.cuda}) {
            if (dv->versions.empty()) continue;
            CHECK(dv->versions[0].runs_here());
            for (const ops::VersionInfo& v : dv->versions) CHECK((v.available == nullptr) == (std::string(v.needs).empty()));
        }
}

TEST_CASE("cli: ITTT_CPU picks the ISA; info names it; a version the CPU cannot run is an error", "[cpu_isa][cli]") {
    test::TempDir tmp("ittt_test_cpu_isa");
    test::Result info = test::run_ittt(tmp, "info", "ITTT_CPU=");
    CHECK(info.rc == 0);
    CHECK_THAT(info.out, Contains(cat("ISA ", cpu_isa_name(cpu_isa_detected()), " (cpuid: ", cpu_isa_name(cpu_isa_detected()))));

    test::Result avx2 = test::run_ittt(tmp, "info", "ITTT_CPU=avx2");
    CHECK(avx2.rc == 0);
    CHECK_THAT(avx2.out, Contains("ISA AVX2 (cpuid: ") && Contains("; ITTT_CPU=avx2)"));
    test::Result kernels = test::run_ittt(tmp, "info --kernels", "ITTT_CPU=avx2");
    CHECK_THAT(kernels.out, Contains("CPU ISA in use: AVX2") && Contains("(not here: needs AVX-512; this CPU runs AVX2"));

    test::Result bad = test::run_ittt(tmp, "info", "ITTT_CPU=avx9");
    CHECK(bad.rc == 1);
    CHECK_THAT(bad.err, Contains("ITTT_CPU: expected avx2 or avx512, found 'avx9'"));
    test::Result avx512 = test::run_ittt(tmp, "info", "ITTT_CPU=avx512");
    if (cpu_isa_detected() == CpuIsa::AVX512) CHECK(avx512.rc == 0);
    else CHECK_THAT(avx512.err, Contains("ITTT_CPU=avx512: this CPU has no AVX-512 (cpuid reports AVX2)"));

    const std::string forward = "forward --ckpt " + test::repo_file("data/demo") + " --tokens 1,5,9 --kernel gemm=3";
    test::Result refused = test::run_ittt(tmp, forward, "ITTT_CPU=avx2");
    CHECK(refused.rc == 1);
    CHECK_THAT(refused.err, Contains("gemm CPU version 3 (blocked AVX-512) needs AVX-512; this CPU runs AVX2"));
}

TEST_CASE("every AVX-512 kernel file compiles the GCC 12 pin right: its constant vectors survive", "[cpu_isa][avx512]") {
    // Each *_avx512_cpu.cpp is compiled for AVX-512 by target pragmas, where GCC 12.2 loads some
    // constant vectors as a broadcast of their first element (tests/test_runtime.cpp). Each file
    // holds the pin, a copy of {1, 1, 0, 0} and {3, 3, 3, 3, 3, 3, 0, 0} compiled with its own
    // options: the file's "no-tree-vectorize" line must keep them intact.
    struct Pin {
        const char* op;
        int version;
        void (*known_answers)(double[4], float[8]);
    };
    for (const Pin& pin : {Pin{"gemm", 3, &kernels::gemm_avx512_known_answers}, Pin{"gemv", 3, &kernels::gemv_avx512_known_answers},
                           Pin{"attention", 3, &kernels::attention_avx512_known_answers}, Pin{"rmsnorm", 2, &kernels::rmsnorm_avx512_known_answers},
                           Pin{"swiglu", 2, &kernels::swiglu_avx512_known_answers},
                           Pin{"cross_entropy", 2, &kernels::cross_entropy_avx512_known_answers},
                           Pin{"elementwise", 2, &kernels::elementwise_avx512_known_answers},
                           Pin{"adamw", 2, &kernels::adamw_avx512_known_answers},
                           Pin{"rope", 2, &kernels::rope_avx512_known_answers}}) {
        INFO(pin.op << " version " << pin.version);
        if (test::cpu_versions_here(pin.op, pin.version).empty()) continue;  // counted and reported: no AVX-512 here
        double f64[4];
        float f32[8];
        pin.known_answers(f64, f32);
        CHECK(std::vector<double>(f64, f64 + 4) == std::vector<double>{1, 1, 0, 0});
        CHECK(std::vector<float>(f32, f32 + 8) == std::vector<float>{3, 3, 3, 3, 3, 3, 0, 0});
    }
}
