// ops_harness.h: one test harness over op x device x version x dtype (tests/test_ops_harness.cpp).
//
// Each op of the op table (src/ops/op_table.h) is described once, in
// tests/test_ops_harness_<group>.cpp, as an OpTest:
//   - cases: the shapes (ragged on purpose), how to make their seeded inputs and how to run
//     the op on one Target (device, version, dtype), outputs pre-filled with NaN;
//   - grad_cases: for an op with a backward, small shapes whose backward is checked against
//     central finite differences in double.
// The runner computes every case's reference with CPU version 1 in F64, then runs it on
// every device (CPU; CUDA when there is one, the emulator included), every version the
// table lists for that device and every dtype the device has (CPU: F64 and F32; CUDA: F32),
// and compares each output with the reference: F64 runs within kF64 below, F32 runs within
// the version's table tolerance (VersionInfo::f32). A new version or device is therefore
// tested with no new test code; a new op fails "every op has a description" until it has one.
//
// Inputs are made as F32 values and widened to F64 for the reference and the F64 runs, so
// every run sees the same numbers and only the run's own arithmetic differs.
#pragma once
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "ops/op_table.h"
#include "test_util.h"

namespace ittt::test::harness {

// F64 runs against the F64 reference. The versions of an op compute the same sums in other
// orders (blocked, tiled, online softmax): double rounds at 1.1e-16 of each partial sum, and the
// longest sums here (300-term dot products of size ~18) stay below 2e-13 (measured: < 1/30 of this).
inline const ops::Tolerance kF64 = {1e-12, 1e-13, "F64: the same sums in another order, 1.1e-16 of each partial sum"};

// Tensors by name, in order: a case's inputs, or a run's outputs.
class Named {
public:
    Named() = default;
    Named(std::initializer_list<std::pair<std::string, Tensor>> entries) : entries_(entries) {}
    void add(const std::string& name, Tensor t) { entries_.emplace_back(name, std::move(t)); }
    bool has(const std::string& name) const;
    Tensor& operator[](const std::string& name);
    const Tensor& operator[](const std::string& name) const;
    const std::vector<std::pair<std::string, Tensor>>& entries() const { return entries_; }

private:
    std::vector<std::pair<std::string, Tensor>> entries_;
};

// Where one run happens: the device, the version of the op under test, the float dtype.
struct Target {
    Device device = Device::CPU;
    int version = 1;
    DType dtype = DType::F64;
    std::string describe() const;  // "CUDA v2 F32"
};

// An output of `shape` on the target's device and dtype, full of NaN (see nan_tensor).
inline Tensor nan_output(const Shape& shape, const Target& t) { return nan_tensor(shape, t.dtype, t.device); }

// A check stricter than the table's that a case makes on some runs, with its reason: an
// output against the F64 reference, or against the CPU reference version's F32 run (the
// device computes the same float operations as the CPU, so the two agree closer, or bit
// for bit).
struct Tighter {
    enum Against { F64Reference, CpuF32 };
    std::string output;
    Against against = F64Reference;
    double atol = 0, rtol = 0;
    bool bitwise = false;  // the same bits (atol and rtol unused)
    std::string why;
};

// Stricter checks made on the CUDA runs only (the usual case: CUDA against the CPU's F32 run).
inline std::function<std::vector<Tighter>(const Target&)> on_cuda(std::vector<Tighter> checks) {
    return [checks](const Target& t) { return t.device == Device::CUDA ? checks : std::vector<Tighter>{}; };
}

// One shape configuration of an op.
struct Case {
    std::string shape;  // printed with every failure: "M=17 N=33 K=65 NT alpha=0.7 beta=-0.4"
    // Seeded inputs on the host: float tensors in F32 (the runner widens them), ids in I32.
    std::function<Named()> inputs;
    // Runs the op on target t (ScopedVersion already set) with `in` on t's device, floats in
    // t's dtype (a fresh copy per run: the run may overwrite them), and returns the outputs.
    // Outputs the op overwrites start as nan_output(); ones it accumulates into start from
    // an input. A run may also CHECK properties of its own (e.g. rows that must equal
    // another op's bits).
    std::function<Named(Named& in, const Target& t)> run;
    // Only the CUDA runs (the reference still runs): sizes that matter only to a launch
    // geometry (a grid-stride loop's second round) and are too large to be worth the CPU's time.
    bool cuda_only = false;
    // Only the CPU runs: the op has no CUDA code for what the case runs.
    bool cpu_only = false;
    // Stricter checks for some targets (may be empty).
    std::function<std::vector<Tighter>(const Target& t)> tighter;
};

// One finite-difference check of an op's backward, in double.
struct GradCase {
    std::string shape;
    std::function<Named()> inputs;  // F64, on the host
    std::vector<std::string> wrt;   // the inputs the gradient is taken with respect to
    // The forward reduced to a scalar (typically <outputs, fixed random weights>), recomputed
    // from `in` on every call; the runner perturbs the wrt inputs in place.
    std::function<double(const Named& in)> loss;
    // The op's backward: d loss / d x for every x in wrt, by name, at the selected version.
    std::function<Named(const Named& in)> gradient;
    ops::Tolerance fd;  // |backward - central differences|, with its reason
};

struct OpTest {
    std::string op;  // its name in the op table
    std::vector<Case> cases;
    std::vector<GradCase> grad_cases;
    std::string no_backward_why;  // when grad_cases is empty: why the op has no FD check here
    // Under ITTT_TEST_SHAPES=small (test_util.h): every small_stride-th case on CUDA.
    size_t small_stride = 1;
};

// The descriptions, one function per op (tests/test_ops_harness_<group>.cpp).
OpTest describe_gemm();
OpTest describe_gemv();
OpTest describe_attention();
OpTest describe_attention_block();
OpTest describe_embedding();
OpTest describe_rmsnorm();
OpTest describe_rope();
OpTest describe_swiglu();
OpTest describe_conv1d();
OpTest describe_ttt_delta();
OpTest describe_prefix_scan();
OpTest describe_ttt_apply();
OpTest describe_ttt_loop();
OpTest describe_cross_entropy();
OpTest describe_adamw();
OpTest describe_elementwise();

// ---- small helpers for descriptions ----

// F32 normal(0, scale^2) values, exactly representable (random_tensor in F32).
inline Tensor normal(const Shape& shape, uint64_t seed, double scale = 1.0) { return random_tensor(shape, seed, scale, DType::F32); }

// A double-valued result (a loss, a norm, a count) as a 1-element F64 tensor on the host,
// compared as it is, without rounding it to the run's dtype.
inline Tensor scalar(double x) { return Tensor::from_vector(std::vector<double>{x}, {1}); }

// "NN", "NT", "TN", "TT"
inline std::string layout(bool trans_a, bool trans_b) { return std::string(trans_a ? "T" : "N") + (trans_b ? "T" : "N"); }

inline int64_t chunk_count(int64_t n, int64_t chunk) { return (n + chunk - 1) / chunk; }

}  // namespace ittt::test::harness
