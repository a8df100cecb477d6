# notebooks-cpp/labs.mk: the course labs, included by the main Makefile.
#
#   make labs                 every notebooks-cpp/NN-topic/lab.cpp -> $(BUILD)/labs/NN-topic
#   build/labs/01-kernels-and-gradients [--solution] [--check]
#
#   make labs-check           every lab's --check on YOUR code (the TODOs): a summary line per lab,
#                             and a failure while any check fails
#
# A lab is one program linked against the core library $(LIB) with the flags of the
# other binaries; a lab that uses an application's code also links that (lab 05: the
# driver's theory engine). The labs that plot what they measure (lab_plot.h: 01, 02,
# 06) link the driver's plot helpers and boost (PLOT_LDLIBS). The test binary is built
# after the labs (TEST_NEEDS): tests/test_labs.cpp ("[labs]") runs each one with
# --check --solution (which must pass) and with --check alone (the shipped skeleton,
# which must fail).
#
# The reference solutions live beside each lab in solution.cpp (solution.cu for a CUDA
# lab), never in lab.cpp. They are linked into the lab only when LAB_SOLUTIONS=1 (the
# default); `make labs LAB_SOLUTIONS=0` builds the labs a course hands out, whose
# --solution says that this build has none (lab_util.h: LAB_SOLUTION declares them weak).
LAB_SOLUTIONS ?= 1

LAB_SRC  := $(wildcard notebooks-cpp/*/lab.cpp)
LAB_BINS := $(patsubst notebooks-cpp/%/lab.cpp,$(BUILD)/labs/%,$(LAB_SRC))
LAB_DRIVER_BINS := $(BUILD)/labs/05-induction-theorem
LAB_PLOT_BINS   := $(BUILD)/labs/01-kernels-and-gradients $(BUILD)/labs/02-gemm $(BUILD)/labs/06-train-with-ttt
TEST_NEEDS += $(LAB_BINS)

# Each lab's solution object, as an extra prerequisite of its binary (the link lines below
# put objects before libraries, so the solution may call the library).
LAB_SOLUTION_SRC := $(if $(filter 1,$(LAB_SOLUTIONS)),$(wildcard notebooks-cpp/*/solution.cpp notebooks-cpp/*/solution.cu))
$(foreach s,$(LAB_SOLUTION_SRC),$(eval $(BUILD)/labs/$(notdir $(patsubst %/,%,$(dir $(s)))): $(BUILD)/obj/$(if $(filter %.cu,$(s)),labs-cu/)$(s).o))

# Static pattern rules name each lab's object, so make keeps it (no intermediate file).
$(filter-out $(LAB_DRIVER_BINS) $(LAB_PLOT_BINS),$(LAB_BINS)): $(BUILD)/labs/%: $(BUILD)/obj/notebooks-cpp/%/lab.cpp.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS) -o $@
$(LAB_DRIVER_BINS): $(BUILD)/labs/%: $(BUILD)/obj/notebooks-cpp/%/lab.cpp.o $(DRIVER_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS) -o $@
$(LAB_PLOT_BINS): $(BUILD)/labs/%: $(BUILD)/obj/notebooks-cpp/%/lab.cpp.o $(DRIVER_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $(filter %.o,$^) $(filter %.a,$^) $(PLOT_LDLIBS) $(LDLIBS) -o $@

# Where the [labs] test looks by default (ITTT_LABS_DIR overrides it): the labs of this BUILD.
$(BUILD)/obj/tests/test_labs.cpp.o: CPPFLAGS += -DITTT_LABS_DEFAULT_DIR='"$(BUILD)/labs"'

# A lab written as CUDA (notebooks-cpp/NN-topic/lab.cu) is compiled in every build as host
# C++ against the CPU emulator (src/runtime/cuda_emu/, docs/cuda-emulator.md), so it runs on
# any machine. It links the emulator's own objects and not the library (whose CUDA half may
# be nvcc's). The emulator's TSan flags (EMU_ENGINE_FLAGS) apply here too.
LAB_CU_SRC  := $(wildcard notebooks-cpp/*/lab.cu)
LAB_CU_BINS := $(patsubst notebooks-cpp/%/lab.cu,$(BUILD)/labs/%,$(LAB_CU_SRC))
LAB_EMU_OBJ := $(patsubst %,$(BUILD)/obj/labs-emu/%.o,$(wildcard src/runtime/cuda_emu/*.cpp))

TEST_NEEDS += $(LAB_CU_BINS)

.PHONY: labs labs-check
labs: $(LAB_BINS) $(LAB_CU_BINS)

# Every lab's --check on the student's code; the full output of each is in $(BUILD)/labs/<lab>.mine.log.
labs-check: $(LAB_BINS) $(LAB_CU_BINS)
	@failed=0; for bin in $^; do \
	  name=$$(basename $$bin); \
	  if $$bin --check > $$bin.mine.log 2>&1; then echo "  ok      $$name"; \
	  else failed=$$((failed + 1)); echo "  FAILED  $$name: $$(grep -c '\[FAILED\]' $$bin.mine.log) failed checks ($$bin.mine.log)"; fi; \
	done; \
	if [ $$failed -gt 0 ]; then echo "labs-check: $$failed of $(words $^) labs have failing checks"; exit 1; fi; \
	echo "labs-check: every lab's checks hold"

$(BUILD)/obj/labs-emu/%.cpp.o: %.cpp | deps
	@mkdir -p $(dir $@)
	$(CXX) -Isrc/runtime/cuda_emu $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@
$(BUILD)/obj/labs-emu/src/runtime/cuda_emu/emulator.cpp.o $(BUILD)/obj/labs-emu/src/runtime/cuda_emu/fiber.cpp.o: override CXXFLAGS += $(EMU_ENGINE_FLAGS)

$(BUILD)/obj/notebooks-cpp/%/lab.cu.o: notebooks-cpp/%/lab.cu | deps
	@mkdir -p $(dir $@)
	$(CXX) -x c++ -include cuda_runtime.h -Isrc/runtime/cuda_emu $(CPPFLAGS) $(CXXFLAGS) -Wno-unknown-pragmas -c $< -o $@
# A CUDA lab's solution.cu, compiled the same way (labs-cu/: not the library's nvcc rule for .cu).
$(BUILD)/obj/labs-cu/notebooks-cpp/%/solution.cu.o: notebooks-cpp/%/solution.cu | deps
	@mkdir -p $(dir $@)
	$(CXX) -x c++ -include cuda_runtime.h -Isrc/runtime/cuda_emu $(CPPFLAGS) $(CXXFLAGS) -Wno-unknown-pragmas -c $< -o $@

$(LAB_CU_BINS): $(BUILD)/labs/%: $(BUILD)/obj/notebooks-cpp/%/lab.cu.o $(LAB_EMU_OBJ)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ -o $@

# ittt in one file (notebooks-cpp/ittt_one_file/ittt.cpp): the whole method in one C++17 file,
# standard library only, compiled alone (no library), as a student would: `make one-file`,
# then build/one_file/ittt train | eval --ckpt data/learned-mqar. It lives outside
# $(BUILD)/labs because [labs] runs every program there as a lab with --check.
# tests/test_one_file.cpp ("[one_file]") compiles the same file into the tests.
ONE_FILE_BIN := $(BUILD)/one_file/ittt
TEST_NEEDS += $(ONE_FILE_BIN)

.PHONY: one-file
one-file: $(ONE_FILE_BIN)
labs: $(ONE_FILE_BIN)

$(ONE_FILE_BIN): notebooks-cpp/ittt_one_file/ittt.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(LDFLAGS) $< -o $@
