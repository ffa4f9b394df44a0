/*
 * bump_internal.h: what bump.c and bump_check.c share and callers do not
 * need: the stage's name for misuse reports, and the redzone.
 */
#ifndef BUMP_INTERNAL_H
#define BUMP_INTERNAL_H

#include "annotate.h"

#include <stddef.h>

#define STAGE "01-bump"

/* Bytes left unused after every block in annotated builds (a memory tool
 * watches), so that writing past a block lands in no-access memory and is
 * reported. 16 keeps blocks 16-byte aligned, which ASan's 8-byte granules
 * need. 0 in every other build: nothing would see the overflow there. */
#define BUMP_REDZONE ((size_t)(TRACK_ENABLED ? 16 : 0))

/* An annotated build is a checked build, in every stage (the glossary's
 * rule): a tool build without ALLOC_DEBUG is refused rather than quietly
 * made half of one. */
#if TRACK_ENABLED && !defined(ALLOC_DEBUG)
#error "01-bump: an annotated build must be a checked build: add -DALLOC_DEBUG"
#endif

#endif /* BUMP_INTERNAL_H */
