# src/runtime/cuda_emu/cuda_emu.mk: the CUDA emulator (docs/cuda-emulator.md), included by the Makefile.
#
#   make CUDA=emu           the CUDA side compiled by g++ against the CPU emulator, in build-emu/
#   make cuda-check         the emulated [cuda] and [cuda_emu] tests three ways, each in its own BUILD:
#     cuda-check-asan         AddressSanitizer + UndefinedBehaviorSanitizer   (build-emu-asan)
#     cuda-check-tsan         ThreadSanitizer, small shapes, one OpenMP thread  (build-emu-tsan)
#     cuda-check-poison       shared memory filled with NaN before every block   (build-emu)
#   make cuda-mutants       planted bugs the emulated tests must catch (tests/cuda_emu_mutants.sh)
#
# With CUDA=emu every .cu file is compiled by g++ as host C++, with this folder first on
# the include path (its cuda_runtime.h, mma.h, cub/) and cuda_runtime.h force-included,
# as nvcc does; the emulator's engine joins the core library. No CUDA toolkit is used.

EMU_DIR   := src/runtime/cuda_emu
EMU_TESTS ?= [cuda],[cuda_emu]
ifeq ($(CUDA),emu)
  CPPFLAGS += -I$(EMU_DIR)
  LIB_OBJ  += $(call obj,$(wildcard $(EMU_DIR)/*.cpp))
  # nvcc's #pragma unroll, and int-vs-threadIdx comparisons that nvcc does not warn about
  CU_COMPILE = $(CXX) -x c++ -include cuda_runtime.h $(CPPFLAGS) $(CXXFLAGS) -Wno-unknown-pragmas -Wno-sign-compare
  # The emulator's own unit tests: tiny kernels in tests/*.cu, linked into the test binary.
  TEST_OBJ += $(call obj,$(wildcard tests/*.cu))
  # The TSan build compiles the scheduler and the fibers without TSan's instrumentation (their
  # bookkeeping is ordered by construction) and lets them call TSan's fiber and sync API.
  $(call obj,$(EMU_DIR)/emulator.cpp $(EMU_DIR)/fiber.cpp): override CXXFLAGS += $(EMU_ENGINE_FLAGS)
  # Mutation tests: one object rebuilt with a planted bug (tests/cuda_emu_mutants.sh).
  ifneq ($(EMU_MUTANT_OBJ),)
    $(EMU_MUTANT_OBJ): CPPFLAGS += $(EMU_MUTANT_FLAGS)
  endif
endif
CLEAN_DIRS += build-emu build-emu-asan build-emu-tsan build-emu-mutant-*

.PHONY: cuda-check cuda-check-asan cuda-check-tsan cuda-check-poison cuda-mutants
cuda-check: cuda-check-asan cuda-check-tsan cuda-check-poison

cuda-check-asan:
	$(MAKE) CUDA=emu BUILD=build-emu-asan ARCH= CXXFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" build-emu-asan/ittt_tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 OMP_NUM_THREADS=2 build-emu-asan/ittt_tests "$(EMU_TESTS)"

# Small shapes (ITTT_TEST_SHAPES=small, tests/test_util.h) because TSan slows the emulator by ~10x;
# one OpenMP thread because libgomp's own synchronisation is invisible to TSan.
cuda-check-tsan:
	$(MAKE) CUDA=emu BUILD=build-emu-tsan ARCH= CXXFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" \
	  EMU_ENGINE_FLAGS="-fno-sanitize=thread -DITTT_EMU_TSAN=1" build-emu-tsan/ittt_tests
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 OMP_NUM_THREADS=1 ITTT_TEST_SHAPES=small build-emu-tsan/ittt_tests "$(EMU_TESTS)"

cuda-check-poison:
	$(MAKE) CUDA=emu BUILD=build-emu build-emu/ittt_tests
	ITTT_EMU_POISON_SHARED=1 build-emu/ittt_tests "$(EMU_TESTS)"

cuda-mutants:
	tests/cuda_emu_mutants.sh
