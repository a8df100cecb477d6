// op_table.cpp: the op table (op_table.h), collected from the ops' own version lists.
//
// Each op lists its versions once, beside its kernels (kernels/<op>/<op>_versions.h); this
// file lists the ops and answers every question about versions from those rows: which
// exist, which one runs, what the errors say.
#include <map>
#include <sstream>

#include "kernels/adamw/adamw_versions.h"
#include "kernels/attention/attention_versions.h"
#include "kernels/attention_block/attention_block_versions.h"
#include "kernels/conv1d/conv1d_versions.h"
#include "kernels/cross_entropy/cross_entropy_versions.h"
#include "kernels/elementwise/elementwise_versions.h"
#include "kernels/embedding/embedding_versions.h"
#include "kernels/gemm/gemm_versions.h"
#include "kernels/gemv/gemv_versions.h"
#include "kernels/prefix_scan/prefix_scan_versions.h"
#include "kernels/rmsnorm/rmsnorm_versions.h"
#include "kernels/rope/rope_versions.h"
#include "kernels/swiglu/swiglu_versions.h"
#include "kernels/ttt_apply/ttt_apply_versions.h"
#include "kernels/ttt_delta/ttt_delta_versions.h"
#include "kernels/ttt_loop/ttt_loop_versions.h"
#include "ops/versions.h"
#include "runtime/error.h"

namespace ittt::ops {

namespace {
// Rows must be numbered 1, 2, ... (KernelOp finds a row by its number) and best must be one of them.
void check_numbering(const OpSpec& op, const char* device, const DeviceVersions& dv) {
    for (size_t i = 0; i < dv.versions.size(); ++i)
        ITTT_CHECK(dv.versions[i].number == static_cast<int>(i) + 1, "op table: ", op.name, "'s ", device, " row ", i,
                   " is numbered ", dv.versions[i].number, ", expected ", i + 1);
    ITTT_CHECK(dv.versions.empty() ? dv.best == 0 : dv.find(dv.best) != nullptr, "op table: ", op.name, "'s best ", device,
               " version ", dv.best, " is not one of its rows");
    // Version 1 is the reference and what version 0 falls back to last: it must run everywhere.
    ITTT_CHECK(dv.versions.empty() || dv.versions[0].available == nullptr, "op table: ", op.name, "'s ", device,
               " version 1 needs ", dv.versions[0].needs, "; version 1 must run on every machine");
    for (const VersionInfo& v : dv.versions)
        ITTT_CHECK((v.available == nullptr) == (*v.needs == '\0'), "op table: ", op.name, "'s ", device, " version ", v.number,
                   " must give both `needs` and `available`, or neither");
}

// What a machine-dependent version needs against what this machine has, for messages.
std::string unavailable_because(const VersionInfo& v, Device d) {
    return cat("needs ", v.needs, "; this ", d == Device::CUDA ? "machine does not have it" : cat("CPU runs ", describe_cpu_isa()));
}

std::map<std::string, int>& selected() {
    static std::map<std::string, int> versions;
    return versions;
}

std::string op_names() {
    std::string names;
    for (const OpSpec& op : op_table()) names += (names.empty() ? "" : ", ") + op.name;
    return names;
}
}  // namespace

const VersionInfo* DeviceVersions::find(int number) const {
    for (const VersionInfo& v : versions)
        if (v.number == number) return &v;
    return nullptr;
}

int DeviceVersions::best_here() const {
    for (int v = best; v >= 1; --v)
        if (const VersionInfo* info = find(v); info != nullptr && info->runs_here()) return v;
    return best;  // no rows (best is 0); check_numbering makes version 1 available everywhere
}

std::string DeviceVersions::describe() const {
    if (versions.empty()) return "none";
    std::string s;
    for (const VersionInfo& v : versions)
        s += cat(s.empty() ? "" : ", ", v.number, " ", v.name, v.runs_here() ? "" : cat(" (needs ", v.needs, ": not here)"));
    return cat(s, "; 0 = best = ", best_here());
}

const std::vector<OpSpec>& op_table() {
    static const std::vector<OpSpec> table = [] {
        using namespace kernels;
        std::vector<OpSpec> ops = {spec_of(gemm_versions),        spec_of(gemv_versions),        spec_of(embedding_versions),   spec_of(rmsnorm_versions),
                                   spec_of(rope_versions),        spec_of(attention_versions),   spec_of(attention_block_versions),
                                   spec_of(swiglu_versions),
                                   spec_of(conv1d_versions),      spec_of(ttt_delta_versions),   spec_of(prefix_scan_versions),
                                   spec_of(ttt_apply_versions),   spec_of(ttt_loop_versions),    spec_of(cross_entropy_versions),
                                   spec_of(adamw_versions),       spec_of(elementwise_versions)};
        for (const OpSpec& op : ops) {
            check_numbering(op, "CPU", op.cpu);
            check_numbering(op, "CUDA", op.cuda);
        }
        return ops;
    }();
    return table;
}

const OpSpec& op_spec(const std::string& name) {
    for (const OpSpec& op : op_table())
        if (op.name == name) return op;
    fail(cat("kernel versions: unknown op '", name, "' (ops: ", op_names(), ")"));
}

void set_version(const std::string& op, int v) {
    const OpSpec& spec = op_spec(op);
    const int highest = static_cast<int>(std::max(spec.cpu.versions.size(), spec.cuda.versions.size()));
    ITTT_CHECK(v >= 0 && v <= highest, "kernel version for ", op, ": expected 0 (best) to ", highest, ", found ", v,
               " (CPU: ", spec.cpu.describe(), "; CUDA: ", spec.cuda.describe(), ")");
    selected()[op] = v;
}

int version(const std::string& op) {
    auto it = selected().find(op);
    return it == selected().end() ? 0 : it->second;
}

int selected_version(const std::string& op, Device d, const char* caller) {
    const DeviceVersions& dv = op_spec(op).on(d);
    const char* device = d == Device::CUDA ? "CUDA" : "CPU";
    ITTT_CHECK(!dv.versions.empty(), caller, ": ", op, " has no ", device, " kernel", d == Device::CUDA ? "; run with --device cpu" : "");
    const int v = version(op);
    if (v == 0) return dv.best_here();
    const VersionInfo* info = dv.find(v);
    ITTT_CHECK(info != nullptr, caller, ": ", op, ": no ", device, " version ", v, " (", device, " versions: ", dv.describe(), ")");
    ITTT_CHECK(info->runs_here(), caller, ": ", op, " ", device, " version ", v, " (", info->name, ") ", unavailable_because(*info, d),
               " (", device, " versions: ", dv.describe(), ")");
    return v;
}

void set_versions_from_string(const std::string& spec) {
    std::stringstream ss(spec);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (item.empty()) continue;
        size_t eq = item.find('=');
        ITTT_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < item.size(), "--kernel: expected op=version (e.g. gemm=1), found '",
                   item, "'");
        std::string value = item.substr(eq + 1);
        ITTT_CHECK(value.size() <= 3 && value.find_first_not_of("0123456789") == std::string::npos, "--kernel: version for '",
                   item.substr(0, eq), "' must be a small number, found '", value, "'");
        set_version(item.substr(0, eq), std::stoi(value));
    }
}

std::string describe_op_table() {
    std::ostringstream s;
    s << "CPU ISA in use: " << describe_cpu_isa() << "\n";
    for (const OpSpec& op : op_table()) {
        s << op.name << "  (" << op.folder << "): " << op.summary << "\n";
        for (Device d : {Device::CPU, Device::CUDA}) {
            const DeviceVersions& dv = op.on(d);
            if (dv.versions.empty()) {
                s << "  " << device_name(d) << "   none\n";
                continue;
            }
            for (const VersionInfo& v : dv.versions)
                s << "  " << device_name(d) << (d == Device::CPU ? "   " : "  ") << v.number << (v.number == dv.best_here() ? "*" : " ")
                  << " " << v.name << ": " << v.idea << "  [" << v.kernels << "]"
                  << (v.runs_here() ? "" : cat("  (not here: ", unavailable_because(v, d), ")")) << "\n";
        }
    }
    s << "(* = version 0, the best of its device that this machine runs; choose one with --kernel op=N)\n";
    return s.str();
}

}  // namespace ittt::ops
