// versions.h: how an op folder lists its kernel versions (kernels/<op>/<op>_versions.cpp).
//
// Each op describes its versions once, beside the kernels: per device, the versions in
// order, each a row {number, name, one-sentence idea, the kernels it runs, its F32 test
// tolerance with the reason} plus the function that runs it (its entry). Adding a version is
// the kernel and one row. src/ops picks the row that ops::version(op) selects and calls its
// entry; src/ops/op_table.cpp collects the rows for everything else that lists versions
// (ittt info --kernels, --kernel op=v, make profile, the benchmarks, the test harness).
//
// Numbers: versions count from 1 on each device; 0 means "the best version of the tensor's
// device" (`best`). CPU version 1 of every op is the reference the others are tested against,
// and runs on every machine.
//
// Machine-dependent versions: a row may need something not every machine has (an AVX-512
// kernel beside the AVX2 one): its `needs` names it and its `available` answers whether this
// machine has it now (src/runtime/cpu_isa.h for the CPU's ISA). Version 0 then means: `best`
// if it is available, else the highest-numbered available version below it. Asking for an
// unavailable version by number (--kernel gemm=3 on an AVX2 CPU) is an error that says what
// it needs and what this machine has.
#pragma once
#include <type_traits>
#include <vector>

namespace ittt::kernels {

// Element-wise test tolerance |x - ref| <= atol + rtol*|ref| against the F64 CPU reference,
// with the reason it is that large (the test harness prints it beside a failure).
struct Tolerance {
    double atol = 0, rtol = 0;
    const char* why = "";
};

struct VersionInfo {
    int number = 0;            // 1, 2, ... on its device: --kernel op=number
    const char* name = "";     // a word or two: "blocked"
    const char* idea = "";     // the one idea this version adds, in one sentence
    const char* kernels = "";  // what it runs: CPU functions, or CUDA __global__ kernels (an ncu -k regex)
    Tolerance f32;             // its F32 results against the F64 CPU reference
    const char* needs = "";            // what the machine must have beyond the build's baseline ("AVX-512"); "" = nothing
    bool (*available)() = nullptr;     // whether this machine has it now; nullptr = always
    bool runs_here() const { return available == nullptr || available(); }
};

// A CPU kernel written once as a template and instantiated for both float types;
// Fn<T> is its function type for element type T. In a row: ITTT_CPU_KERNEL(gemm_naive_cpu).
template <template <class> class Fn>
struct CpuKernel {
    Fn<float>* f32 = nullptr;
    Fn<double>* f64 = nullptr;
    template <class T>
    Fn<T>* get() const {
        if constexpr (std::is_same_v<T, float>) return f32;
        else return f64;
    }
};
#define ITTT_CPU_KERNEL(fn) {&fn<float>, &fn<double>}
// A CUDA launcher in a row, or nullptr in a build without CUDA (whose CUDA rows are still
// listed, so the table reads the same everywhere).
#if ITTT_WITH_CUDA
#define ITTT_CUDA_KERNEL(fn) &fn
#else
#define ITTT_CUDA_KERNEL(fn) nullptr
#endif

template <class Entry>
struct VersionRow {
    VersionInfo info;
    Entry run;
};

// One op's versions. CpuEntry / CudaEntry: what a row runs (a kernel, or a struct of the
// forward and backward kernels).
template <class CpuEntry, class CudaEntry>
struct OpVersions {
    using Cpu = CpuEntry;
    using Cuda = CudaEntry;
    const char* name;     // "gemm": ops::set_version("gemm", v), --kernel gemm=v
    const char* summary;  // what it computes, one line
    const char* folder;   // "kernels/gemm"
    int cpu_best;
    std::vector<VersionRow<CpuEntry>> cpu;
    int cuda_best;
    std::vector<VersionRow<CudaEntry>> cuda;
};

}  // namespace ittt::kernels
