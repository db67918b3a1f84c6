/*
 * text.h - the text rules of agent memory, pure functions over strings:
 * the subject of a fact (contradiction detection), text equality for
 * consolidation, and the normalised name of a knowledge entity.
 * docs/memory.md states the rules.  Thread-safe; results in the arena.
 */
#ifndef AP_MEMORY_TEXT_H
#define AP_MEMORY_TEXT_H

#include <stdbool.h>

#include "core/arena.h"

/* Normalised subject of a fact: the words before the first verb of a short
 * list (is, are, was, were, has, have, likes, prefers, uses, equals, lives)
 * or before a colon, lower-cased, without the/a/an, at most 8 words ("The
 * office WiFi password is swordfish" → "office wifi password"); NULL when
 * there is none. */
const char *ap_mem_subject(ap_arena_t *a, const char *content);
/* Equal once ASCII case, spaces and punctuation are ignored. */
bool ap_mem_same_text(const char *x, const char *y);
/* Lower case (ASCII), trimmed, inner whitespace collapsed. */
const char *ap_mem_norm_name(ap_arena_t *a, const char *name);

#endif
