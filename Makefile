# ittt: In-Place Test-Time Training in C++/CUDA.
#
#   make demo          build, then step through the fast-weight updates (src/driver/driver.mk)
#   make test          build and run the Catch2 tests; last line "N passed, M failed"
#   make               the core library build/libittt.a, build/ittt, the MPI binaries with MPI=1
#
# The rest lives beside what it builds, one fragment per concern (included below):
#   tests/tests.mk                  the test binary, sanitize (the tests under ASan + UBSan)
#   notebooks-cpp/labs.mk           labs
#   src/bench/bench.mk              bench, profile (Nsight Compute / Systems)
#   src/tools/exp/exp.mk            experiments, exp-learned, exp-text, ... exp-all (docs/results.md)
#   tests/fuzz/fuzz.mk              fuzz, fuzz-smoke, fuzz-build, reliability-table (docs/reliability.md)
#   src/runtime/cuda_emu/cuda_emu.mk  CUDA=emu, cuda-check[-asan|-tsan|-poison], cuda-mutants
#   src/parallel/mpi.mk             MPI=1, NCCL=1: context parallelism (docs/parallelism.md)
# and here: info, deps (the Debian packages, through src/install-deps.sh), clean.
#
# Knobs: CUDA=0|1|emu (default 1 when nvcc is found), MPI=0|1 (default 1 when mpicxx is
# found), NCCL=0|1 (default 1 with CUDA=1, MPI=1 and NCCL found), GPU_ARCH=90, PLOTS=0
# (no gnuplot-iostream, no boost), CATCH2_INC=<dir holding catch2/catch.hpp>, BUILD=<dir>,
# ARCH=x86-64-v3 (the -march value; empty for the compiler's default).
#
# Why not -march=native: GCC 12.2 (Debian 12) miscompiles some code when AVX-512 is
# enabled (a std::vector<double>{1,1,0,0} initialiser comes out as {1,1,1,1};
# tests/test_runtime.cpp pins the case). x86-64-v3 is AVX2 + FMA: fast and safe.

# ---- knobs ----
CXX        ?= g++
NVCC       ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
ifeq ($(origin CUDA),undefined)
  CUDA := $(if $(NVCC),1,0)
endif
CUDA_HOME  ?= $(patsubst %/bin/nvcc,%,$(NVCC))
ifeq ($(origin MPI),undefined)
  MPI := $(if $(or $(shell command -v mpicxx 2>/dev/null),$(shell pkg-config --exists ompi 2>/dev/null && echo y)),1,0)
endif
NCCL_INC := $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h /usr/local/include/nccl.h))
NCCL_LIB := $(firstword $(wildcard $(CUDA_HOME)/lib64/libnccl.so /usr/lib/x86_64-linux-gnu/libnccl.so /usr/local/lib/libnccl.so))
ifeq ($(origin NCCL),undefined)
  NCCL := $(if $(and $(filter 1,$(CUDA)),$(filter 1,$(MPI)),$(NCCL_INC),$(NCCL_LIB)),1,0)
endif
GPU_ARCH   ?= 90
PLOTS      ?= 1
CATCH2_INC ?= /usr/include
BUILD      ?= $(if $(filter emu,$(CUDA)),build-emu,build)
ARCH       ?= x86-64-v3

# ---- flags ----
# NVTX v3 is header-only: used whenever the CUDA toolkit's copy is present.
NVTX_INC := $(if $(filter emu,$(CUDA)),,$(firstword $(wildcard $(CUDA_HOME)/include/nvtx3/nvToolsExt.h /usr/include/nvtx3/nvToolsExt.h)))
NVTX := $(if $(NVTX_INC),1,0)
CPPFLAGS  += -Isrc -I. -DITTT_WITH_CUDA=$(if $(filter emu,$(CUDA)),1,$(CUDA)) -DITTT_WITH_NVTX=$(NVTX)
CPPFLAGS  += $(if $(NVTX_INC),-I$(dir $(patsubst %/,%,$(dir $(NVTX_INC)))),)
CXXFLAGS  ?= -O3 $(if $(ARCH),-march=$(ARCH),)
# `override` keeps these when CXXFLAGS / LDFLAGS are given on the command line (make sanitize).
# -fno-trapping-math: nothing here reads floating-point exception flags, and without it GCC will
# not turn a float comparison inside a loop into a vector select (kernels/elementwise/exp_cpu.h).
# It changes no result: no reassociation, no contraction beyond the default.
override CXXFLAGS += -std=c++17 -fopenmp -fno-trapping-math -Wall -Wextra -MMD -MP
override LDFLAGS  += -fopenmp
NVCCFLAGS ?= -O3
NVCCFLAGS += -std=c++17 -arch=sm_$(GPU_ARCH) -lineinfo -Xcompiler -fopenmp,-Wall -MMD -MP
# What every program links for the core: the tokenizer's PCRE2 (its split pattern) and ICU
# (its normalizer), and the CUDA runtime. mpi.mk adds MPI and NCCL; the plot helpers'
# boost is PLOT_LDLIBS (src/driver/driver.mk), for the programs that plot.
LDLIBS    += -lpcre2-8 -licuuc
ifeq ($(CUDA),1)
  LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart
endif
# How a .cu file is compiled: nvcc, or g++ against the CPU emulator (cuda_emu.mk sets it).
CU_COMPILE = $(NVCC) $(CPPFLAGS) $(NVCCFLAGS)

# ---- what the fragments add to ----
obj = $(patsubst %,$(BUILD)/obj/%.o,$(1))
# The core library: every folder below the applications, every file by wildcard.
CORE_DIRS := runtime ops io tasks tokenizer parallel model train
LIB_OBJ  := $(call obj,$(wildcard $(CORE_DIRS:%=src/%/*.cpp) kernels/*/*.cpp))
LIB_OBJ  += $(if $(filter 1 emu,$(CUDA)),$(call obj,$(wildcard $(CORE_DIRS:%=src/%/*.cu) kernels/*/*.cu)),)
LIB      := $(BUILD)/libittt.a
TOOL_OBJ := $(call obj,$(wildcard src/tools/*.cpp))
# The test binary's objects, and what is built before it (the labs its [labs] cases run).
TEST_OBJ   :=
TEST_NEEDS :=
# What `make` (all) and `make test` build, the runs `make bench` makes, what `make clean` removes.
ALL_DEPS   := $(BUILD)/ittt
TEST_DEPS  := $(BUILD)/ittt_tests $(BUILD)/ittt
BENCH_RUNS :=
CLEAN_DIRS := $(BUILD) build-sanitize
# The Debian packages (installed by src/install-deps.sh) and a file each one provides.
DEB_PACKAGES := catch2 libpcre2-dev libicu-dev
DEP_FILES    := $(CATCH2_INC)/catch2/catch.hpp /usr/include/pcre2.h /usr/include/unicode/unorm2.h

.DEFAULT_GOAL := all
# The order matters once: tests.mk reads TEST_OBJ and TEST_NEEDS, which the ones above it add to.
include src/parallel/mpi.mk
include src/runtime/cuda_emu/cuda_emu.mk
include src/driver/driver.mk
include notebooks-cpp/labs.mk
include src/bench/bench.mk
include src/tools/exp/exp.mk
include tests/fuzz/fuzz.mk
include tests/tests.mk
include tests/gpu/gpu.mk

# ---- the Debian packages: checked before anything compiles ----
.PHONY: deps
deps:
	@src/install-deps.sh --log $(BUILD)/apt.log --packages "$(DEB_PACKAGES)" --hint "or build with PLOTS=0 CATCH2_INC=<dir>" \
	  files $(DEP_FILES)

# ---- compile and link ----
$(BUILD)/obj/%.cpp.o: %.cpp | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu | deps
	@mkdir -p $(dir $@)
	$(CU_COMPILE) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The command-line tool: src/tools on the driver (ittt step plots) and the core.
$(BUILD)/ittt: $(TOOL_OBJ) $(DRIVER_LIB) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(PLOT_LDLIBS) $(LDLIBS) -o $@

# ---- the targets the fragments feed, each defined once ----
.PHONY: all test bench clean info
all: $(ALL_DEPS) info

test: $(TEST_DEPS)
	@$(BUILD)/ittt_tests $(TEST_ARGS)

bench: $(BENCH_RUNS)

clean:
	rm -rf $(CLEAN_DIRS)

info:
	@echo "ittt: built $(if $(filter emu,$(CUDA)),CPU + the CUDA emulator (the .cu files as host C++; not a GPU),$(if $(filter 1,$(CUDA)),CPU + CUDA (sm_$(GPU_ARCH)),CPU only ($(if $(NVCC),CUDA=0 given,nvcc not found)))), NVTX $(if $(filter 1,$(NVTX)),on,off), plots $(if $(filter 1,$(PLOTS)),on,off), MPI $(if $(filter 1,$(MPI)),on,off)$(if $(filter 1,$(NCCL)), + NCCL,)"

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
