# notebooks-cpp/labs.mk: the course labs, included by the main Makefile.
#
#   make labs                 every notebooks-cpp/NN-topic/lab.cpp -> $(BUILD)/labs/NN-topic
#   build/labs/01-kernels-and-gradients [--solution] [--check]
#
# A lab is one program linked against the core library $(LIB) with the flags of the
# other binaries; a lab that uses an application's code also links that (lab 05: the
# driver's theory engine). No lab plots, so none links boost. The test binary is built
# after the labs (TEST_NEEDS): tests/test_labs.cpp ("[labs]") runs each one with
# --check --solution.

LAB_SRC  := $(wildcard notebooks-cpp/*/lab.cpp)
LAB_BINS := $(patsubst notebooks-cpp/%/lab.cpp,$(BUILD)/labs/%,$(LAB_SRC))
LAB_DRIVER_BINS := $(BUILD)/labs/05-induction-theorem
TEST_NEEDS += $(LAB_BINS)

# Static pattern rules name each lab's object, so make keeps it (no intermediate file).
$(filter-out $(LAB_DRIVER_BINS),$(LAB_BINS)): $(BUILD)/labs/%: $(BUILD)/obj/notebooks-cpp/%/lab.cpp.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(LAB_DRIVER_BINS): $(BUILD)/labs/%: $(BUILD)/obj/notebooks-cpp/%/lab.cpp.o $(DRIVER_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

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

.PHONY: labs
labs: $(LAB_BINS) $(LAB_CU_BINS)

$(BUILD)/obj/labs-emu/%.cpp.o: %.cpp | deps
	@mkdir -p $(dir $@)
	$(CXX) -Isrc/runtime/cuda_emu $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@
$(BUILD)/obj/labs-emu/src/runtime/cuda_emu/emulator.cpp.o $(BUILD)/obj/labs-emu/src/runtime/cuda_emu/fiber.cpp.o: override CXXFLAGS += $(EMU_ENGINE_FLAGS)

$(BUILD)/obj/notebooks-cpp/%/lab.cu.o: notebooks-cpp/%/lab.cu | deps
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
