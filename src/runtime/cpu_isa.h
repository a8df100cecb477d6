// cpu_isa.h: which vector instruction set the CPU kernels may use on this machine.
//
// The program is compiled for x86-64-v3 (AVX2 + FMA), so AVX2 is the floor. Some kernels
// have an AVX-512 version beside the AVX2 one, compiled per file with target attributes
// (never program-wide: GCC 12.2 miscompiles some code with AVX-512 enabled, see
// tests/test_runtime.cpp); the op table lists them as rows that need AVX-512, and runs
// them only where this says so.
//
// The ISA in use is decided once, at the first question: what cpuid reports (through
// __builtin_cpu_supports, which also checks that the OS saves the 512-bit registers),
// lowered to AVX2 by ITTT_CPU=avx2. ITTT_CPU=avx512 on a CPU without AVX-512 is an
// error that names the CPU's ISA. One op can also be pinned with --kernel op=N.
#pragma once
#include <string>

namespace ittt {

// The vector ISAs that ittt has CPU kernels for, lowest first.
enum class CpuIsa { AVX2, AVX512 };

// "AVX2" or "AVX-512"; AVX-512 here means F, VL, BW and DQ (x86-64-v4 less CD).
const char* cpu_isa_name(CpuIsa isa);
// What this CPU can run, from cpuid; ignores ITTT_CPU.
CpuIsa cpu_isa_detected();
// What the kernels use: cpu_isa_detected(), or lower when ITTT_CPU / set_cpu_isa asks.
CpuIsa cpu_isa();
// Chooses the ISA in use by name ("avx2" or "avx512", what ITTT_CPU takes; "" goes back to
// ITTT_CPU or cpuid); an unknown name, or one this CPU cannot run, is an error that says
// what this CPU has. For tests and benchmarks; it wins over ITTT_CPU.
void set_cpu_isa(const std::string& name);
// True when kernels written for `isa` may run now (isa <= cpu_isa()). A row of the op
// table that needs AVX-512 holds &cpu_runs_avx512 as its availability test.
bool cpu_runs(CpuIsa isa);
bool cpu_runs_avx512();
// One line for `ittt info` and the benchmarks: "AVX-512 (cpuid: AVX-512)",
// "AVX2 (cpuid: AVX-512; ITTT_CPU=avx2)".
std::string describe_cpu_isa();
// The CPU's model name from /proc/cpuinfo ("Intel(R) Xeon(R) Processor"), or "unknown CPU".
std::string cpu_model_name();

}  // namespace ittt
