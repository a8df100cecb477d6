// test_ops_harness.cpp: the runner of the op harness (tests/ops_harness.h) and its test cases.
//
// Per op, two Catch2 cases: "[ops][<op>]" runs every case on the CPU (every CPU version, F64
// and F32) and the finite-difference checks; "[cuda][<op>]" runs every case on CUDA (every
// CUDA version, F32), skipped without a device. Both compare with the CPU reference
// (version 1, F64) and end by checking that every version row of the table ran in every
// dtype. ITTT_HARNESS_REPORT=1 prints, per op, device, version, dtype and output, the runs
// and the largest error as a fraction of its tolerance (the margin left), and the slowest
// case; ITTT_HARNESS_REPORT=2 every case's time as well.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <tuple>

#include "ops_harness.h"
#include "runtime/error.h"

namespace ittt::test::harness {

bool Named::has(const std::string& name) const {
    for (const auto& e : entries_)
        if (e.first == name) return true;
    return false;
}

Tensor& Named::operator[](const std::string& name) {
    for (auto& e : entries_)
        if (e.first == name) return e.second;
    throw std::runtime_error("ops harness: no tensor named '" + name + "'");
}

const Tensor& Named::operator[](const std::string& name) const { return const_cast<Named&>(*this)[name]; }

std::string Target::describe() const { return cat(device == Device::CUDA ? "CUDA" : "CPU", " v", version, " ", dtype_name(dtype)); }

namespace {

const std::vector<OpTest>& descriptions() {
    static const std::vector<OpTest> all = [] {
        std::vector<OpTest> ops;
        for (OpTest (*describe)() : {describe_gemm, describe_gemv, describe_attention, describe_attention_block, describe_embedding, describe_rmsnorm, describe_rope,
                                     describe_swiglu, describe_conv1d, describe_ttt_delta, describe_prefix_scan, describe_ttt_apply,
                                     describe_ttt_loop, describe_cross_entropy, describe_adamw, describe_elementwise})
            ops.push_back(describe());
        return ops;
    }();
    return all;
}

const OpTest* find_description(const std::string& op) {
    for (const OpTest& t : descriptions())
        if (t.op == op) return &t;
    return nullptr;
}

// ITTT_HARNESS_REPORT: 1 prints the runs and margins per op, device, version and dtype, and the
// slowest case; 2 also every case's time.
int report_level() {
    const char* e = std::getenv("ITTT_HARNESS_REPORT");
    return e == nullptr ? 0 : std::atoi(e);
}
bool report_wanted() { return report_level() >= 1; }

// Runs per (op, device, version, dtype), and the worst error/tolerance ratio per output.
using RunKey = std::tuple<std::string, Device, int, DType>;
std::map<RunKey, int>& run_counts() {
    static std::map<RunKey, int> counts;
    return counts;
}
struct Margin {
    double worst = 0;  // max over elements and cases of |x - ref| / (atol + rtol |ref|)
};
std::map<std::tuple<std::string, Device, int, DType, std::string>, Margin>& margins() {
    static std::map<std::tuple<std::string, Device, int, DType, std::string>, Margin> m;
    return m;
}

// The case's inputs for target t: float tensors in t's dtype (F32 -> F64 is exact), all on t's device.
Named inputs_for(const Named& in, const Target& t) {
    Named out;
    for (const auto& [name, x] : in.entries()) {
        Tensor y = (x.dtype() == DType::F32 || x.dtype() == DType::F64) && x.dtype() != t.dtype ? x.to_dtype(t.dtype) : x.clone();
        out.add(name, t.device == Device::CPU ? y : y.to(t.device));
    }
    return out;
}

// One run of case c on target t, outputs copied to the host.
Named run_case(const OpTest& op, const Case& c, const Named& inputs, const Target& t) {
    Named in = inputs_for(inputs, t);
    Named out;
    {
        ScopedVersion use(op.op, t.version);
        out = c.run(in, t);
    }
    Named on_host;
    for (const auto& [name, x] : out.entries()) on_host.add(name, host(x));
    return on_host;
}

// max_i |x_i - ref_i| / (atol + rtol |ref_i|): <= 1 passes; NaN anywhere gives NaN.
double worst_ratio(const std::vector<double>& x, const std::vector<double>& ref, double atol, double rtol) {
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double err = std::fabs(x[i] - ref[i]), bound = atol + rtol * std::fabs(ref[i]);
        if (std::isnan(err)) return err;
        if (err == 0) continue;
        worst = std::max(worst, bound > 0 ? err / bound : std::numeric_limits<double>::infinity());
    }
    return worst;
}

// Compares one output; a failure prints the label, the first mismatches and the max error.
void compare(const std::string& label, const Tensor& actual, const Tensor& ref, double atol, double rtol, Margin* margin) {
    if (actual.shape() != ref.shape()) {
        CHECK(check_close(actual, ref, atol, rtol, label));  // prints both shapes
        return;
    }
    const double ratio = worst_ratio(actual.to_f64_vector(), ref.to_f64_vector(), atol, rtol);
    if (margin) {
        margin->worst = std::isnan(ratio) || std::isnan(margin->worst) ? std::numeric_limits<double>::quiet_NaN()
                                                                       : std::max(margin->worst, ratio);
    }
    const bool within_tolerance = ratio <= 1;  // false for NaN
    if (!within_tolerance) check_close(actual, ref, atol, rtol, label);  // prints the label, the first mismatches, the max error
    CHECK(within_tolerance);
}

void stricter_check(const Tighter& k, const std::string& label, const Named& out, const Named& ref, const Named& cpu_f32, Margin* margin) {
    INFO("stricter check: " << k.why);
    const Tensor& against = k.against == Tighter::CpuF32 ? cpu_f32[k.output] : ref[k.output];
    const std::string name = cat(label, k.against == Tighter::CpuF32 ? " vs CPU v1 F32" : " vs F64", k.bitwise ? " (bitwise)" : "");
    if (k.bitwise) {
        const bool same = bitwise_equal(out[k.output], against);
        if (!same) check_close(out[k.output], against, 0, 0, name);  // prints where they differ
        CHECK(same);
        if (margin) margin->worst = std::max(margin->worst, same ? 0.0 : std::numeric_limits<double>::infinity());
    } else {
        compare(name, out[k.output], against, k.atol, k.rtol, margin);
    }
}

std::vector<DType> dtypes_of(Device d) {
    if (d == Device::CUDA) return {DType::F32};
    return {DType::F64, DType::F32};
}

const char* device_word(Device d) { return d == Device::CUDA ? "CUDA" : "CPU"; }

// The versions of `op` on device d that this machine runs; a row it cannot run (an AVX-512
// version on an AVX2 CPU) is counted in test::versions_skipped and printed at the end.
std::vector<ops::VersionInfo> versions_here(const std::string& op, Device d) {
    std::vector<ops::VersionInfo> here;
    for (const ops::VersionInfo& v : ops::op_spec(op).on(d).versions) {
        if (v.runs_here()) here.push_back(v);
        else ++versions_skipped[cat(op, " ", device_word(d), " version ", v.number, " (", v.name, ", needs ", v.needs, ")")];
    }
    return here;
}

// Every case of `op` on device d, every version and dtype, against the F64 reference.
void run_cases(const OpTest& op, Device d) {
    const std::vector<ops::VersionInfo> versions = versions_here(op.op, d);
    const std::vector<Case> cases = d == Device::CUDA ? subset_if_small(op.cases, op.small_stride) : op.cases;
    double slowest = 0;
    std::string slowest_shape;
    for (const Case& c : cases) {
        if ((c.cuda_only && d != Device::CUDA) || (c.cpu_only && d == Device::CUDA)) continue;
        INFO(op.op << " | " << c.shape);
        const auto start = std::chrono::steady_clock::now();
        const Named inputs = c.inputs();
        const Named ref = run_case(op, c, inputs, {Device::CPU, 1, DType::F64});
        Named cpu_f32;  // run when a stricter check asks for it
        for (const ops::VersionInfo& v : versions)
            for (DType dt : dtypes_of(d)) {
                const Target t{d, v.number, dt};
                Named out;
                try {
                    out = run_case(op, c, inputs, t);
                } catch (const std::exception& e) {
                    FAIL_CHECK(op.op << " | " << t.describe() << " | " << c.shape << ": threw: " << e.what());
                    continue;
                }
                ++run_counts()[{op.op, d, v.number, dt}];
                const ops::Tolerance tol = dt == DType::F64 ? kF64 : v.f32;
                INFO(t.describe() << " tolerance: atol " << tol.atol << ", rtol " << tol.rtol << " (" << tol.why << ")");
                for (const auto& [name, expected] : ref.entries()) {
                    const std::string label = cat(op.op, " | ", t.describe(), " | ", c.shape, " | ", name);
                    if (!out.has(name)) {
                        FAIL_CHECK(label << ": the run returned no such output");
                        continue;
                    }
                    compare(label, out[name], expected, tol.atol, tol.rtol, &margins()[{op.op, d, v.number, dt, name}]);
                }
                if (!c.tighter) continue;
                for (const Tighter& k : c.tighter(t)) {
                    if (k.against == Tighter::CpuF32 && cpu_f32.entries().empty())
                        cpu_f32 = run_case(op, c, inputs, {Device::CPU, 1, DType::F32});
                    stricter_check(k, cat(op.op, " | ", t.describe(), " | ", c.shape, " | ", k.output), out, ref, cpu_f32,
                                   &margins()[{op.op, d, v.number, dt, k.output + (k.bitwise ? " (bitwise)" : " (stricter)")}]);
                }
            }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (seconds > slowest) slowest = seconds, slowest_shape = c.shape;
        if (report_level() >= 2) std::printf("ops harness: %.3f s: %s | %s\n", seconds, op.op.c_str(), c.shape.c_str());
    }
    if (report_wanted()) std::printf("ops harness: %s on %s: slowest case %.3f s: %s\n", op.op.c_str(), device_word(d), slowest, slowest_shape.c_str());
}

// The backward of every CPU version against central differences of the reference forward.
void run_grad_cases(const OpTest& op) {
    const std::vector<ops::VersionInfo> versions = versions_here(op.op, Device::CPU);
    for (const GradCase& g : op.grad_cases) {
        INFO(op.op << " | finite differences | " << g.shape << " | " << g.fd.why);
        Named in = g.inputs();
        std::vector<std::vector<double>> fd;
        {
            ScopedVersion reference(op.op, 1);
            for (const std::string& x : g.wrt) fd.push_back(finite_difference(in[x], [&] { return g.loss(in); }));
        }
        for (const ops::VersionInfo& v : versions) {
            Named grads;
            {
                ScopedVersion use(op.op, v.number);
                grads = g.gradient(in);
            }
            for (size_t k = 0; k < g.wrt.size(); ++k) {
                const std::string label = cat(op.op, " | CPU v", v.number, " F64 backward vs finite differences | ", g.shape, " | d", g.wrt[k]);
                CHECK(check_close(grads[g.wrt[k]].to_f64_vector(), fd[k], g.fd.atol, g.fd.rtol, label));
            }
        }
    }
}

// Every version row of the table ran, in every dtype of the device: a version added to the
// table is tested here with no new test code, and one the cases skip is an error (a row this
// machine cannot run is counted as skipped instead, and printed).
void check_every_version_ran(const OpTest& op, Device d) {
    for (const ops::VersionInfo& v : ops::op_spec(op.op).on(d).versions) {
        if (!v.runs_here()) continue;
        for (DType dt : dtypes_of(d)) {
            const int runs = run_counts()[{op.op, d, v.number, dt}];
            INFO(op.op << ": " << device_word(d) << " version " << v.number << " (" << v.name << ") in " << dtype_name(dt) << " ran "
                       << runs << " times");
            CHECK(runs > 0);
        }
    }
}

void print_report(const OpTest& op, Device d) {
    if (!report_wanted()) return;
    for (const ops::VersionInfo& v : ops::op_spec(op.op).on(d).versions)
        for (DType dt : dtypes_of(d)) {
            std::printf("ops harness: %-13s %-4s v%d %-20s %s: %d runs;", op.op.c_str(), device_word(d), v.number, v.name, dtype_name(dt),
                        run_counts()[{op.op, d, v.number, dt}]);
            for (const auto& [key, m] : margins())
                if (std::get<0>(key) == op.op && std::get<1>(key) == d && std::get<2>(key) == v.number && std::get<3>(key) == dt)
                    std::printf(" %s %.2g", std::get<4>(key).c_str(), m.worst);
            std::printf("  (largest error / tolerance per output)\n");
        }
    if (d == Device::CPU && !op.grad_cases.empty())
        std::printf("ops harness: %-13s finite differences: %zu shapes x %zu CPU versions\n", op.op.c_str(), op.grad_cases.size(),
                    ops::op_spec(op.op).cpu.versions.size());
}

const OpTest& description_of(const std::string& op) {
    const OpTest* t = find_description(op);
    if (t == nullptr) FAIL("ops harness: no description for op '" << op << "' (see tests/ops_harness.h)");
    return *t;
}

void run_on_cpu(const std::string& op_name) {
    const OpTest& op = description_of(op_name);
    run_cases(op, Device::CPU);
    run_grad_cases(op);
    check_every_version_ran(op, Device::CPU);
    print_report(op, Device::CPU);
}

void run_on_cuda(const std::string& op_name) {
    const OpTest& op = description_of(op_name);
    if (ops::op_spec(op.op).cuda.versions.empty()) {
        // No CUDA version: the op must refuse CUDA tensors with an error that names it.
        const Case& c = op.cases.front();
        const Named inputs = c.inputs();
        const Target t{Device::CUDA, 0, DType::F32};
        CHECK_THROWS_WITH(run_case(op, c, inputs, t), Catch::Contains(op.op));
        return;
    }
    run_cases(op, Device::CUDA);
    check_every_version_ran(op, Device::CUDA);
    print_report(op, Device::CUDA);
}

bool has_tags(const Catch::TestCaseInfo& info, const std::string& a, const std::string& b) {
    bool found_a = false, found_b = false;
    for (const std::string& tag : info.lcaseTags) {
        found_a = found_a || tag == a;
        found_b = found_b || tag == b;
    }
    return found_a && found_b;
}

}  // namespace
}  // namespace ittt::test::harness

using namespace ittt;
namespace harness = ittt::test::harness;

TEST_CASE("ops harness: every op of the table has a description and a CPU and a CUDA test case", "[ops]") {
    const auto& registered = Catch::getRegistryHub().getTestCaseRegistry().getAllTests();
    for (const ops::OpSpec& spec : ops::op_table()) {
        INFO("op '" << spec.name << "' of the op table: describe it (an OpTest in tests/test_ops_harness_<group>.cpp, declared in "
                                    "tests/ops_harness.h and listed in descriptions()) and add ITTT_OP_HARNESS("
                 << spec.name << ") at the end of tests/test_ops_harness.cpp");
        const harness::OpTest* t = harness::find_description(spec.name);
        REQUIRE(t != nullptr);
        CHECK(!t->cases.empty());
        // An op with a backward has finite-difference shapes; one without says why.
        CHECK((!t->grad_cases.empty() || !t->no_backward_why.empty()));
        bool cpu_case = false, cuda_case = false;
        for (const Catch::TestCase& tc : registered) {
            cpu_case = cpu_case || harness::has_tags(tc, "ops", spec.name);
            cuda_case = cuda_case || harness::has_tags(tc, "cuda", spec.name);
        }
        CHECK(cpu_case);
        CHECK(cuda_case);
    }
    // And no description of an op the table does not have.
    for (const harness::OpTest& t : harness::descriptions()) CHECK_NOTHROW(ops::op_spec(t.op));
}

// The two cases of one op. Their tags select them: "[gemm]", "[ops][gemm]", "[cuda][gemm]".
#define ITTT_OP_HARNESS(op)                                                                                        \
    TEST_CASE("ops harness: " #op " on the CPU: every version in F64 and F32 and the backward against finite differences", \
              "[ops][" #op "]") {                                                                                  \
        harness::run_on_cpu(#op);                                                                                  \
    }                                                                                                              \
    TEST_CASE("ops harness: " #op " on CUDA: every version in F32", "[cuda][" #op "]") {                           \
        ITTT_SKIP_WITHOUT_CUDA();                                                                                  \
        harness::run_on_cuda(#op);                                                                                 \
    }

ITTT_OP_HARNESS(gemm)
ITTT_OP_HARNESS(gemv)
ITTT_OP_HARNESS(embedding)
ITTT_OP_HARNESS(rmsnorm)
ITTT_OP_HARNESS(rope)
ITTT_OP_HARNESS(attention)
ITTT_OP_HARNESS(attention_block)
ITTT_OP_HARNESS(swiglu)
ITTT_OP_HARNESS(conv1d)
ITTT_OP_HARNESS(ttt_delta)
ITTT_OP_HARNESS(prefix_scan)
ITTT_OP_HARNESS(ttt_apply)
ITTT_OP_HARNESS(ttt_loop)
ITTT_OP_HARNESS(cross_entropy)
ITTT_OP_HARNESS(adamw)
ITTT_OP_HARNESS(elementwise)
