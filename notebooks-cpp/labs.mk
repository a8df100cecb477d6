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
