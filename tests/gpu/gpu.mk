# tests/gpu/gpu.mk: the first GPU run in one command (docs/profiling.md, "The first GPU run"),
# included by the Makefile.
#
#   make gpu-bundle          here (nvcc, no GPU needed): ittt, ittt_tests and ittt_bench for
#                            sm_$(GPU_ARCH) in build-gpu/ (CUDA=1, no MPI, no plots), packed with the
#                            libraries they load and tests/gpu/gpu-check.sh into build-gpu/bundle,
#                            which must stay under GPU_BUNDLE_LIMIT_MIB (64, the device tool's limit)
#   make gpu-check BIN=DIR   there: tests/gpu/gpu-check.sh --bin DIR (the bundle, or a build folder);
#                            GPU_CHECK_MODE=emu for the emulated build; GPU_CHECK_ARGS for --budget,
#                            --only, --out. Without make: bash build-gpu/bundle/gpu-check.sh
#   make gpu-check-emu       CI: the emulated build packed the same way (its libraries from this
#                            machine), then gpu-check.sh --mode emu run from that bundle: tiny shapes,
#                            the CSV and its check, and the sanitizer and ncu stages with the
#                            stand-ins of tests/gpu/stand-ins (a planted finding must fail its stage)
#
# The bundle's programs are linked with -Wl,--disable-new-dtags,-rpath,$ORIGIN/lib: DT_RPATH, which
# (unlike DT_RUNPATH) also serves libraries loaded by libraries. They are always relinked, so a
# build-gpu/ made another way cannot leave programs without it.

GPU_BUILD            ?= build-gpu
GPU_BUNDLE           ?= $(GPU_BUILD)/bundle
GPU_BUNDLE_LIMIT_MIB ?= 64
GPU_CHECK_MODE       ?= gpu
GPU_CHECK_ARGS       ?=
BIN                  ?=
GPU_PROGRAMS          = ittt ittt_tests ittt_bench
CLEAN_DIRS += $(GPU_BUILD)

.PHONY: gpu-bundle gpu-check gpu-check-emu
gpu-bundle:
	@[ -n "$(NVCC)" ] || { echo "gpu-bundle: nvcc not found (PATH, /usr/local/cuda/bin): the bundle is an nvcc build"; exit 1; }
	rm -f $(GPU_PROGRAMS:%=$(GPU_BUILD)/%)
	$(MAKE) CUDA=1 MPI=0 NCCL=0 PLOTS=0 BUILD=$(GPU_BUILD) GPU_ARCH=$(GPU_ARCH) \
	  LDFLAGS='-Wl,--disable-new-dtags,-rpath,\$$$$ORIGIN/lib' $(GPU_PROGRAMS:%=$(GPU_BUILD)/%)
	tests/gpu/make-bundle.sh $(GPU_BUILD) $(GPU_BUNDLE) --limit-mib $(GPU_BUNDLE_LIMIT_MIB) --gpu-arch $(GPU_ARCH)

gpu-check:
	@[ -n "$(BIN)" ] || { echo "gpu-check: BIN=DIR is needed: the bundle (build-gpu/bundle) on a GPU machine, or build-emu with GPU_CHECK_MODE=emu"; exit 2; }
	bash tests/gpu/gpu-check.sh --bin $(BIN) --mode $(GPU_CHECK_MODE) $(GPU_CHECK_ARGS)

gpu-check-emu:
	$(MAKE) CUDA=emu build-emu/ittt build-emu/ittt_tests build-emu/ittt_bench
	tests/gpu/make-bundle.sh build-emu build-emu/gpu-bundle --system-libs
	@# A finding must fail its stage: one planted in the racecheck stand-in (its own output folder).
	STANDIN_FINDING=racecheck bash build-emu/gpu-bundle/gpu-check.sh --mode emu --tools tests/gpu/stand-ins --only sanitizers \
	  --out build-emu/gpu-check-planted > build-emu/gpu-check-planted.log 2>&1; \
	  if grep -q '^  FAIL    sanitizer racecheck ' build-emu/gpu-check-planted.log; then echo "gpu-check-emu: a planted racecheck finding fails its stage"; \
	  else cat build-emu/gpu-check-planted.log; echo "gpu-check-emu: a planted racecheck finding did not fail its stage"; exit 1; fi
	bash build-emu/gpu-bundle/gpu-check.sh --mode emu --tools tests/gpu/stand-ins --out build-emu/gpu-check-out $(GPU_CHECK_ARGS)
