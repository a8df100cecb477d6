# tests/fuzz/fuzz.mk: fuzzing and the bad-inputs table (docs/reliability.md), included by the Makefile.
#
#   make fuzz [FUZZ_TIME=60] [FUZZ_TARGETS="safetensors config_json cli"]   each target for FUZZ_TIME seconds
#   make fuzz-smoke                                                          each target for FUZZ_SMOKE_TIME (20) s: CI
#   make fuzz-build                                                          the targets only
#   make reliability-table                                                   rewrite the table in docs/reliability.md
#
# The targets (tests/fuzz/fuzz_*.cpp) build with clang's libFuzzer + ASan + UBSan from
# the few sources they need, into $(BUILD)/fuzz; clang and its runtime are installed
# (as root, by src/install-deps.sh) only when a fuzz target is asked for. Each run starts
# from the seed corpus in tests/fuzz/corpus/<target> (python3 tests/fuzz/make_seeds.py
# writes it) and keeps what it finds in $(BUILD)/fuzz/corpus/<target>; a crash leaves
# its input in $(BUILD)/fuzz/<target>-crash-* and fails the run.

FUZZ_CXX        ?= $(or $(shell command -v clang++ 2>/dev/null),$(shell command -v clang++-14 2>/dev/null),clang++)
FUZZ_BUILD      := $(BUILD)/fuzz
FUZZ_TARGETS    ?= safetensors config_json cli
FUZZ_TIME       ?= 60
FUZZ_SMOKE_TIME ?= 20
FUZZ_SANITIZE   := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CXXFLAGS   := -std=c++17 -O1 -g -fno-omit-frame-pointer $(FUZZ_SANITIZE) -Isrc -I. -DITTT_WITH_CUDA=0 -DITTT_WITH_NVTX=0
FUZZ_LIB_SRC    := src/io/json.cpp src/io/safetensors.cpp src/io/atomic_file.cpp src/io/fault_injection.cpp src/io/config_json.cpp \
                   src/io/model_config.cpp src/model/memory_budget.cpp src/runtime/tensor.cpp src/runtime/device.cpp src/runtime/cpu_isa.cpp \
                   src/tools/args.cpp src/tasks/tasks.cpp
FUZZ_LIB_OBJ    := $(patsubst %.cpp,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_LIB_SRC))
.SECONDARY: $(FUZZ_LIB_OBJ)

.PHONY: fuzz fuzz-smoke fuzz-build reliability-table
$(FUZZ_BUILD)/deps.ok:
	@src/install-deps.sh --log $(FUZZ_BUILD)/apt.log --packages "clang libclang-rt-14-dev" fuzzer $(FUZZ_CXX)
	@mkdir -p $(FUZZ_BUILD) && touch $@

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
