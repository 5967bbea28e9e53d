/*
 * ttlv/ttlv_int.h: helpers shared by the files of ttlv/ only.
 * Nothing here is part of the module's contract.
 */
#ifndef KMS_TTLV_INT_H
#define KMS_TTLV_INT_H

#include <stdarg.h>

#include "ttlv/ttlv.h"

/* Absolute cap on nesting whatever the caller asks: the decoder, printer and
 * encoder recurse once per level, so this bounds their stack use. */
#define TTLV_HARD_MAX_DEPTH 256

/* The fixed value length of a type on the wire, or -1 when variable. */
int ttlv_fixed_len(enum ttlv_type t);

/* Value length rounded up to the 8-byte boundary (caller ensures no overflow:
 * n is at most UINT32_MAX). */
static inline uint64_t ttlv_padded(uint64_t n) { return (n + 7u) & ~(uint64_t)7u; }

/* A fresh, zeroed item (no value) allocated from the arena and appended to
 * parent when parent is not NULL. */
ttlv_item_t *ttlv_item_alloc(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, enum ttlv_type type);

/* Strict UTF-8 check (no overlong forms, no surrogates, nothing past
 * U+10FFFF, no NUL). Returns the index of the first bad byte, or n. */
size_t ttlv_utf8_check(const uint8_t *p, size_t n);

/* The tag whose enumeration/mask tables name its value: it->tag, or for an
 * Attribute Value inside a parent, the tag of the attribute named by the
 * sibling Attribute Name when that tag has the same type. */
uint32_t ttlv_naming_tag(const ttlv_item_t *it);

/* True when values under this tag carry secrets (printer redaction). */
bool ttlv_tag_is_secret(uint32_t tag);

#endif /* KMS_TTLV_INT_H */
