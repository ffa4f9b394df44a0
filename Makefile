# The series' top-level Makefile: every target for all stages, or for one
# (-NN). The rules themselves live in common/stage.mk, which each stage's own
# Makefile includes; this file only walks the stages that exist.
#
#   make help     lists the targets

STAGES := $(patsubst %/Makefile,%,$(sort $(wildcard [0-9][0-9]-*/Makefile)))
SELFTEST := common/selftest
# The stage directory for a number: $(call stage_dir,01) -> 01-bump
stage_dir = $(patsubst %/Makefile,%,$(wildcard $(1)-*/Makefile))
MAKEFLAGS += --no-print-directory

.PHONY: all test demo bench lint format clean help mutants soak
.DEFAULT_GOAL := all

all:
	@for s in $(STAGES); do $(MAKE) -C $$s all || exit 1; done

# Every stage's tests in every flavour, under every tool; one total line last.
# A failing stage does not stop the others: the total says what failed.
test:
	@mkdir -p build && rm -f build/results.txt
	@for s in $(SELFTEST) $(STAGES); do \
	  echo "== $$s"; \
	  if ! $(MAKE) -C $$s test; then \
	    cat $$s/build/results.txt 2>/dev/null | awk -F'\t' '{ f += $$3 } END { exit f > 0 }' && \
	      printf '%s\t0\t1\t0\n' "$$s (did not build or run)" >> build/results.txt; \
	  fi; \
	done; true
	@echo "== all stages"
	@common/tally.sh --total total build/results.txt $(SELFTEST)/build/results.txt \
	  $(addsuffix /build/results.txt,$(STAGES))

demo:
	@for s in $(STAGES); do $(MAKE) -C $$s demo || exit 1; done

# Every stage's known-bad variants; one score line per stage, then the total.
mutants:
	@mkdir -p build && rm -f build/mutants.txt
	@for s in $(STAGES); do \
	  $(MAKE) -C $$s mutants >/dev/null 2>&1; \
	  grep -h 'mutants caught' $$s/build/logs/*mutants.log 2>/dev/null || echo "$$s: no mutants"; \
	  cat $$s/build/results.txt >> build/mutants.txt 2>/dev/null; \
	done; true
	@common/tally.sh --total "mutants (passed: caught)" build/mutants.txt

# Ten million randomized operations per stage (not part of make test).
soak:
	@for s in $(STAGES); do $(MAKE) -C $$s soak || exit 1; done

bench:
	@for s in $(STAGES); do $(MAKE) -C $$s bench || exit 1; done

lint:
	@for s in $(SELFTEST) $(STAGES); do $(MAKE) -C $$s lint || exit 1; done

format:
	@for s in $(SELFTEST) $(STAGES); do $(MAKE) -C $$s format || exit 1; done

clean:
	@for s in $(SELFTEST) $(STAGES); do $(MAKE) -C $$s clean; done
	rm -rf build

# Per-stage targets: test-01, demo-02, valgrind-03, ... A stage that does not
# exist yet is skipped with a note rather than an error.
PER_STAGE := test demo bench valgrind asan tsan misuse lint format clean all run \
	mutants fuzz soak classes
$(foreach t,$(PER_STAGE),$(eval $(t)-%: ; @$$(call per_stage,$(t),$$*)))
per_stage = d='$(call stage_dir,$(2))'; \
  if [ -z "$$d" ]; then echo "stage $(2) does not exist yet (see README.md for the plan)"; \
  else $(MAKE) -C "$$d" $(1); fi

help:
	@echo "make                build every stage"
	@echo "make test           everything CI runs: each stage's tests in debug and release"
	@echo "                    builds, under Valgrind memcheck, under ASan+UBSan, and its"
	@echo "                    misuse checks; ends with 'total: N passed, N failed'"
	@echo "make demo           the guided tour: each stage narrates and draws its heap"
	@echo "make bench          each stage against the system malloc (table + build/bench.csv)"
	@echo "make lint           cppcheck and clang-tidy over every source; clang-format check"
	@echo "make format         clang-format every source in place"
	@echo "make clean          remove every build/ folder"
	@echo "make test-NN        one stage's tests (also demo-NN, bench-NN, lint-NN, clean-NN)"
	@echo "make valgrind-NN    one stage's tests under Valgrind memcheck"
	@echo "make asan-NN        one stage's tests built with ASan+UBSan"
	@echo "make tsan-NN        threaded stages (04 on): the tests under ThreadSanitizer"
	@echo "make misuse-NN      one stage's deliberate bugs, each reported by Valgrind and ASan"
	@echo "make run-NN CMD=..  stages 04-07: run a program with the stage as its malloc"
	@echo "make mutants        every stage's known-bad variants, each caught by a test"
	@echo "                    (also mutants-NN; part of make test)"
	@echo "make fuzz-NN        the stage's libFuzzer harness for SECONDS (default 60);"
	@echo "                    REPRO=file replays one input (a short run is in make test)"
	@echo "make soak           10^7 randomized operations per stage (also soak-NN)"
	@echo "make classes-06     stage 06's size-class table with each class's waste"
	@echo "stages present: $(STAGES)"
