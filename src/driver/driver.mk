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
# The strongest evidence first: model mode on data/learned-mqar (100% held-out
# accuracy), with the 8 MQAR pairs spread one per chunk over chunks 0-7 and every
# query at least 96 tokens (three windows) after its pair, so accuracy and dl(v*)
# climb one step per chunk. Then Theorem 1 in its constructed setting, with a short
# sweep over d. Full text goes to $(DEMO_OUT)/*.txt, figures and the HTML report
# next to it; the verdicts last, each failing one followed by why.
DEMO_OUT  ?= out/demo
DEMO_CKPT ?= data/learned-mqar
DEMO_TASK ?= --task mqar --task-opt pairs=8,gap=96,spread=256 --seq-len 384 --examples 16
.PHONY: demo
demo: SHELL := /bin/bash
demo: $(BUILD)/ittt
	@mkdir -p $(DEMO_OUT)
	set -o pipefail; $(BUILD)/ittt step --ckpt $(DEMO_CKPT) $(DEMO_TASK) --compact --auto --plots $(DEMO_OUT) \
	  --html $(DEMO_OUT)/report.html | tee $(DEMO_OUT)/model.txt
	set -o pipefail; $(BUILD)/ittt step --theory --auto --sweep 16,32,64,128,256 --plots $(DEMO_OUT) | tee $(DEMO_OUT)/theory.txt
	@echo; echo "==== verdicts (full output: $(DEMO_OUT)/model.txt, $(DEMO_OUT)/theory.txt) ===="
	@echo "model mode, $(DEMO_CKPT) (a heuristic check: the theorem's assumptions do not hold in a trained model):"
	@sed -n '/^the staircase/,/^$$/p' $(DEMO_OUT)/model.txt | sed 's/^/  /'
	@sed -n '/^verdicts/,/^$$/p' $(DEMO_OUT)/model.txt | sed '1d;$$d' | sed 's/^/  /'
	@echo "theory mode, Theorem 1 in its constructed setting:"
	@awk '/^(LM-aligned|Reconstruction): /{ v = 1; print "  " $$0; next } v && /^    [^ ]/{ print "  " $$0; next } { v = 0 }' \
	  $(DEMO_OUT)/theory.txt
	@echo "figures: $(DEMO_OUT)/*.png (and .svg, .gp); start with $(DEMO_OUT)/model_staircase.png"
	@echo "step through it in a browser: $(DEMO_OUT)/report.html, or on a terminal:"
	@echo "  $(BUILD)/ittt step --ckpt $(DEMO_CKPT) \\"
	@echo "    $(DEMO_TASK) --compact"

# ---- the HTML report's picture (docs/img/step_report.png, shown in docs/theory.md) ----
# Renders the demo's report in headless Chromium at 1280x800. Chromium is an optional
# extra, installed here (through src/install-deps.sh) and nowhere else: neither the
# build nor `make test` needs it. REPORT_VIEW picks the chunk and query shown (the
# page's script reads them from the query string).
REPORT_OUT  ?= out/report
REPORT_PNG  ?= docs/img/step_report.png
REPORT_VIEW ?= chunk-3&query-3
.PHONY: report-png
report-png: $(BUILD)/ittt
	@src/install-deps.sh --log $(BUILD)/apt-chromium.log --packages chromium --hint "only make report-png needs it" \
	  files /usr/bin/chromium
	@mkdir -p $(REPORT_OUT)
	$(BUILD)/ittt step --ckpt $(DEMO_CKPT) $(DEMO_TASK) --no-steps --no-plots --html $(REPORT_OUT)/report.html > $(REPORT_OUT)/summary.txt
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,800 \
	  --screenshot=$(abspath $(REPORT_PNG)) 'file://$(abspath $(REPORT_OUT))/report.html?$(REPORT_VIEW)' 2>$(REPORT_OUT)/chromium.log
	@echo "wrote $(REPORT_PNG) (1280x800) from $(REPORT_OUT)/report.html?$(REPORT_VIEW)"
