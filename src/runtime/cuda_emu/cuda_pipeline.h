// cuda_pipeline.h (CUDA emulator): not emulated.
#error "the CUDA emulator does not provide <cuda_pipeline.h>: add what you need to src/runtime/cuda_emu/ (with a unit test), or do without it (docs/cuda-emulator.md)"
