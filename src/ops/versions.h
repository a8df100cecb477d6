// versions.h: the typed half of the op table, for src/ops/*.cpp only.
//
// Each src/ops/<op>.cpp describes its op once, as a KernelOp: per device, the versions in
// order, each a row {number, name, idea, kernels, F32 tolerance} plus the function that runs
// it (its entry). The op then runs `the_op.cpu_entry(caller)` or `.cuda_entry(caller)`: the
// row that ops::version(op) selects. op_table.cpp collects every op's rows (without the
// entries) into the table that everything else reads (op_table.h).
#pragma once
#include <type_traits>
#include <vector>

#include "ops/dispatch.h"
#include "ops/op_table.h"
#include "runtime/tensor.h"

namespace ittt::ops {

// A CPU kernel written once as a template and instantiated for both float types.
// Fn<T> is the kernel's function type for element type T.
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
// The entry of a CPU row: ITTT_CPU_KERNEL(kernels::gemm_naive_cpu).
#define ITTT_CPU_KERNEL(fn) {&fn<float>, &fn<double>}
// The entry of a CUDA row: the launcher, or nullptr in a build without CUDA (whose CUDA
// rows are still listed, so `ittt info --kernels` is the same table everywhere).
#if ITTT_WITH_CUDA
#define ITTT_CUDA_KERNEL(fn) &fn
#else
#define ITTT_CUDA_KERNEL(fn) nullptr
#endif

// Calls body(T{}) with T = float or double, the element type of dt: the one float/double
// switch of src/ops. Use: with_float_type(x.dtype(), [&](auto t) { using T = decltype(t); ... });
template <class Body>
decltype(auto) with_float_type(DType dt, Body&& body) {
    if (dt == DType::F64) return body(double{});
    ITTT_CHECK(dt == DType::F32, "internal error: with_float_type called with ", dtype_name(dt));
    return body(float{});
}

// CUDA kernels are F32 only; x is the tensor the caller's dtype is read from.
inline void require_cuda_f32(const Tensor& x, const char* caller) {
    ITTT_CHECK(x.dtype() == DType::F32, caller, ": CUDA kernels are F32 only, found ", x.describe());
}

template <class Entry>
struct Row {
    VersionInfo info;
    Entry run;
};

// One op: its description and, per device, its versions with their entries.
template <class CpuEntry, class CudaEntry>
struct KernelOp {
    const char* name;
    const char* summary;
    const char* folder;
    int cpu_best;
    std::vector<Row<CpuEntry>> cpu;
    int cuda_best;
    std::vector<Row<CudaEntry>> cuda;

    // The selected version's entry (ops::version(name), 0 = best); an error names the caller.
    const CpuEntry& cpu_entry(const char* caller) const { return cpu[index(Device::CPU, caller)].run; }
    const CudaEntry& cuda_entry(const char* caller) const {
        const size_t i = index(Device::CUDA, caller);
        if constexpr (std::is_pointer_v<CudaEntry>)
            if (cuda[i].run == nullptr) no_cuda_kernel(caller);
        return cuda[i].run;
    }
    // The rows without their entries: what op_table() lists.
    OpSpec spec() const {
        OpSpec s{name, summary, folder, {cpu_best, {}}, {cuda_best, {}}};
        for (const auto& r : cpu) s.cpu.versions.push_back(r.info);
        for (const auto& r : cuda) s.cuda.versions.push_back(r.info);
        return s;
    }

private:
    size_t index(Device d, const char* caller) const {
        return static_cast<size_t>(selected_version(name, d, caller) - 1);  // rows are numbered 1, 2, ... in order
    }
};

// A CUDA entry that is a struct of launchers (forward and backward) is "not built" when
// its first launcher is nullptr; ops with such entries check it with this.
template <class F>
const F& built(const F& launcher, const char* caller) {
    if (launcher == nullptr) no_cuda_kernel(caller);
    return launcher;
}

}  // namespace ittt::ops
