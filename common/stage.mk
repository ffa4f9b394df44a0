# common/stage.mk: the one set of rules every stage's Makefile includes.
#
# A stage's Makefile names its parts and includes this file:
#
#     STAGE   := 01-bump                # the directory name
#     ALLOC   := bump.c                 # the allocator's sources
#     TESTS   := test_bump              # test programs (one .c each)
#     BENCH   := bench_bump             # the bench program (optional)
#     BENCH_ENTRY := bump_alloc bump_reset  # the allocator's entry points,
#                                       # whose instructions bench.sh also
#                                       # counts alone (optional): those the
#                                       # bench calls, none that another
#                                       # listed one calls
#     DEMO    := demo_bump              # the demo program (optional)
#     MISUSE  := bad_bump               # the deliberate-bug program (optional)
#     EXTRA_PROGRAMS :=                 # programs the tests run, built beside
#                                       # them in each flavour (optional)
#     FUZZ    := fuzz_bump              # the libFuzzer harness (optional):
#                                       # fuzz_bump.c defines fuzz_stage_run
#                                       # (common/fuzz.h)
#     FUZZ_RUNS := 3000                 # its runs in `make test` (optional)
#     include ../common/stage.mk
#
# Known-bad variants: every mutants/NAME.patch is a small bug that the
# stage's TESTS must catch (common/mutants.sh); `make test` runs them.
#
# Optional parts for the stages that are a real malloc (04 on):
#
#     SHLIB        := libmalloc.so      # build/libmalloc.so, for LD_PRELOAD:
#     SHLIB_SRCS   := fl.c shim.c       #   these sources, release flags, -fPIC
#     TEST_SCRIPTS := more.sh           # scripts `make test` runs after the
#                                       # tests (each prints N passed, N failed)
#     SHIM_VARIANTS := FL_POLICY=best   # settings under which the real
#                                       # programs run again (optional)
#
# A stage with a SHLIB also runs common/shimtest/run.sh on it in `make test`:
# real programs and the glibc behaviours (fork with stdio, errno, edge cases)
# compared with the system malloc. Its shim writes a line "libmalloc (STAGE"
# to the file named by LIBMALLOC_STATS at exit (the proof that a program
# really ran on it).
#     THREADED     := 1                 # adds build/tsan/ (ThreadSanitizer, quick
#                                       # mode) to `make test`; `make tsan`
#     BENCH_EXTRA  := replay_fl         # more bench programs (release), run by
#     BENCH_EXTRA_ARGS := ...           #   `make bench` after bench.sh
#     BENCH_STAGES := 04-freelist       # earlier stages whose libmalloc.so
#                                       # runs the bench's system side too,
#                                       # a row each, built when missing
#     BENCH_MALLOC := 1                 # `make bench` ends with
#                                       # common/mallocbench/compare.sh: this
#                                       # stage's libmalloc.so, BENCH_STAGES',
#                                       # the system malloc and the others on
#                                       # traces, threads and a burst (and
#                                       # bench.sh runs its system side on
#                                       # this stage's libmalloc.so too)
#     SHLIB_MIN_ALIGN := 8              # the alignment compare.sh expects of
#                                       # this stage's smallest blocks (16
#                                       # when unset: glibc's)
#
# `make run CMD='sort file'` runs a command (in the stage's folder) with
# build/$(SHLIB) preloaded as its malloc.
#
# Every program is built in four flavours, each in its own folder:
#
#     build/debug/     -O1, checked (ALLOC_DEBUG: misuse checks, fill bytes)
#     build/release/   -O2, NDEBUG: what the bench measures
#     build/valgrind/  checked, annotated for Valgrind memcheck (no fills)
#     build/asan/      checked, with ASan + UBSan (annotations follow ASan)
#
# `make test` runs the tests in every flavour (the valgrind flavour under
# memcheck, where any error or leak fails), then the misuse checks; each run
# adds a line to build/results.txt, and the last line printed is the total.

COMMON := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
SHELL := /bin/bash

CC ?= cc
CSTD := -std=c17
# Debug info as DWARF 4: Valgrind 3.19 cannot read the DWARF 5 that clang 14
# writes by default (it stops at "unhandled dwarf2 abbrev form code 0x25").
DEBUG_INFO := -gdwarf-4
WARN := -Wall -Wextra -Wpedantic -Werror
CPPFLAGS_ALL := -I. -I$(COMMON) -D_DEFAULT_SOURCE $(EXTRA_CPPFLAGS)
LDLIBS_ALL := -lpthread -lm $(EXTRA_LDLIBS)

FLAVOURS := debug release valgrind asan $(if $(THREADED),tsan)
CFLAGS_debug := -O1 -g -DALLOC_DEBUG
CFLAGS_release := -O2 -g -DNDEBUG
CFLAGS_valgrind := -O1 -g -DALLOC_DEBUG -DALLOC_TRACK_VALGRIND
CFLAGS_asan := -O1 -g -DALLOC_DEBUG -fsanitize=address,undefined \
	-fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS_asan := -fsanitize=address,undefined
CFLAGS_tsan := -O1 -g -DALLOC_DEBUG -fsanitize=thread
LDFLAGS_tsan := -fsanitize=thread
TSAN_ENV := TEST_QUICK=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

VALGRIND_FLAGS := -q --error-exitcode=99 --leak-check=full \
	--show-leak-kinds=all --errors-for-leak-kinds=all \
	--child-silent-after-fork=yes
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# The compiler that built build/: a change of CC (make CC=clang test after a
# gcc build) rebuilds everything, instead of mixing objects or measuring
# another compiler's code without saying so.
CC_ID := $(shell $(CC) --version 2>/dev/null | head -n 1)
CC_STAMP := build/cc.stamp
$(shell mkdir -p build; [ "$$(cat $(CC_STAMP) 2>/dev/null)" = '$(CC_ID)' ] || \
  echo '$(CC_ID)' > $(CC_STAMP))

# Compiler lines are shown as "CC file"; make V=1 shows them whole.
Q := $(if $(V),,@)

COMMON_SRCS := $(wildcard $(COMMON)/*.c)
PROGRAMS := $(TESTS) $(BENCH) $(DEMO) $(MISUSE)
RESULTS := build/results.txt
TALLY := $(COMMON)/tally.sh $(RESULTS)

.PHONY: all test valgrind asan tsan misuse bench demo lint format clean help \
	run run-unit run-valgrind run-asan run-tsan run-misuse run-scripts \
	mutants run-mutants fuzz run-fuzz soak
.DEFAULT_GOAL := all

all: $(foreach f,debug release,$(addprefix build/$f/,$(PROGRAMS))) \
	$(if $(SHLIB),build/$(SHLIB))

# ---- Build rules, one set per flavour -----------------------------------

define FLAVOUR_RULES
build/$(1)/%.o: %.c $$(CC_STAMP)
	@mkdir -p $$(@D)
	@echo "  CC      $$@"
	$$(Q)$$(CC) $$(CSTD) $$(WARN) $$(CFLAGS_$(1)) $$(DEBUG_INFO) $$(CPPFLAGS_ALL) -MMD -MP -c $$< -o $$@

build/$(1)/common/%.o: $$(COMMON)/%.c $$(CC_STAMP)
	@mkdir -p $$(@D)
	@echo "  CC      $$@"
	$$(Q)$$(CC) $$(CSTD) $$(WARN) $$(CFLAGS_$(1)) $$(DEBUG_INFO) $$(CPPFLAGS_ALL) -MMD -MP -c $$< -o $$@

build/$(1)/libcommon.a: $$(patsubst $$(COMMON)/%.c,build/$(1)/common/%.o,$$(COMMON_SRCS))
	@rm -f $$@
	$$(Q)$$(AR) rcs $$@ $$^

build/$(1)/%: build/$(1)/%.o $$(addprefix build/$(1)/,$$(ALLOC:.c=.o)) build/$(1)/libcommon.a
	@echo "  LINK    $$@"
	$$(Q)$$(CC) $$(CFLAGS_$(1)) $$(LDFLAGS_$(1)) $$(LDFLAGS_PROGRAM) $$^ -o $$@ $$(LDLIBS_ALL)

# Test programs reach the OS through common/fault.c (see fault.h), so that
# they can make the allocator's mmap, munmap, madvise or mprotect fail.
$$(addprefix build/$(1)/,$$(TESTS)): LDFLAGS_PROGRAM := $$(FAULT_WRAP)
endef
FAULT_WRAP := $(foreach f,mmap munmap madvise mprotect,-Wl,--wrap=$(f))
$(foreach f,$(FLAVOURS),$(eval $(call FLAVOUR_RULES,$(f))))

# The preloadable library: position-independent objects of its own.
build/pic/%.o: %.c $(CC_STAMP)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) $(CFLAGS_release) $(DEBUG_INFO) $(CPPFLAGS_ALL) -fPIC -MMD -MP -c $< -o $@

ifneq ($(SHLIB),)
build/$(SHLIB): $(addprefix build/pic/,$(SHLIB_SRCS:.c=.o))
	@echo "  LINK    $@"
	$(Q)$(CC) -shared $^ -o $@ -lpthread
endif

# Keep a program's objects after linking it (make deletes the objects of a
# chain like build/debug/%: build/debug/%.o). Not .SECONDARY with no names: it
# makes every file intermediate, and a new common/*.c whose object is missing
# would then never be built into an archive that looks up to date.
.PRECIOUS: $(foreach f,$(FLAVOURS),build/$(f)/%.o)

-include $(wildcard build/*/*.d build/*/common/*.d build/pic/*.d)

# ---- Test runs ------------------------------------------------------------

# The public targets start a fresh build/results.txt, add their runs to it,
# and print the total last: `test` is every flavour of every test, then the
# misuse checks; `valgrind`, `asan` and `misuse` are one kind of run alone.
MUTANTS := $(wildcard mutants/*.patch)
test valgrind asan tsan misuse mutants:
	@rm -f $(RESULTS)
	@$(MAKE) --no-print-directory $(if $(filter test,$@),run-unit run-valgrind run-asan \
	  $(if $(THREADED),run-tsan) $(if $(MISUSE),run-misuse) \
	  $(if $(TEST_SCRIPTS)$(SHLIB),run-scripts) $(if $(MUTANTS),run-mutants) \
	  $(if $(FUZZ),run-fuzz),run-$@)
	@$(COMMON)/tally.sh --total $(STAGE) $(RESULTS)

run-unit: $(addprefix build/debug/,$(TESTS) $(EXTRA_PROGRAMS)) \
	  $(addprefix build/release/,$(TESTS) $(EXTRA_PROGRAMS))
	@for t in $(TESTS); do \
	  $(TALLY) "$(STAGE) $$t (debug)" build/debug/$$t; \
	  $(TALLY) "$(STAGE) $$t (release)" build/release/$$t; \
	done

run-valgrind: $(addprefix build/valgrind/,$(TESTS) $(EXTRA_PROGRAMS))
	@$(COMMON)/need.sh valgrind
	@for t in $(TESTS); do \
	  $(TALLY) "$(STAGE) $$t (memcheck)" valgrind $(VALGRIND_FLAGS) build/valgrind/$$t; \
	done

run-asan: $(addprefix build/asan/,$(TESTS) $(EXTRA_PROGRAMS))
	@for t in $(TESTS); do \
	  $(TALLY) "$(STAGE) $$t (asan+ubsan)" env $(ASAN_ENV) build/asan/$$t; \
	done

run-tsan: $(addprefix build/tsan/,$(TESTS) $(EXTRA_PROGRAMS))
	@for t in $(TESTS); do \
	  $(TALLY) "$(STAGE) $$t (tsan)" env $(TSAN_ENV) build/tsan/$$t; \
	done

run-scripts: $(if $(SHLIB),build/$(SHLIB)) $(addprefix build/release/,$(EXTRA_PROGRAMS))
	$(if $(SHLIB),@$(TALLY) "$(STAGE) shimtest" env CC='$(CC)' \
	  $(COMMON)/shimtest/run.sh build/$(SHLIB) $(STAGE) $(SHIM_VARIANTS))
	@for s in $(TEST_SCRIPTS); do \
	  $(TALLY) "$(STAGE) $$s" ./$$s; \
	done

run: $(if $(SHLIB),build/$(SHLIB))
	$(if $(SHLIB),,@echo "$(STAGE) builds no malloc library"; exit 2)
	$(if $(CMD),,@echo "usage: make run CMD='program args'"; exit 2)
	LD_PRELOAD=$(abspath build/$(SHLIB)) $(CMD)

run-misuse: build/valgrind/$(MISUSE) build/asan/$(MISUSE)
	@$(COMMON)/need.sh valgrind
	@$(TALLY) "$(STAGE) $(MISUSE) (misuse)" $(COMMON)/misuse.sh \
	  build/valgrind/$(MISUSE) build/asan/$(MISUSE)

# ---- Known-bad variants (mutants) -------------------------------------------

# Each mutant is built in the checked flavour only (one build per mutant is
# the cost), with warnings but not -Werror: a student's bug compiles.
run-mutants: build/debug/libcommon.a
	@$(TALLY) "$(STAGE) mutants" env CC='$(CC)' \
	  CFLAGS='$(CSTD) -Wall -Wextra $(CFLAGS_debug) $(DEBUG_INFO)' \
	  CPPFLAGS='-D_DEFAULT_SOURCE $(EXTRA_CPPFLAGS)' LDFLAGS='$(FAULT_WRAP)' \
	  LDLIBS='$(LDLIBS_ALL)' ALLOC='$(ALLOC)' \
	  $(COMMON)/mutants.sh $(STAGE) build/debug/libcommon.a $(TESTS)

# ---- Fuzzing and the soak run ------------------------------------------------

# The harness is built with clang's libFuzzer, ASan and UBSan, checked
# (ALLOC_DEBUG), whatever CC is. `make fuzz` runs it for SECONDS (default
# 60); `make fuzz REPRO=file` replays one input; `make test` runs FUZZ_RUNS
# seeded runs. Without libFuzzer the runs are skipped with a note.
FUZZ_CC ?= clang
FUZZ_RUNS ?= 500
SECONDS ?= 60
FUZZ_FLAGS := -O1 -g -DALLOC_DEBUG -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SRCS := $(FUZZ).c $(ALLOC)
FUZZ_RUN := $(COMMON)/fuzz/run.sh build/fuzz/$(FUZZ) fuzz build/fuzz/seeds \
	build/fuzz/corpus
FUZZ_NONE := echo "fuzz: $(FUZZ_CC) cannot build libFuzzer programs (on Debian: \
	apt-get install clang libclang-rt-14-dev): 0 passed, 0 failed, 1 skipped"

# common/fuzz.c (the block table) is built without libFuzzer's coverage
# instrumentation: its byte-by-byte pattern loops would otherwise be most of
# the fuzzer's time, and coverage of the harness's own bookkeeping guides
# nothing. ASan and UBSan still watch it.
build/fuzz/fuzz_common.o: $(COMMON)/fuzz.c $(COMMON)/fuzz.h
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(CSTD) $(WARN) -O1 -g -fsanitize=address,undefined \
	  -fno-sanitize-recover=all $(DEBUG_INFO) $(CPPFLAGS_ALL) -c $< -o $@
build/fuzz/$(FUZZ): $(FUZZ_SRCS) build/fuzz/fuzz_common.o $(COMMON)/fuzz/entry.c \
	  $(wildcard *.h) $(COMMON)/fuzz.h
	@mkdir -p $(@D)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) $(CSTD) $(WARN) $(FUZZ_FLAGS) $(DEBUG_INFO) $(CPPFLAGS_ALL) \
	  $(FUZZ_SRCS) $(COMMON)/fuzz/entry.c build/fuzz/fuzz_common.o -o $@ $(LDLIBS_ALL)

# The seed corpus: the committed traces in fuzz.h's operation language.
build/fuzz/trace2fuzz: $(COMMON)/fuzz/trace2fuzz.c $(COMMON)/trace.c $(COMMON)/fuzz.c
	@mkdir -p $(@D)
	$(Q)$(CC) $(CSTD) $(WARN) -O1 $(CPPFLAGS_ALL) $^ -o $@ -lm
build/fuzz/seeds/.made: build/fuzz/trace2fuzz $(wildcard $(COMMON)/traces/*.rep)
	@rm -rf $(@D) && mkdir -p $(@D)
	$(Q)build/fuzz/trace2fuzz $(@D) $(wildcard $(COMMON)/traces/*.rep) >/dev/null
	@touch $@

fuzz:
	$(if $(FUZZ),,@echo "$(STAGE) has no fuzzer"; exit 2)
	@if $(COMMON)/fuzz/run.sh --have $(FUZZ_CC); then \
	  $(MAKE) --no-print-directory build/fuzz/$(FUZZ) build/fuzz/seeds/.made && \
	  FUZZ_SECONDS=$(SECONDS) REPRO='$(REPRO)' $(FUZZ_RUN); \
	else $(FUZZ_NONE); fi

run-fuzz:
	@if $(COMMON)/fuzz/run.sh --have $(FUZZ_CC); then \
	  $(MAKE) --no-print-directory build/fuzz/$(FUZZ) build/fuzz/seeds/.made && \
	  $(TALLY) "$(STAGE) $(FUZZ) ($(FUZZ_RUNS) runs)" env FUZZ_RUNS=$(FUZZ_RUNS) $(FUZZ_RUN); \
	else $(TALLY) "$(STAGE) $(FUZZ)" $(FUZZ_NONE); fi

# The soak run: the same harness on ten million random operations, checked
# every ten thousand (FUZZ_OPS, FUZZ_CHECK_EVERY and TEST_SEED override),
# in a checked build at -O2. Not part of `make test`.
build/soak/$(FUZZ): $(FUZZ).c $(ALLOC) $(COMMON)/fuzz.c $(COMMON)/fuzz/soak.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) -O2 -g -DALLOC_DEBUG $(DEBUG_INFO) $(CPPFLAGS_ALL) \
	  $^ -o $@ $(LDLIBS_ALL)

soak: $(if $(FUZZ),build/soak/$(FUZZ))
	$(if $(FUZZ),,@echo "$(STAGE) has no fuzzer, so no soak run"; exit 0)
	@rm -f $(RESULTS)
	@$(TALLY) "$(STAGE) soak" build/soak/$(FUZZ)
	@cat build/logs/$(STAGE)_soak.log
	@$(COMMON)/tally.sh --total $(STAGE) $(RESULTS)

# ---- Bench and demo -----------------------------------------------------

# The earlier stages' libraries, as name=path for bench.sh (built first).
BENCH_PRELOAD = $(foreach s,$(BENCH_STAGES),$(s)=$(abspath ../$(s)/build/libmalloc.so))
# The same for common/mallocbench, with each stage's SHLIB_MIN_ALIGN (read
# from its Makefile) as @ALIGN: the alignment its trace replays check.
bench_align_of = $(shell sed -n 's/^SHLIB_MIN_ALIGN *:= *\([0-9]*\).*/\1/p' ../$(1)/Makefile 2>/dev/null)
BENCH_PRELOAD_ALIGNED = $(foreach s,$(BENCH_STAGES),$(s)=$(abspath ../$(s)/build/libmalloc.so)$(if $(call bench_align_of,$(s)),@$(call bench_align_of,$(s))))
# With BENCH_MALLOC, bench.sh runs the system side on the stage's own
# libmalloc.so too: its instructions per request through malloc and free,
# with whatever the library wraps around the allocator (its lock).
BENCH_PRELOAD_SELF = $(if $(BENCH_MALLOC),$(STAGE)=$(abspath build/$(SHLIB)))
bench: build/release/$(BENCH) $(addprefix build/release/,$(BENCH_EXTRA)) \
	  $(if $(BENCH_MALLOC),build/$(SHLIB))
	@for s in $(BENCH_STAGES); do \
	  if [ -d ../$$s ]; then $(MAKE) --no-print-directory -C ../$$s build/libmalloc.so >/dev/null \
	    || echo "bench: could not build ../$$s/build/libmalloc.so"; \
	  else echo "bench: stage $$s is not in this tree: its row is left out"; fi; \
	done
	@BENCH_CC='$(CC_ID)' BENCH_ENTRY='$(BENCH_ENTRY)' BENCH_PRELOAD='$(BENCH_PRELOAD_SELF) $(BENCH_PRELOAD)' $(COMMON)/bench.sh $(STAGE) build/release/$(BENCH) build
	@for b in $(BENCH_EXTRA); do build/release/$$b $(BENCH_EXTRA_ARGS) || exit 1; done
	$(if $(BENCH_MALLOC),@CC='$(CC)' $(COMMON)/mallocbench/compare.sh build \
	  $(STAGE)=$(abspath build/$(SHLIB))$(if $(SHLIB_MIN_ALIGN),@$(SHLIB_MIN_ALIGN)) $(BENCH_PRELOAD_ALIGNED))

demo: build/debug/$(DEMO)
	@build/debug/$(DEMO)

# ---- Lint and format ----------------------------------------------------

SOURCES := $(wildcard *.c *.h)

lint:
	@EXTRA_CPPFLAGS='$(EXTRA_CPPFLAGS)' $(COMMON)/lint.sh $(COMMON) $(SOURCES) $(LINT_EXTRA)

format:
	clang-format -i $(SOURCES) $(LINT_EXTRA)

clean:
	rm -rf build

help:
	@echo "$(STAGE): make [all|test|valgrind|asan|misuse|bench|demo|lint|format|clean]"
	$(if $(THREADED),@echo "  make tsan: the tests under ThreadSanitizer")
	$(if $(SHLIB),@echo "  make run CMD='...': a program on build/$(SHLIB)")
	$(if $(MUTANTS),@echo "  make mutants: its known-bad variants, each caught by a test")
	$(if $(FUZZ),@echo "  make fuzz [SECONDS=600] [REPRO=file]; make soak")
