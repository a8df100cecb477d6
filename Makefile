# ittt: In-Place Test-Time Training in C++/CUDA.
#
#   make               library + build/ittt (+ the CUDA side when nvcc is found)
#   make test          Catch2 tests; last line "N passed, M failed"
#   make sanitize      the tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench         benchmark tables (not tests)
#   make demo          the step-through driver on its default settings
#   make experiments   the MQAR comparison behind docs/results.md
#   make exp-learned   docs/results.md sections 1-5, one target each (exp-text, exp-ablate, exp-needle,
#                      exp-continual; exp-all runs the five): resumable, results under out/exp-<name>/
#   make profile       Nsight Compute on one kernel version + Nsight Systems on training (docs/profiling.md)
#   make fuzz          libFuzzer on the safetensors, config.json and CLI parsers (docs/reliability.md)
#   make CUDA=emu      the CUDA side compiled by g++ against the CPU emulator, in build-emu/ (docs/cuda-emulator.md)
#   make cuda-check    the emulated [cuda] tests under ASan, TSan and NaN-poisoned shared memory; make cuda-mutants
#
# Knobs: CUDA=0|1|emu (default: 1 when nvcc is found), MPI=0|1 and NCCL=0|1 (context
# parallelism, see the MPI block below), GPU_ARCH=90, PLOTS=0 (build
# without gnuplot-iostream), CATCH2_INC=<dir holding catch2/catch.hpp>,
# BUILD=<dir>, ARCH=x86-64-v3 (the -march value; empty for the compiler's default).
#
# Why not -march=native: GCC 12.2 (Debian 12) miscompiles some code when AVX-512
# is enabled (a std::vector<double>{1,1,0,0} initialiser comes out as {1,1,1,1};
# tests/test_runtime.cpp pins the case). x86-64-v3 is AVX2 + FMA: fast and safe.

BUILD     ?= $(if $(filter emu,$(CUDA)),build-emu,build)
CXX       ?= g++
NVCC      ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
GPU_ARCH  ?= 90
CATCH2_INC ?= /usr/include
PLOTS     ?= 1
ARCH      ?= x86-64-v3

ifeq ($(origin CUDA),undefined)
  CUDA := $(if $(NVCC),1,0)
endif
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))

# NVTX v3 is header-only: use it whenever the CUDA toolkit's copy is present.
NVTX_INC := $(if $(filter emu,$(CUDA)),,$(firstword $(wildcard $(CUDA_HOME)/include/nvtx3/nvToolsExt.h /usr/include/nvtx3/nvToolsExt.h)))
NVTX := $(if $(NVTX_INC),1,0)

ARCH_FLAGS := $(if $(ARCH),-march=$(ARCH),)
CPPFLAGS  += -Isrc -I. -DITTT_WITH_CUDA=$(if $(filter emu,$(CUDA)),1,$(CUDA)) -DITTT_WITH_NVTX=$(NVTX) -DITTT_WITH_GNUPLOT=$(PLOTS)
CPPFLAGS  += $(if $(NVTX_INC),-I$(dir $(patsubst %/,%,$(dir $(NVTX_INC)))),)
CXXFLAGS  ?= -O3 $(ARCH_FLAGS)
# `override` keeps these when CXXFLAGS / LDFLAGS are given on the command line (make sanitize).
# -fno-trapping-math: nothing here reads floating-point exception flags, and without it GCC will
# not turn a float comparison inside a loop into a vector select (kernels/elementwise/exp_cpu.h).
# It changes no result: no reassociation, no contraction beyond the default.
override CXXFLAGS += -std=c++17 -fopenmp -fno-trapping-math -Wall -Wextra -MMD -MP
override LDFLAGS  += -fopenmp
LDLIBS    += $(if $(filter 1,$(PLOTS)),-lboost_iostreams -lboost_filesystem,)
NVCCFLAGS ?= -O3
NVCCFLAGS += -std=c++17 -arch=sm_$(GPU_ARCH) -lineinfo -Xcompiler -fopenmp,-Wall -MMD -MP
ifeq ($(CUDA),1)
  LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart
endif

# ---- sources: every folder is picked up by wildcard, no list to keep in sync ----
LIB_CPP   := $(wildcard src/runtime/*.cpp src/ops/*.cpp src/model/*.cpp src/io/*.cpp src/tasks/*.cpp \
                        src/train/*.cpp src/driver/*.cpp src/parallel/*.cpp kernels/*/*.cpp)
LIB_CU    := $(if $(filter 1 emu,$(CUDA)),$(wildcard src/*/*.cu kernels/*/*.cu),)
TOOL_CPP  := $(wildcard src/tools/*.cpp)
BENCH_CPP := $(wildcard src/bench/*.cpp)
TEST_CPP  := $(wildcard tests/*.cpp)

obj = $(patsubst %,$(BUILD)/obj/%.o,$(1))
LIB_OBJ   := $(call obj,$(LIB_CPP) $(LIB_CU))
LIB       := $(BUILD)/libittt.a

.PHONY: all test sanitize bench demo experiments clean deps info profile
.DEFAULT_GOAL := all

all: $(BUILD)/ittt info

info:
	@echo "ittt: built $(if $(filter emu,$(CUDA)),CPU + the CUDA emulator (the .cu files as host C++; not a GPU),$(if $(filter 1,$(CUDA)),CPU + CUDA (sm_$(GPU_ARCH)),CPU only ($(if $(NVCC),CUDA=0 given,nvcc not found)))), NVTX $(if $(filter 1,$(NVTX)),on,off), plots $(if $(filter 1,$(PLOTS)),on,off), MPI $(if $(filter 1,$(MPI)),on,off)$(if $(filter 1,$(NCCL)), + NCCL,)"

# ---- Debian packages: installed when root, otherwise the exact command is printed ----
DEB_PACKAGES := catch2 $(if $(filter 1,$(PLOTS)),libgnuplot-iostream-dev libboost-iostreams-dev libboost-filesystem-dev gnuplot-nox,)
DEP_FILES    := $(CATCH2_INC)/catch2/catch.hpp $(if $(filter 1,$(PLOTS)),/usr/include/gnuplot-iostream.h /usr/include/boost/iostreams/device/file_descriptor.hpp /usr/include/boost/filesystem.hpp /usr/bin/gnuplot,)

# ---- tokenizer (src/tokenizer/): PCRE2 runs the pre-tokenizer's Unicode split pattern,
# ICU does the normalizer (NFC, ...); both Debian packages, installed like the ones above ----
LIB_OBJ      += $(call obj,$(wildcard src/tokenizer/*.cpp))
LDLIBS       += -lpcre2-8 -licuuc
DEB_PACKAGES += libpcre2-dev libicu-dev
DEP_FILES    += /usr/include/pcre2.h /usr/include/unicode/unorm2.h
# ---- end tokenizer ----
$(BUILD)/deps.ok:
	@mkdir -p $(BUILD)
	@missing=""; for f in $(DEP_FILES); do [ -e $$f ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  echo "missing:$$missing"; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing: $(DEB_PACKAGES)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES)) >$(BUILD)/apt.log 2>&1 \
	      || { echo "apt-get failed, see $(BUILD)/apt.log"; exit 1; }; \
	    for f in $(DEP_FILES); do [ -e $$f ] || { echo "still missing after apt-get: $$f"; exit 1; }; done; \
	  else \
	    echo "run: sudo apt-get install -y $(DEB_PACKAGES)   (or build with PLOTS=0 CATCH2_INC=<dir>)"; exit 1; \
	  fi; \
	fi; touch $@
deps: $(BUILD)/deps.ok

# ---- compile ----
$(BUILD)/obj/%.cpp.o: %.cpp | $(BUILD)/deps.ok
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu | $(BUILD)/deps.ok
	@mkdir -p $(dir $@)
	$(NVCC) $(CPPFLAGS) $(NVCCFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# ==== CUDA emulator: make CUDA=emu (docs/cuda-emulator.md) ===================================== begin
# Every .cu file is compiled by g++ as host C++, with src/runtime/cuda_emu/ first on the include
# path (its cuda_runtime.h, mma.h, cub/) and cuda_runtime.h force-included, as nvcc does; the
# emulator's engine joins the library. No CUDA toolkit is used.
#   make cuda-check         the emulated [cuda] and [cuda_emu] tests three ways, each in its own BUILD:
#     cuda-check-asan         AddressSanitizer + UndefinedBehaviorSanitizer   (build-emu-asan)
#     cuda-check-tsan         ThreadSanitizer, small shapes, one OpenMP thread  (build-emu-tsan)
#     cuda-check-poison       shared memory filled with NaN before every block   (build-emu)
#   make cuda-mutants       planted bugs the emulated tests must catch (tests/cuda_emu_mutants.sh)
EMU_DIR := src/runtime/cuda_emu
ifeq ($(CUDA),emu)
CPPFLAGS += -I$(EMU_DIR)
$(LIB): $(call obj,$(wildcard $(EMU_DIR)/*.cpp))
$(BUILD)/obj/%.cu.o: %.cu | $(BUILD)/deps.ok
	@mkdir -p $(dir $@)
	$(CXX) -x c++ -include cuda_runtime.h $(CPPFLAGS) $(CXXFLAGS) $(EMU_CU_WARNINGS) -c $< -o $@
# nvcc's #pragma unroll, and int-vs-threadIdx comparisons that nvcc does not warn about
EMU_CU_WARNINGS := -Wno-unknown-pragmas -Wno-sign-compare
# The emulator's own unit tests: tiny kernels in tests/*.cu, linked into the test binary.
$(BUILD)/obj/tests/%.cu.o: CPPFLAGS += -I$(CATCH2_INC)
$(BUILD)/ittt_tests: $(call obj,$(wildcard tests/*.cu))
# The TSan build compiles the scheduler and the fibers without TSan's instrumentation (their
# bookkeeping is ordered by construction) and lets them call TSan's fiber and sync API.
$(call obj,$(EMU_DIR)/emulator.cpp $(EMU_DIR)/fiber.cpp): override CXXFLAGS += $(EMU_ENGINE_FLAGS)
# Mutation tests: one object rebuilt with a planted bug (tests/cuda_emu_mutants.sh).
ifneq ($(EMU_MUTANT_OBJ),)
$(EMU_MUTANT_OBJ): CPPFLAGS += $(EMU_MUTANT_FLAGS)
endif
endif

EMU_TESTS ?= [cuda],[cuda_emu]
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

clean: clean-cuda-emu
.PHONY: clean-cuda-emu
clean-cuda-emu:
	rm -rf build-emu build-emu-asan build-emu-tsan build-emu-mutant-*
# ==== CUDA emulator ================================================================================ end

$(BUILD)/ittt: $(call obj,$(TOOL_CPP)) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/ittt_bench: $(call obj,$(BENCH_CPP)) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) $(if $(filter 1,$(CUDA)),-lcublas,) -o $@

$(BUILD)/obj/tests/%.cpp.o: CPPFLAGS += -I$(CATCH2_INC)
$(BUILD)/ittt_tests: $(call obj,$(TEST_CPP)) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

# ---- run ----
test: $(BUILD)/ittt_tests $(BUILD)/ittt
	@$(BUILD)/ittt_tests $(TEST_ARGS)

sanitize:
	$(MAKE) BUILD=build-sanitize CUDA=0 ARCH= CXXFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" build-sanitize/ittt_tests build-sanitize/ittt $(if $(filter 1,$(MPI)),build-sanitize/ittt_cp_check)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 OMP_NUM_THREADS=2 ITTT_BIN=build-sanitize/ittt \
	  build-sanitize/ittt_tests $(TEST_ARGS)

bench: $(BUILD)/ittt_bench
	$(BUILD)/ittt_bench $(BENCH_ARGS)

# MQAR with a gap wider than the window: full vs SWA vs SWA + TTT (docs/results.md).
experiments: $(BUILD)/ittt
	src/tools/run_experiments.sh $(EXPERIMENTS_OUT)

# docs/results.md sections 1-5 (src/tools/exp/*.sh): each prints a progress line with an ETA
# per run, skips finished runs when started again, writes JSON, tables and PNGs under
# $(EXP_OUT)/exp-<name>/ and ends with its wall time. EXP_SMOKE=1: tiny sizes (the tests' smoke run).
EXP_OUT ?= out
EXP_SECTIONS := learned text ablate needle continual
.PHONY: exp-all $(addprefix exp-,$(EXP_SECTIONS))
$(addprefix exp-,$(filter-out needle,$(EXP_SECTIONS))): exp-%: $(BUILD)/ittt
	EXP_BIN=$(BUILD)/ittt src/tools/exp/$*.sh $(EXP_OUT)/exp-$*
# Section 4 twice: the repeated-pattern haystack, then a random one (docs/results.md says why).
exp-needle: $(BUILD)/ittt
	EXP_BIN=$(BUILD)/ittt src/tools/exp/needle.sh $(EXP_OUT)/exp-needle
	FILLER=random EXP_BIN=$(BUILD)/ittt src/tools/exp/needle.sh $(EXP_OUT)/exp-needle-random
exp-all: $(addprefix exp-,$(EXP_SECTIONS))

# ---- demo: the step-through driver, non-interactive (docs/theory.md) ----
# Theory mode (Theorem 1 in its constructed setting, with a short sweep over d),
# then model mode on the checkpoint shipped in data/demo (see data/README.md).
# Full text goes to $(DEMO_OUT)/*.txt, figures next to it; the verdicts last.
DEMO_OUT  ?= out/demo
DEMO_CKPT ?= data/demo
DEMO_TASK ?= --task mqar --task-opt pairs=4,gap=32 --seq-len 64 --examples 32
demo: SHELL := /bin/bash
demo: $(BUILD)/ittt
	@mkdir -p $(DEMO_OUT)
	set -o pipefail; $(BUILD)/ittt step --theory --auto --sweep 16,32,64,128,256 --plots $(DEMO_OUT) | tee $(DEMO_OUT)/theory.txt
	set -o pipefail; $(BUILD)/ittt step --ckpt $(DEMO_CKPT) $(DEMO_TASK) --auto --plots $(DEMO_OUT) | tee $(DEMO_OUT)/model.txt
	@echo; echo "==== verdicts (full output: $(DEMO_OUT)/theory.txt, $(DEMO_OUT)/model.txt) ===="
	@echo "theory mode, Theorem 1 in its constructed setting:"
	@grep -hE '^(LM-aligned|Reconstruction): ' $(DEMO_OUT)/theory.txt | sed 's/^/  /'
	@echo "model mode, $(DEMO_CKPT) (a heuristic check: the theorem's assumptions do not hold in a trained model):"
	@grep -hE '^(Learned|Offset-0)[:,] |accuracy \(v\* on top\)' $(DEMO_OUT)/model.txt | sed 's/^ */  /'
	@echo "figures: $(DEMO_OUT)/*.png (and .svg, .gp); start with $(DEMO_OUT)/model_chunks.png"

# ---- profile: Nsight Compute on one kernel version, Nsight Systems on a training run ----
#   make profile KERNEL=gemm VERSION=3 [SIZE=4096]         ncu, the gemm_cuda benchmark timing version 3 only
#   make profile KERNEL=gemm VERSION=3 TEST='[cuda][gemm]'  ncu on those tests instead (every v3 launch, up to PROFILE_COUNT)
#   make profile KERNEL=attention [KERNEL_REGEX=attention_flash]   ncu on the [cuda][attention] tests
#   make profile                                             (no KERNEL) only the nsys timeline
# Reports go to out/profile/<kernel>_v<version>.ncu-rep and out/profile/train.nsys-rep.
# VERSION picks the kernel by name (gemm: the table below); for other ops KERNEL_REGEX
# names the kernels (their tests run every version). A missing ncu or nsys is reported and skipped.
NCU  ?= $(or $(shell command -v ncu 2>/dev/null),$(wildcard $(CUDA_HOME)/bin/ncu))
NSYS ?= $(or $(shell command -v nsys 2>/dev/null),$(wildcard $(CUDA_HOME)/bin/nsys))
VERSION ?= 0
SIZE ?= 4096
PROFILE_COUNT ?= 10
PROFILE_STEPS ?= 20
PROFILE_TRAIN_ARGS ?= --task mqar --task-opt pairs=8,gap=96 --config data/configs/mqar_swa_ttt.json --batch 16 --seq-len 256
GEMM_KERNEL_0 := gemm_
GEMM_KERNEL_1 := gemm_naive_kernel
GEMM_KERNEL_2 := gemm_smem_kernel
GEMM_KERNEL_3 := gemm_blocktile_kernel
GEMM_KERNEL_4 := gemm_warptile_kernel
GEMM_KERNEL_5 := gemm_wmma_tf32_kernel
PROFILE_REGEX := $(or $(KERNEL_REGEX),$(if $(filter gemm,$(KERNEL)),$(GEMM_KERNEL_$(VERSION)),$(KERNEL)))
PROFILE_OUT := out/profile/$(KERNEL)_v$(VERSION)

profile: $(BUILD)/ittt $(BUILD)/ittt_tests $(BUILD)/ittt_bench
	@mkdir -p out/profile
ifneq ($(KERNEL),)
  ifeq ($(NCU),)
	@echo "profile: ncu (Nsight Compute) not found: install it or put it on PATH; skipping the kernel profile"
  else ifeq ($(PROFILE_REGEX),)
	@echo "profile: no kernel name pattern for KERNEL=$(KERNEL) VERSION=$(VERSION); give KERNEL_REGEX=..."; exit 1
  else ifeq ($(and $(filter gemm,$(KERNEL)),$(if $(TEST),,1)),1)
	ITTT_KERNEL=gemm=$(VERSION) ITTT_GEMM_SIZE=$(SIZE) $(NCU) --set full --nvtx -k regex:$(PROFILE_REGEX) -s 1 -c 1 \
	  -f -o $(PROFILE_OUT) $(BUILD)/ittt_bench --filter gemm_cuda
	@echo "profile: wrote $(PROFILE_OUT).ncu-rep (open with ncu-ui, or: $(NCU) --import $(PROFILE_OUT).ncu-rep --page details)"
  else
	$(NCU) --set full --nvtx -k regex:$(PROFILE_REGEX) -c $(PROFILE_COUNT) -f -o $(PROFILE_OUT) \
	  $(BUILD)/ittt_tests "$(or $(TEST),[cuda][$(KERNEL)])"
	@echo "profile: wrote $(PROFILE_OUT).ncu-rep (open with ncu-ui, or: $(NCU) --import $(PROFILE_OUT).ncu-rep --page details)"
  endif
else
	@echo "profile: no KERNEL=... given; skipping Nsight Compute (e.g. make profile KERNEL=gemm VERSION=3)"
endif
ifeq ($(NSYS),)
	@echo "profile: nsys (Nsight Systems) not found: install it or put it on PATH; skipping the timeline"
else
	$(NSYS) profile --trace=cuda,nvtx --force-overwrite=true -o out/profile/train \
	  $(BUILD)/ittt train $(PROFILE_TRAIN_ARGS) --steps $(PROFILE_STEPS) --out out/profile/train_ckpt --device cuda
	@echo "profile: wrote out/profile/train.nsys-rep (open with nsys-ui, or: $(NSYS) stats out/profile/train.nsys-rep)"
endif

# ---- reliability (issue 9): fuzzing, the bad-inputs table (docs/reliability.md) ----
#   make fuzz [FUZZ_TIME=60] [FUZZ_TARGETS="safetensors config_json cli"]   each target for FUZZ_TIME seconds
#   make fuzz-smoke                                                          each target for FUZZ_SMOKE_TIME (20) s: CI
#   make reliability-table                                                   rewrite the table in docs/reliability.md
# The targets (tests/fuzz/fuzz_*.cpp) build with clang's libFuzzer + ASan + UBSan
# from the few sources they need, into $(BUILD)/fuzz; clang and its runtime are
# installed (as root) only when a fuzz target is asked for. Each run starts
# from the seed corpus in tests/fuzz/corpus/<target> (python3 tests/fuzz/make_seeds.py
# writes it) and keeps what it finds in $(BUILD)/fuzz/corpus/<target>; a crash
# leaves its input in $(BUILD)/fuzz/<target>-crash-* and fails the run.
FUZZ_CXX        ?= $(or $(shell command -v clang++ 2>/dev/null),$(shell command -v clang++-14 2>/dev/null),clang++)
FUZZ_BUILD      := $(BUILD)/fuzz
FUZZ_TARGETS    ?= safetensors config_json cli
FUZZ_TIME       ?= 60
FUZZ_SMOKE_TIME ?= 20
FUZZ_DEB_PACKAGES := clang libclang-rt-14-dev
FUZZ_SANITIZE   := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CXXFLAGS   := -std=c++17 -O1 -g -fno-omit-frame-pointer $(FUZZ_SANITIZE) -Isrc -I. -DITTT_WITH_CUDA=0 -DITTT_WITH_NVTX=0 -DITTT_WITH_GNUPLOT=0
FUZZ_LIB_SRC    := src/io/json.cpp src/io/safetensors.cpp src/io/atomic_file.cpp src/io/fault_injection.cpp src/io/config_json.cpp \
                   src/io/model_config.cpp src/model/memory_budget.cpp src/runtime/tensor.cpp src/runtime/device.cpp \
                   src/tools/args.cpp src/tasks/tasks.cpp
FUZZ_LIB_OBJ    := $(patsubst %.cpp,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_LIB_SRC))
.SECONDARY: $(FUZZ_LIB_OBJ)

.PHONY: fuzz fuzz-smoke fuzz-build reliability-table
$(FUZZ_BUILD)/deps.ok:
	@mkdir -p $(FUZZ_BUILD)
	@probe='extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }'; \
	if ! echo "$$probe" | $(FUZZ_CXX) -x c++ -fsanitize=fuzzer,address - -o $(FUZZ_BUILD)/probe 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing: $(FUZZ_DEB_PACKAGES)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FUZZ_DEB_PACKAGES)) >$(FUZZ_BUILD)/apt.log 2>&1 \
	      || { echo "apt-get failed, see $(FUZZ_BUILD)/apt.log"; exit 1; }; \
	    echo "$$probe" | $(FUZZ_CXX) -x c++ -fsanitize=fuzzer,address - -o $(FUZZ_BUILD)/probe \
	      || { echo "clang still cannot build a libFuzzer target"; exit 1; }; \
	  else \
	    echo "the fuzz targets need clang with libFuzzer: sudo apt-get install -y $(FUZZ_DEB_PACKAGES)"; exit 1; \
	  fi; \
	fi; rm -f $(FUZZ_BUILD)/probe; touch $@

$(FUZZ_BUILD)/obj/%.o: %.cpp | $(FUZZ_BUILD)/deps.ok
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.cpp $(FUZZ_LIB_OBJ) | $(FUZZ_BUILD)/deps.ok
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer $< $(FUZZ_LIB_OBJ) -o $@

fuzz-build: $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_TARGETS))

# One target for $(1) seconds; prints its executions and fails on any finding.
define fuzz_run
	@mkdir -p $(FUZZ_BUILD)/corpus/$(1)
	@echo "fuzz $(1): $(2) s"
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(FUZZ_BUILD)/fuzz_$(1) -max_total_time=$(2) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_BUILD)/$(1)- $(FUZZ_BUILD)/corpus/$(1) tests/fuzz/corpus/$(1) >$(FUZZ_BUILD)/$(1).log 2>&1 \
	  || { tail -n 40 $(FUZZ_BUILD)/$(1).log; echo "fuzz $(1): FAILED (log: $(FUZZ_BUILD)/$(1).log)"; exit 1; }
	@echo "fuzz $(1): $$(grep -h 'stat::number_of_executed_units' $(FUZZ_BUILD)/$(1).log | awk '{print $$2}') executions, no finding"

endef

fuzz: fuzz-build
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),$(FUZZ_TIME)))

fuzz-smoke: fuzz-build
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),$(FUZZ_SMOKE_TIME)))

reliability-table: $(BUILD)/ittt_tests $(BUILD)/ittt
	ITTT_RELIABILITY_DOC=docs/reliability.md $(BUILD)/ittt_tests "[reliability-table]"

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
# ---- end of the reliability block ----

clean:
	rm -rf $(BUILD) build-sanitize

# ---- MPI: context parallelism (docs/parallelism.md) -------------------------------------
# MPI=0|1: default 1 when mpicxx or pkg-config's ompi is found. The library always has
# src/parallel/; only context.cpp changes with MPI (without it, --context-parallel is an
# error that says how to get MPI). NCCL=0|1: the transport for CUDA tensors, default 1
# when CUDA=1, MPI=1 and nccl.h + libnccl are found (compiled; it needs GPUs to run).
# MPI=1 adds the Debian packages to the deps list, builds build/ittt_cp_check (the MPI
# tests, run by `make test` through tests/test_parallel.cpp) and build/ittt_cp_bench
# (run by `make bench`). Flags are looked up when a recipe runs, after `deps`.
MPIRUN ?= mpirun
ifeq ($(origin MPI),undefined)
  MPI := $(if $(or $(shell command -v mpicxx 2>/dev/null),$(shell pkg-config --exists ompi 2>/dev/null && echo y)),1,0)
endif
NCCL_INC := $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h /usr/local/include/nccl.h))
NCCL_LIB := $(firstword $(wildcard $(CUDA_HOME)/lib64/libnccl.so /usr/lib/x86_64-linux-gnu/libnccl.so /usr/local/lib/libnccl.so))
ifeq ($(origin NCCL),undefined)
  NCCL := $(if $(and $(filter 1,$(CUDA)),$(filter 1,$(MPI)),$(NCCL_INC),$(NCCL_LIB)),1,0)
endif
ifeq ($(MPI),1)
  MPI_CFLAGS = $(shell pkg-config --cflags ompi 2>/dev/null || mpicc --showme:compile)
  MPI_LIBS   = $(shell pkg-config --libs ompi 2>/dev/null || mpicc --showme:link)
  LDLIBS += $(MPI_LIBS)
  DEB_PACKAGES += libopenmpi-dev openmpi-bin
  DEP_FILES += $(if $(shell command -v mpirun 2>/dev/null),,/usr/bin/mpirun) $(if $(shell command -v mpicc 2>/dev/null),,/usr/bin/mpicc)
  MPI_BINS := $(BUILD)/ittt_cp_check $(BUILD)/ittt_cp_bench
endif
ifeq ($(NCCL),1)
  NCCL_FLAGS := -I$(dir $(NCCL_INC)) -I$(CUDA_HOME)/include
  LDLIBS += -L$(dir $(NCCL_LIB)) -Wl,-rpath,$(dir $(NCCL_LIB)) -lnccl
endif
PARALLEL_OBJ := $(call obj,$(wildcard src/parallel/*.cpp))
$(PARALLEL_OBJ): CPPFLAGS += -DITTT_WITH_MPI=$(MPI) -DITTT_WITH_NCCL=$(NCCL) $(if $(filter 1,$(MPI)),$(MPI_CFLAGS)) $(NCCL_FLAGS)
# A stamp named after the setting: switching MPI or NCCL recompiles src/parallel.
MPI_STAMP := $(BUILD)/mpi$(MPI)_nccl$(NCCL).stamp
$(PARALLEL_OBJ): $(MPI_STAMP)
$(MPI_STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/mpi*_nccl*.stamp && touch $@

$(BUILD)/ittt_cp_check: $(call obj,tests/mpi/cp_check.cpp) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/ittt_cp_bench: $(call obj,src/bench/parallel/bench_context_parallel.cpp src/bench/bench_table.cpp src/bench/bench_models.cpp) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@
test: $(MPI_BINS)
all: $(MPI_BINS)
bench: bench-mpi
.PHONY: bench-mpi
bench-mpi: $(BUILD)/ittt_bench $(MPI_BINS)
ifeq ($(MPI),1)
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 \
	  $(MPIRUN) --oversubscribe -np 2 $(BUILD)/ittt_cp_bench $(CP_BENCH_ARGS)
else
	@echo "bench: context-parallel benchmark skipped (built without MPI; MPI=1 needs libopenmpi-dev openmpi-bin)"
endif
# ---- end of the MPI block ------------------------------------------------------------

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

-include notebooks-cpp/labs.mk
