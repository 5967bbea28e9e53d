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

/*
 * What every decoder (TTLV, JSON, XML) does first: clears err and
 * *root_out, checks the arguments, resolves the limits (defaults, the hard
 * depth cap) into *depth_out / *items_out and refuses input over max_size.
 * `what` names the encoding in the message. 0, KMS_ERR_INVAL or
 * KMS_ERR_LIMIT.
 */
int ttlv_decode_begin(const void *in, size_t len, const ttlv_limits_t *lim, kms_arena_t *arena,
                      ttlv_item_t **root_out, const char *what, size_t *depth_out, size_t *items_out,
                      kms_error_t *err);

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

/* ---------------------------------------------- table iteration (tags.c) */
/* Capacities of the normalized-name indexes in names.c; tags.c checks the
 * tables fit at compile time. */
#define TTLV_MAX_TAG_NAMES 512
#define TTLV_MAX_ENUM_NAMES 1024
/* The i-th entry of the tag table (NULL past the end). */
const char *ttlv_tag_entry(size_t i, uint32_t *tag_out);
/* The i-th value name over all enumeration and mask sets (NULL past the
 * end); *set_out identifies its set, as ttlv_enum_set() does for a tag. */
const char *ttlv_enum_entry(size_t i, const void **set_out, uint32_t *value_out);
/* The set naming the values of a tag, or NULL when it has none. */
const void *ttlv_enum_set(uint32_t tag);

/* --------------------------------- normalized names (names.c), JSON/XML */
/* Longest normalized name kept; every specification name is shorter, and
 * normalization never lengthens a name. */
#define TTLV_NORM_MAX 64
/* Normalized name of a tag / of a tag's enumeration or mask value, into
 * buf[TTLV_NORM_MAX]; NULL when the tables have no name. */
const char *ttlv_tag_norm(uint32_t tag, char *buf);
const char *ttlv_enum_norm(uint32_t tag, uint32_t value, char *buf);
/* Normalized type name ("TextString"); NULL when invalid. */
const char *ttlv_type_norm(enum ttlv_type t);
/* Reverse look-ups of exactly normalized names: 0 or KMS_ERR_NOTFOUND. */
int ttlv_tag_by_norm(const char *name, uint32_t *tag_out);
int ttlv_type_by_norm(const char *name, enum ttlv_type *out);
int ttlv_enum_by_norm(uint32_t tag, const char *name, uint32_t *value_out);

/* ------------------------------------ the parts JSON and XML share (form.c) */
enum ttlv_form { TTLV_FORM_JSON, TTLV_FORM_XML };

/* A scalar value as the text forms carry it: a JSON number (or the decimal
 * text of an XML attribute), a Boolean, or text. */
struct ttlv_fval {
    enum { TTLV_FVAL_INT, TTLV_FVAL_BOOL, TTLV_FVAL_TEXT } kind;
    int64_t i;
    bool b;
    const char *s; /* TEXT: not NUL-terminated */
    size_t n;
};

/*
 * The value of a non-Structure item in form f. Text that has to be made
 * (hex, names, dates) goes into `scratch` (reset first); Text Strings point
 * at the item itself. 0, or KMS_ERR_LIMIT / KMS_ERR_NOMEM from the buffer.
 */
int ttlv_fval_format(const ttlv_item_t *it, enum ttlv_form f, kms_buf_t *scratch,
                     struct ttlv_fval *v_out);
/*
 * Sets the value of `it` (tag and type set, already linked under its parent
 * so that an Attribute Value finds its Attribute Name) from v read in form
 * f. 0; KMS_ERR_PROTO with *why_out naming what was wrong; KMS_ERR_NOMEM.
 */
int ttlv_fval_parse(ttlv_item_t *it, enum ttlv_form f, const struct ttlv_fval *v, kms_arena_t *a,
                    const char **why_out);
/* "RequestMessage/BatchItem/Operation": where an item sits, for messages. */
void ttlv_form_path(const ttlv_item_t *it, char *buf, size_t n);
/* Records "FORM PATH: what" (PATH of `it`, which may be NULL) at `offset`
 * (KMS_ERROR_NO_OFFSET when unknown) in err; returns code. */
int ttlv_form_fail(kms_error_t *err, int code, const char *form, size_t offset,
                   const ttlv_item_t *it, const char *what);
/* True when a tag read from text may stand where it does: 0x42xxxx or
 * 0x54xxxx, or anything inside a Vendor Extension (as ttlv_decode()). */
static inline bool ttlv_form_tag_ok(uint32_t tag, bool vendor)
{
    return vendor || (tag >> 16) == 0x42 || (tag >> 16) == 0x54;
}
/* Value of a hex digit, or -1. */
int ttlv_hexval(char c);
/* "0x" + 1..maxdig hex digits, filling all of s[0..n). */
bool ttlv_form_hexnum(const char *s, size_t n, unsigned maxdig, uint64_t *v_out);
/* Optional '-', then 1..19 decimal digits filling s[0..n), within [min, max]. */
bool ttlv_form_decnum(const char *s, size_t n, int64_t min, int64_t max, int64_t *v_out);
/* Hex digit pairs (either case, nothing else) into a NUL-followed arena copy:
 * 0, KMS_ERR_PROTO or KMS_ERR_NOMEM. */
int ttlv_form_hexbytes(kms_arena_t *a, const char *s, size_t n, uint8_t **out, size_t *n_out);
/* Sign-extends a Big Integer of *n bytes at *b to whole 8-byte blocks, as
 * the TTLV encoding requires (a new arena copy; the old one is wiped). */
int ttlv_bigint_blocks(kms_arena_t *a, uint8_t **b, size_t *n);
/* Appends 2n hex digits of p[0..n). */
int ttlv_put_hex(kms_buf_t *out, const uint8_t *p, size_t n, bool upper);
/* Allocation functions for the JSON and XML libraries: every block is wiped
 * before it is freed, since parsed messages may hold key material. */
void *ttlv_form_malloc(size_t n);
void *ttlv_form_realloc(void *p, size_t n);
void ttlv_form_free(void *p);

#endif /* KMS_TTLV_INT_H */
