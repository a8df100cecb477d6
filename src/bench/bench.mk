# src/bench/bench.mk: the benchmarks and the profilers, included by the Makefile.
#
#   make bench          benchmark tables (not tests): build/ittt_bench, then with MPI=1 the
#                       context-parallel one (src/parallel/mpi.mk)
#   make bench-llamacpp ittt against llama.cpp (F32, BF16) on a random Qwen3-0.6B-shaped model, prefill and
#                       decode at 1 and 2 threads (src/bench/compare_llamacpp.py; makes its own venv in /tmp;
#                       LLAMACPP_ARGS='--rounds 5' passes options). Not part of `make bench` or `make test`.
#   make profile        Nsight Compute on one kernel version + Nsight Systems on training (docs/profiling.md)
#
# build/ittt_bench is an application on the core library; it does not plot, so it links no boost.

BENCH_OBJ := $(call obj,$(wildcard src/bench/*.cpp))
BENCH_RUNS += bench-tables

$(BUILD)/ittt_bench: $(BENCH_OBJ) $(LIB)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) $(if $(filter 1,$(CUDA)),-lcublas,) -o $@

.PHONY: bench-tables profile bench-llamacpp
bench-tables: $(BUILD)/ittt_bench
	$(BUILD)/ittt_bench $(BENCH_ARGS)

LLAMACPP_ARGS ?=
bench-llamacpp: $(BUILD)/ittt_bench
	python3 src/bench/compare_llamacpp.py --bin $(BUILD)/ittt_bench $(LLAMACPP_ARGS)

# ---- profile: Nsight Compute on one kernel version, Nsight Systems on a training run ----
#   make profile KERNEL=gemm VERSION=3 [SIZE=4096] [LAYOUT=NN]   ncu, the gemm_cuda benchmark timing version 3 only
#   make profile KERNEL=gemm VERSION=3 TEST='[cuda][gemm]'  ncu on those tests instead (every v3 launch, up to PROFILE_COUNT)
#   make profile KERNEL=attention [KERNEL_REGEX=attention_flash]   ncu on the [cuda][attention] tests
#   make profile                                             (no KERNEL) only the nsys timeline
# Reports go to out/profile/<kernel>_v<version>.ncu-rep and out/profile/train.nsys-rep.
# VERSION picks the kernels by name from the op table (build/ittt info --cuda-kernels OP=V),
# unless KERNEL_REGEX names them. A missing ncu or nsys is reported and skipped.
NCU  ?= $(or $(shell command -v ncu 2>/dev/null),$(wildcard $(CUDA_HOME)/bin/ncu))
NSYS ?= $(or $(shell command -v nsys 2>/dev/null),$(wildcard $(CUDA_HOME)/bin/nsys))
KERNEL ?=
KERNEL_REGEX ?=
TEST ?=
VERSION ?= 0
SIZE ?= 4096
LAYOUT ?= NN
PROFILE_COUNT ?= 10
PROFILE_STEPS ?= 20
PROFILE_TRAIN_ARGS ?= --task mqar --task-opt pairs=8,gap=96 --config data/configs/mqar_swa_ttt.json --batch 16 --seq-len 256
PROFILE_OUT := out/profile/$(KERNEL)_v$(VERSION)$(if $(filter gemm,$(KERNEL)),$(if $(filter-out NN,$(LAYOUT)),_$(LAYOUT)),)

profile: $(BUILD)/ittt $(BUILD)/ittt_tests $(BUILD)/ittt_bench
	@mkdir -p out/profile
ifneq ($(KERNEL),)
  ifeq ($(NCU),)
	@echo "profile: ncu (Nsight Compute) not found: install it or put it on PATH; skipping the kernel profile"
  else
	@regex='$(KERNEL_REGEX)'; [ -n "$$regex" ] || regex=$$($(BUILD)/ittt info --cuda-kernels $(KERNEL)=$(VERSION)) || exit 1; \
	if [ "$(KERNEL)" = gemm ] && [ -z "$(TEST)" ]; then \
	  set -x; ITTT_KERNEL=gemm=$(VERSION) ITTT_GEMM_SIZE=$(SIZE) ITTT_GEMM_LAYOUT=$(LAYOUT) $(NCU) --set full --nvtx -k "regex:$$regex" -s 1 -c 1 \
	    -f -o $(PROFILE_OUT) $(BUILD)/ittt_bench --filter gemm_cuda; \
	else \
	  set -x; $(NCU) --set full --nvtx -k "regex:$$regex" -c $(PROFILE_COUNT) -f -o $(PROFILE_OUT) \
	    $(BUILD)/ittt_tests "$(or $(TEST),[cuda][$(KERNEL)])"; \
	fi
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
