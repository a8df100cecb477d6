// cpu_isa.cpp: the CPU's vector ISA, from cpuid, and the ITTT_CPU override (cpu_isa.h).
#include "runtime/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <fstream>

#include "runtime/error.h"

namespace ittt {

namespace {

// The name ITTT_CPU and set_cpu_isa take for each ISA.
const char* isa_key(CpuIsa isa) { return isa == CpuIsa::AVX512 ? "avx512" : "avx2"; }

// The ISA that `name` asks for, checked against this CPU; `source` says who asked
// ("ITTT_CPU" or "set_cpu_isa") for the message.
CpuIsa parse_isa(const std::string& name, const char* source) {
    CpuIsa wanted;
    if (name == "avx2") wanted = CpuIsa::AVX2;
    else if (name == "avx512") wanted = CpuIsa::AVX512;
    else fail(cat(source, ": expected avx2 or avx512, found '", excerpt(name, 40), "' (this CPU: ", cpu_isa_name(cpu_isa_detected()), ")"));
    ITTT_CHECK(wanted <= cpu_isa_detected(), source, "=", name, ": this CPU has no ", cpu_isa_name(wanted), " (cpuid reports ",
               cpu_isa_name(cpu_isa_detected()), "); use ", isa_key(cpu_isa_detected()), " or leave ", source, " unset");
    return wanted;
}

// -1 until set_cpu_isa is called, then the CpuIsa it chose (it wins over ITTT_CPU).
std::atomic<int> chosen{-1};

// ITTT_CPU, read once; empty when unset.
const std::string& env_choice() {
    static const std::string value = [] {
        const char* env = std::getenv("ITTT_CPU");
        return std::string(env ? env : "");
    }();
    return value;
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) { return isa == CpuIsa::AVX512 ? "AVX-512" : "AVX2"; }

CpuIsa cpu_isa_detected() {
    // The four feature sets the AVX-512 kernels are compiled for (their target attributes).
    static const CpuIsa detected = [] {
        __builtin_cpu_init();
        const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
        return avx512 ? CpuIsa::AVX512 : CpuIsa::AVX2;
    }();
    return detected;
}

CpuIsa cpu_isa() {
    const int set = chosen.load(std::memory_order_relaxed);
    if (set >= 0) return static_cast<CpuIsa>(set);
    // Checked at every call until it is valid, so a bad ITTT_CPU fails every op, not only the first.
    static const CpuIsa from_env = env_choice().empty() ? cpu_isa_detected() : parse_isa(env_choice(), "ITTT_CPU");
    return from_env;
}

void set_cpu_isa(const std::string& name) {
    chosen.store(name.empty() ? -1 : static_cast<int>(parse_isa(name, "set_cpu_isa")), std::memory_order_relaxed);
}

bool cpu_runs(CpuIsa isa) { return isa <= cpu_isa(); }
bool cpu_runs_avx512() { return cpu_runs(CpuIsa::AVX512); }

std::string describe_cpu_isa() {
    const CpuIsa in_use = cpu_isa(), detected = cpu_isa_detected();
    std::string why;
    if (chosen.load(std::memory_order_relaxed) >= 0) why = cat("; chosen by set_cpu_isa(\"", isa_key(in_use), "\")");
    else if (!env_choice().empty()) why = cat("; ITTT_CPU=", env_choice());
    return cat(cpu_isa_name(in_use), " (cpuid: ", cpu_isa_name(detected), why, ")");
}

std::string cpu_model_name() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
            std::string name = line.substr(line.find(':') + 1);
            name.erase(0, name.find_first_not_of(" \t"));
            return excerpt(name, 80);
        }
    return "unknown CPU";
}

}  // namespace ittt
