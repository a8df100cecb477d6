// op_table.h: every op's kernel versions, per device, in one table.
//
// Each op lists its versions once, beside its kernels (kernels/<op>/<op>_versions.cpp,
// kernels/versions.h says how); op_table() collects those rows. Version selection and its
// error messages (ops::set_version, --kernel op=v), `ittt info --kernels`, the benchmarks,
// `make profile` and the test harness all read it, so adding a kernel version is the kernel
// and one row.
#pragma once
#include <string>
#include <vector>

#include "kernels/versions.h"
#include "runtime/cpu_isa.h"
#include "runtime/device.h"

namespace ittt::ops {

using kernels::Tolerance;
using kernels::VersionInfo;

struct DeviceVersions {
    int best = 0;                       // the table's best version: what 0 stands for where it is available
    std::vector<VersionInfo> versions;  // numbered 1, 2, ... in order
    const VersionInfo* find(int number) const;
    // What version 0 runs on this machine now: `best` if it is available (VersionInfo::runs_here),
    // else the highest-numbered available version below it (version 1 always is).
    int best_here() const;
    // "1 naive, 2 blocked, 3 blocked AVX-512; 0 = best = 3" ("3 blocked AVX-512 (needs AVX-512:
    // not here); 0 = best = 2" on an AVX2 CPU), or "none" when the device has no kernel
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
// best_here(). An error names the caller and lists the device's versions when it has no such
// one, and says what a version needs and what this machine has when it cannot run here.
int selected_version(const std::string& op, Device d, const char* caller);

// The whole table as text, one op per block, for `ittt info --kernels`; rows this machine
// cannot run are marked, and the first line names the CPU's ISA in use.
std::string describe_op_table();
// The CPU's vector ISA in use, for `ittt info`, the benchmarks and the tests, is
// ittt::describe_cpu_isa() (runtime/cpu_isa.h, included here): "AVX-512 (cpuid: AVX-512)".

}  // namespace ittt::ops
