# notebooks-cpp/labs.mk: the course labs, included by the main Makefile.
#
#   make labs                 every notebooks-cpp/NN-topic/lab.cpp -> $(BUILD)/labs/NN-topic
#   build/labs/01-kernels-and-gradients [--solution] [--check]
#
# A lab is one program linked against $(LIB) with the flags of the other
# binaries. `make test` builds the labs first: tests/test_labs.cpp ("[labs]")
# runs each one with --check --solution.

LAB_SRC  := $(wildcard notebooks-cpp/*/lab.cpp)
LAB_BINS := $(patsubst notebooks-cpp/%/lab.cpp,$(BUILD)/labs/%,$(LAB_SRC))

.PHONY: labs
labs: $(LAB_BINS)

# A static pattern rule names each lab's object, so make keeps it (no intermediate file).
$(LAB_BINS): $(BUILD)/labs/%: $(BUILD)/obj/notebooks-cpp/%/lab.cpp.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Order-only: the labs are (re)built before the tests, without relinking the tests.
$(BUILD)/ittt_tests: | $(LAB_BINS)
# Where the [labs] test looks by default (ITTT_LABS_DIR overrides it): the labs of this BUILD.
$(BUILD)/obj/tests/test_labs.cpp.o: CPPFLAGS += -DITTT_LABS_DEFAULT_DIR='"$(BUILD)/labs"'

# A lab written as CUDA (notebooks-cpp/NN-topic/lab.cu) is compiled in every build as host
# C++ against the CPU emulator (src/runtime/cuda_emu/, docs/cuda-emulator.md), so it runs on
# any machine. It links the emulator's own objects and not the library (whose CUDA half may
# be nvcc's). The emulator's TSan flags (EMU_ENGINE_FLAGS) apply here too.
LAB_CU_SRC  := $(wildcard notebooks-cpp/*/lab.cu)
LAB_CU_BINS := $(patsubst notebooks-cpp/%/lab.cu,$(BUILD)/labs/%,$(LAB_CU_SRC))
LAB_EMU_OBJ := $(patsubst %,$(BUILD)/obj/labs-emu/%.o,$(wildcard src/runtime/cuda_emu/*.cpp))

labs: $(LAB_CU_BINS)

$(BUILD)/obj/labs-emu/%.cpp.o: %.cpp | $(BUILD)/deps.ok
	@mkdir -p $(dir $@)
	$(CXX) -Isrc/runtime/cuda_emu $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@
$(BUILD)/obj/labs-emu/src/runtime/cuda_emu/emulator.cpp.o $(BUILD)/obj/labs-emu/src/runtime/cuda_emu/fiber.cpp.o: override CXXFLAGS += $(EMU_ENGINE_FLAGS)

$(BUILD)/obj/notebooks-cpp/%/lab.cu.o: notebooks-cpp/%/lab.cu | $(BUILD)/deps.ok
	@mkdir -p $(dir $@)
	$(CXX) -x c++ -include cuda_runtime.h -Isrc/runtime/cuda_emu $(CPPFLAGS) $(CXXFLAGS) -Wno-unknown-pragmas -c $< -o $@

$(LAB_CU_BINS): $(BUILD)/labs/%: $(BUILD)/obj/notebooks-cpp/%/lab.cu.o $(LAB_EMU_OBJ)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ -o $@

$(BUILD)/ittt_tests: | $(LAB_CU_BINS)
