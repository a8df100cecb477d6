# src/tools/exp/exp.mk: the experiments behind docs/results.md, included by the Makefile.
#
#   make experiments    the MQAR comparison: full vs SWA vs SWA + TTT (src/tools/run_experiments.sh)
#   make exp-learned    docs/results.md sections 1-5, one target each (exp-learned, exp-text,
#                       exp-size (section 2's size trend), exp-ablate, exp-needle,
#                       exp-needle-train (section 4's second part), exp-continual; exp-all runs them all)
#
# Each section (src/tools/exp/*.sh) prints a progress line with an ETA per run, skips
# finished runs when started again, writes JSON, tables and PNGs under
# $(EXP_OUT)/exp-<name>/ and ends with its wall time. EXP_SMOKE=1: tiny sizes (the tests' smoke run).

EXP_OUT ?= out
EXP_SECTIONS := learned text size ablate needle needle-train continual
.PHONY: experiments exp-all $(addprefix exp-,$(EXP_SECTIONS))

# MQAR with a gap wider than the window.
experiments: $(BUILD)/ittt
	src/tools/run_experiments.sh $(EXPERIMENTS_OUT)

$(addprefix exp-,$(filter-out needle,$(EXP_SECTIONS))): exp-%: $(BUILD)/ittt
	EXP_BIN=$(BUILD)/ittt src/tools/exp/$*.sh $(EXP_OUT)/exp-$*
# Section 4 four times: the repeated-pattern haystack, a random one (docs/results.md says why),
# the pattern haystack at the long budget on short sequences that full attention needs, and
# those models continued on n = 256.
exp-needle: $(BUILD)/ittt
	EXP_BIN=$(BUILD)/ittt src/tools/exp/needle.sh $(EXP_OUT)/exp-needle
	FILLER=random EXP_BIN=$(BUILD)/ittt src/tools/exp/needle.sh $(EXP_OUT)/exp-needle-random
	TRAIN_LEN=64 STEPS=24000 EXP_BIN=$(BUILD)/ittt src/tools/exp/needle.sh $(EXP_OUT)/exp-needle-long
	INIT_FROM=$(EXP_OUT)/exp-needle-long TRAIN_LEN=256 STEPS=3000 EXP_BIN=$(BUILD)/ittt src/tools/exp/needle.sh $(EXP_OUT)/exp-needle-long256
	MODELS=full TRAIN_QUERIES=2 RATES=1e-3 TRAIN_LEN=64 STEPS=24000 EXP_BIN=$(BUILD)/ittt src/tools/exp/needle.sh $(EXP_OUT)/exp-needle-q2
exp-all: $(addprefix exp-,$(EXP_SECTIONS))
