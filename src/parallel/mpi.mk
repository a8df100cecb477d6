# src/parallel/mpi.mk: context parallelism's MPI and NCCL side (docs/parallelism.md),
# included by the Makefile, which sets MPI and NCCL (the knobs) first.
#
# The library always has src/parallel/; only context.cpp changes with MPI (without it,
# --context-parallel is an error that says how to get MPI). NCCL is the transport for
# CUDA tensors (compiled; it needs GPUs to run).
# MPI=1 adds the Debian packages to the deps list, and builds build/ittt_cp_check (the
# MPI tests, run by `make test` through tests/test_parallel.cpp) and build/ittt_cp_bench
# (run by `make bench`). MPI's flags are looked up when a recipe runs, after `deps`.

MPIRUN ?= mpirun
ifeq ($(MPI),1)
  MPI_CFLAGS = $(shell pkg-config --cflags ompi 2>/dev/null || mpicc --showme:compile)
  MPI_LIBS   = $(shell pkg-config --libs ompi 2>/dev/null || mpicc --showme:link)
  LDLIBS += $(MPI_LIBS)
  DEB_PACKAGES += libopenmpi-dev openmpi-bin
  DEP_FILES += $(if $(shell command -v mpirun 2>/dev/null),,/usr/bin/mpirun) $(if $(shell command -v mpicc 2>/dev/null),,/usr/bin/mpicc)
  MPI_BINS := $(BUILD)/ittt_cp_check $(BUILD)/ittt_cp_bench
  ALL_DEPS += $(MPI_BINS)
  TEST_DEPS += $(MPI_BINS)
endif
ifeq ($(NCCL),1)
  NCCL_FLAGS := -I$(dir $(NCCL_INC)) -I$(CUDA_HOME)/include
  LDLIBS += -L$(dir $(NCCL_LIB)) -Wl,-rpath,$(dir $(NCCL_LIB)) -lnccl
endif
BENCH_RUNS += bench-mpi

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

.PHONY: bench-mpi
bench-mpi: $(MPI_BINS)
ifeq ($(MPI),1)
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 \
	  $(MPIRUN) --oversubscribe -np 2 $(BUILD)/ittt_cp_bench $(CP_BENCH_ARGS)
else
	@echo "bench: context-parallel benchmark skipped (built without MPI; MPI=1 needs libopenmpi-dev openmpi-bin)"
endif
