// versions.h: running the version an op's table selects, for src/ops/*.cpp only.
//
// Each op's versions are listed beside its kernels (kernels/<op>/<op>_versions.cpp, an
// OpVersions). An op calls cpu_entry(table, caller) or cuda_entry(table, caller): the row
// that ops::version(op) selects for that device, with an error that lists the versions
// when there is no such row.
#pragma once
#include <type_traits>

#include "kernels/gemm/gemm.h"
#include "kernels/versions.h"
#include "ops/dispatch.h"
#include "ops/op_table.h"

namespace ittt::ops {

template <class Table>
const typename Table::Cpu& cpu_entry(const Table& t, const char* caller) {
    return t.cpu[static_cast<size_t>(selected_version(t.name, Device::CPU, caller) - 1)].run;  // rows are numbered 1, 2, ...
}

// A CUDA entry that is a pointer is checked here; a struct of launchers with built().
template <class Table>
const typename Table::Cuda& cuda_entry(const Table& t, const char* caller) {
    const auto& run = t.cuda[static_cast<size_t>(selected_version(t.name, Device::CUDA, caller) - 1)].run;
    if constexpr (std::is_pointer_v<typename Table::Cuda>)
        if (run == nullptr) no_cuda_kernel(caller);
    return run;
}
template <class F>
const F& built(const F& launcher, const char* caller) {
    if (launcher == nullptr) no_cuda_kernel(caller);
    return launcher;
}

// The gemm op's selected version (src/ops/gemm.cpp), for the kernels that run GEMMs inside
// (the TTT chunk loop, the attention tiles): they use whatever --kernel gemm / version 0 picks.
template <class T>
kernels::GemmCpuFn<T>* selected_cpu_gemm(const char* caller);
kernels::GemmCudaLauncher* selected_cuda_gemm(const char* caller);

// The rows without their entries: what op_table() lists.
template <class Table>
OpSpec spec_of(const Table& t) {
    OpSpec s{t.name, t.summary, t.folder, {t.cpu_best, {}}, {t.cuda_best, {}}};
    for (const auto& r : t.cpu) s.cpu.versions.push_back(r.info);
    for (const auto& r : t.cuda) s.cuda.versions.push_back(r.info);
    return s;
}

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

// Runs one kernel of the version the table selects, on x's device and in x's dtype: the one
// place an op goes from a tensor to a kernel. `pick` chooses the kernel from a row's entry
// (forward_kernel, backward_kernel, the_kernel, or a lambda naming a member); `call` gets it
// with T: float on CUDA (its kernels are F32 only; a launcher missing from this build is an
// error), float or double on the CPU. Use:
//   run_kernel(kernels::swiglu_versions, op, g, forward_kernel, [&](auto kernel, auto t) {
//       using T = decltype(t);
//       kernel(z.data<T>(), g.data<T>(), u.data<T>(), g.numel());
//   });
template <class Table, class Pick, class Call>
void run_kernel(const Table& t, const char* caller, const Tensor& x, Pick&& pick, Call&& call) {
    if (x.device() == Device::CUDA) {
        require_cuda_f32(x, caller);
        call(built(pick(cuda_entry(t, caller)), caller), float{});
        return;
    }
    with_float_type(x.dtype(), [&](auto type) { call(pick(cpu_entry(t, caller)).template get<decltype(type)>(), type); });
}
inline constexpr auto forward_kernel = [](const auto& entry) -> const auto& { return entry.forward; };
inline constexpr auto backward_kernel = [](const auto& entry) -> const auto& { return entry.backward; };
inline constexpr auto the_kernel = [](const auto& entry) -> const auto& { return entry; };  // a row with one kernel

}  // namespace ittt::ops
