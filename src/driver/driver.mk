# src/driver/driver.mk: the step-through driver's library and `make demo`, included by the Makefile.
#
# build/libittt_driver.a is an application layer on top of the core library: the theory
# engine (Theorem 1), the model probes, the terminal pager and the plots behind
# `ittt step`. Only plots.cpp uses gnuplot-iostream, and so boost: the programs that call
# the plot helpers (build/ittt, the tests) add PLOT_LDLIBS to their link; nothing else
# links boost. PLOTS=0 builds the plot helpers as stubs that write nothing.

DRIVER_LIB := $(BUILD)/libittt_driver.a
DRIVER_OBJ := $(call obj,$(wildcard src/driver/*.cpp))
PLOTS_OBJ  := $(call obj,src/driver/plots.cpp)
ifeq ($(PLOTS),1)
  PLOT_LDLIBS  := -lboost_iostreams -lboost_filesystem
  DEB_PACKAGES += libgnuplot-iostream-dev libboost-iostreams-dev libboost-filesystem-dev gnuplot-nox
  DEP_FILES    += /usr/include/gnuplot-iostream.h /usr/include/boost/iostreams/device/file_descriptor.hpp \
                  /usr/include/boost/filesystem.hpp /usr/bin/gnuplot
endif

$(PLOTS_OBJ): CPPFLAGS += -DITTT_WITH_GNUPLOT=$(PLOTS)
# A stamp named after the setting: switching PLOTS recompiles plots.cpp.
PLOTS_STAMP := $(BUILD)/plots$(PLOTS).stamp
$(PLOTS_OBJ): $(PLOTS_STAMP)
$(PLOTS_STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/plots*.stamp && touch $@

$(DRIVER_LIB): $(DRIVER_OBJ)
	@rm -f $@
	ar rcs $@ $^

# ---- demo: the step-through driver, non-interactive (docs/theory.md) ----
# Theory mode (Theorem 1 in its constructed setting, with a short sweep over d),
# then model mode on the checkpoint shipped in data/demo (see data/README.md).
# Full text goes to $(DEMO_OUT)/*.txt, figures next to it; the verdicts last.
DEMO_OUT  ?= out/demo
DEMO_CKPT ?= data/demo
DEMO_TASK ?= --task mqar --task-opt pairs=4,gap=32 --seq-len 64 --examples 32
.PHONY: demo
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
