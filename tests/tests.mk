# tests/tests.mk: the test binary and the sanitizer run, included by the Makefile.
#
#   make test        build/ittt_tests after everything in TEST_DEPS; last line "N passed, M failed"
#                    (TEST_ARGS: a Catch2 filter, e.g. TEST_ARGS='[layout]')
#   make sanitize    the tests under AddressSanitizer + UndefinedBehaviorSanitizer, in build-sanitize/
#
# The test binary links the core library and the application code it tests: the driver
# (theory, probes, pager, plots; so it links PLOT_LDLIBS). The CLI is tested by running
# build/ittt. [layout] runs tests/check_layers.sh, the layer order of the code.

TEST_OBJ += $(call obj,$(wildcard tests/*.cpp))
$(BUILD)/obj/tests/%: CPPFLAGS += -I$(CATCH2_INC)

# Order-only: what the tests run (the labs) is (re)built first, without relinking the tests.
$(BUILD)/ittt_tests: $(TEST_OBJ) $(DRIVER_LIB) $(LIB) | $(TEST_NEEDS)
	$(CXX) $(LDFLAGS) $^ $(PLOT_LDLIBS) $(LDLIBS) -o $@

.PHONY: sanitize
sanitize:
	$(MAKE) BUILD=build-sanitize CUDA=0 ARCH= CXXFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" build-sanitize/ittt_tests build-sanitize/ittt $(if $(filter 1,$(MPI)),build-sanitize/ittt_cp_check)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 OMP_NUM_THREADS=2 ITTT_BIN=build-sanitize/ittt \
	  build-sanitize/ittt_tests $(TEST_ARGS)
