# src/bench/bench.mk: the benchmarks and the profilers, included by the Makefile.
#
#   make bench          benchmark tables (not tests): build/ittt_bench, then with MPI=1 the
#                       context-parallel one (src/parallel/mpi.mk)
#   make profile        Nsight Compute on one kernel version + Nsight Systems on training (docs/profiling.md)
#
# build/ittt_bench is an application on the core library; it does not plot, so it links no boost.

BENCH_OBJ := $(call obj,$(wildcard src/bench/*.cpp))
BENCH_RUNS += bench-tables

$(BUILD)/ittt_bench: $(BENCH_OBJ) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) $(if $(filter 1,$(CUDA)),-lcublas,) -o $@

.PHONY: bench-tables profile
bench-tables: $(BUILD)/ittt_bench
	$(BUILD)/ittt_bench $(BENCH_ARGS)

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
KERNEL ?=
KERNEL_REGEX ?=
TEST ?=
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
