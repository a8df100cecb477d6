# ittt: In-Place Test-Time Training in C++/CUDA.
#
#   make               library + build/ittt (+ the CUDA side when nvcc is found)
#   make test          Catch2 tests; last line "N passed, M failed"
#   make sanitize      the tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench         benchmark tables (not tests)
#   make demo          the step-through driver on its default settings
#   make experiments   the MQAR comparison behind docs/results.md
#   make profile       Nsight Compute on one kernel version + Nsight Systems on training (docs/profiling.md)
#
# Knobs: CUDA=0|1 (default: 1 when nvcc is found), GPU_ARCH=90, PLOTS=0 (build
# without gnuplot-iostream), CATCH2_INC=<dir holding catch2/catch.hpp>,
# BUILD=<dir>, ARCH=x86-64-v3 (the -march value; empty for the compiler's default).
#
# Why not -march=native: GCC 12.2 (Debian 12) miscompiles some code when AVX-512
# is enabled (a std::vector<double>{1,1,0,0} initialiser comes out as {1,1,1,1};
# tests/test_runtime.cpp pins the case). x86-64-v3 is AVX2 + FMA: fast and safe.

BUILD     ?= build
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
NVTX_INC := $(firstword $(wildcard $(CUDA_HOME)/include/nvtx3/nvToolsExt.h /usr/include/nvtx3/nvToolsExt.h))
NVTX := $(if $(NVTX_INC),1,0)

ARCH_FLAGS := $(if $(ARCH),-march=$(ARCH),)
CPPFLAGS  += -Isrc -I. -DITTT_WITH_CUDA=$(CUDA) -DITTT_WITH_NVTX=$(NVTX) -DITTT_WITH_GNUPLOT=$(PLOTS)
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
                        src/train/*.cpp src/driver/*.cpp kernels/*/*.cpp)
LIB_CU    := $(if $(filter 1,$(CUDA)),$(wildcard src/*/*.cu kernels/*/*.cu),)
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
	@echo "ittt: built $(if $(filter 1,$(CUDA)),CPU + CUDA (sm_$(GPU_ARCH)),CPU only ($(if $(NVCC),CUDA=0 given,nvcc not found))), NVTX $(if $(filter 1,$(NVTX)),on,off), plots $(if $(filter 1,$(PLOTS)),on,off)"

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
	  LDFLAGS="-fsanitize=address,undefined" build-sanitize/ittt_tests build-sanitize/ittt
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 OMP_NUM_THREADS=2 ITTT_BIN=build-sanitize/ittt \
	  build-sanitize/ittt_tests $(TEST_ARGS)

bench: $(BUILD)/ittt_bench
	$(BUILD)/ittt_bench $(BENCH_ARGS)

# MQAR with a gap wider than the window: full vs SWA vs SWA + TTT (docs/results.md).
experiments: $(BUILD)/ittt
	src/tools/run_experiments.sh $(EXPERIMENTS_OUT)

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

clean:
	rm -rf $(BUILD) build-sanitize

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

-include notebooks-cpp/labs.mk
