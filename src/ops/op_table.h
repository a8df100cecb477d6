// op_table.h: every op's kernel versions, per device, in one table (src/ops/op_table.cpp).
//
// The table is the only list of versions. Version selection and its error messages
// (ops::set_version, --kernel op=v), `ittt info --kernels`, the benchmarks, `make profile`
// and the test harness (tests/test_ops_harness.cpp) all read it, so adding a kernel version
// is: the kernel, one row in op_table.cpp, and its one-sentence idea above the kernel.
//
// Numbers: versions count from 1 on each device; 0 means "the best version of the
// tensor's device" (the `best` of that device's list). CPU version 1 of every op is
// the reference the others are tested against (in double, see tests/test_ops_harness.cpp).
#pragma once
#include <string>
#include <vector>

#include "runtime/device.h"

namespace ittt::ops {

// Element-wise test tolerance |x - ref| <= atol + rtol*|ref| against the F64 CPU reference,
// with the reason it is that large (the harness prints it beside a failure).
struct Tolerance {
    double atol = 0, rtol = 0;
    const char* why = "";
};

struct VersionInfo {
    int number = 0;           // 1, 2, ... on its device: --kernel op=number
    const char* name = "";    // a word or two: "blocked"
    const char* idea = "";    // the one idea this version adds, in one sentence
    const char* kernels = ""; // what it runs: CPU functions, or CUDA __global__ kernels (an ncu -k regex)
    Tolerance f32;            // its F32 results against the F64 CPU reference
};

struct DeviceVersions {
    int best = 0;                       // the version number 0 stands for
    std::vector<VersionInfo> versions;  // numbered 1, 2, ... in order
    const VersionInfo* find(int number) const;
    // "1 naive, 2 blocked; 0 = best = 2" (or "none" when the device has no kernel)
    std::string describe() const;
};

struct OpSpec {
    std::string name;      // "gemm": ops::set_version("gemm", v), --kernel gemm=v
    std::string summary;   // what it computes, one line
    std::string folder;    // where its kernels live: "kernels/gemm"
    DeviceVersions cpu, cuda;
    const DeviceVersions& on(Device d) const { return d == Device::CUDA ? cuda : cpu; }
};

// Every op, in the order of src/ops/op_table.cpp.
const std::vector<OpSpec>& op_table();
// The op of that name; an error lists the names.
const OpSpec& op_spec(const std::string& name);

// ---- which version runs (--kernel gemm=1,attention=2) ----
// Selects version v of op for every device (0: each device's best). Checked against the
// table: an unknown op or a number no device has is an error that lists what exists.
void set_version(const std::string& op, int v);
int version(const std::string& op);
// Parses "gemm=1,attention=2" (the --kernel flag and ITTT_KERNEL).
void set_versions_from_string(const std::string& spec);
// The version the op runs on device d now: ops::version(op), 0 resolved to the device's
// best. An error names the caller and lists the device's versions when it has no such one.
int selected_version(const std::string& op, Device d, const char* caller);

// The whole table as text, one op per block, for `ittt info --kernels`.
std::string describe_op_table();

}  // namespace ittt::ops
