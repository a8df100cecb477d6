// cuda_launch.h: the two pieces of CUDA syntax that host C++ cannot parse, as macros,
// so that the same .cu source builds with nvcc and with the CPU emulator (make CUDA=emu).
//
//   ITTT_LAUNCH(kernel, grid, block, shared_bytes, stream)(args...);
//       nvcc:      kernel<<<grid, block, shared_bytes, stream>>>(args...)
//       emulator:  runs the grid on the CPU (src/runtime/cuda_emu/, docs/cuda-emulator.md)
//       A template kernel goes in parentheses, because of the commas in its argument
//       list: ITTT_LAUNCH((gemm_smem_kernel<TA, TB>), grid, block, 0, 0)(p).
//
//   ITTT_DYNAMIC_SHARED(type, name);
//       nvcc:      extern __shared__ type name[]
//       emulator:  type* const name, pointing at the block's dynamic shared memory
//
// Under nvcc both are exactly the syntax they replace: the CUDA build is unchanged.
// Included by runtime/cuda_check.h, so every .cu file has them.
#pragma once

#if defined(ITTT_CUDA_EMULATED)
#define ITTT_LAUNCH(kernel, grid, block, shared_bytes, stream) \
    ::ittt::cuda_emu::launch(kernel, grid, block, shared_bytes, stream, #kernel, __FILE__, __LINE__)
#define ITTT_DYNAMIC_SHARED(type, name) type* const name = ::ittt::cuda_emu::DynamicShared {}
#else
#define ITTT_LAUNCH(kernel, grid, block, shared_bytes, stream) kernel<<<grid, block, shared_bytes, stream>>>
#define ITTT_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif
