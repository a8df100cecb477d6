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
#include "runtime/device.h"

namespace ittt::ops {

using kernels::Tolerance;
using kernels::VersionInfo;

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
