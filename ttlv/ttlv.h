/*
 * ttlv/ttlv.h: the KMIP TTLV codec (KMIP 1.0-1.4 encodings).
 *
 * Pure C, no I/O: builds with common/ only so fuzzers link nothing else.
 * - a bounded decoder from bytes into a tree allocated from one arena;
 * - a streaming framing helper for the 8-byte header;
 * - a tree builder and an encoder that back-patches structure lengths;
 * - tag and enumeration tables (X-macros in tags.def / enums.def);
 * - a printer in the style of the KMIP test-case documents, and a parser
 *   for that printed form (used by `kmsctl ttlv encode`);
 * - the JSON and XML message encodings of the KMIP 1.3/1.4 Profiles, read
 *   and written over the same tree (json.c with libjansson, xml.c with
 *   libexpat; docs/kmip.md "Message encodings" lists the rules).
 * It knows nothing about KMIP message semantics: that is kmip/.
 *
 * Thread-safety: all functions are reentrant; a tree belongs to its arena.
 */
#ifndef KMS_TTLV_H
#define KMS_TTLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kms.h"

/* ------------------------------------------------------------ item types */
enum ttlv_type {
    TTLV_ANY = 0, /* table wildcard: tag of no fixed type; never on the wire */
    TTLV_STRUCTURE = 0x01,
    TTLV_INTEGER = 0x02,
    TTLV_LONG_INTEGER = 0x03,
    TTLV_BIG_INTEGER = 0x04,
    TTLV_ENUMERATION = 0x05,
    TTLV_BOOLEAN = 0x06,
    TTLV_TEXT_STRING = 0x07,
    TTLV_BYTE_STRING = 0x08,
    TTLV_DATE_TIME = 0x09,
    TTLV_INTERVAL = 0x0A,
};

/* ------------------------------------------------------------------ tags */
/* KMIP_TAG_ACTIVATION_DATE = 0x420001, ... from tags.def:
 * XX(value, NAME, "Spec Name", TYPE) where TYPE is a ttlv_type suffix. */
enum kmip_tag {
#define XX(val, name, str, type) KMIP_TAG_##name = (val),
#include "ttlv/tags.def"
#undef XX
};

/* --------------------------------------------------------- enumerations */
/* enums.def defines KMIP_ENUM_<SET>(XX) lists: XX(SET, value, NAME, "Spec Name").
 * Each value is KMIP_<SET>_<NAME>, e.g. KMIP_OPERATION_CREATE,
 * KMIP_OBJECT_TYPE_SYMMETRIC_KEY, KMIP_RESULT_REASON_ITEM_NOT_FOUND,
 * KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT (mask bits). */
#include "ttlv/enums.def"
#define TTLV_ENUM_CONST(set, val, name, str) KMIP_##set##_##name = (val),
#define TTLV_ENUM_SETS(X)                                                        \
    X(ALTERNATIVE_NAME_TYPE) X(ATTESTATION_TYPE) X(AUTHENTICATION_SUITE)         \
    X(BATCH_ERROR_CONTINUATION_OPTION) X(BLOCK_CIPHER_MODE) X(CANCELLATION_RESULT) \
    X(CERTIFICATE_REQUEST_TYPE) X(CERTIFICATE_TYPE) X(CLIENT_REGISTRATION_METHOD) \
    X(CONFORMANCE_CLAUSE) X(CREDENTIAL_TYPE) X(CRYPTOGRAPHIC_ALGORITHM)          \
    X(CRYPTOGRAPHIC_USAGE_MASK) X(DERIVATION_METHOD) X(DESTROY_ACTION)          \
    X(DIGITAL_SIGNATURE_ALGORITHM) X(DRBG_ALGORITHM) X(ENCODING_OPTION)         \
    X(ENDPOINT_ROLE) X(FIPS186_VARIATION) X(HASHING_ALGORITHM)                  \
    X(KEY_COMPRESSION_TYPE) X(KEY_FORMAT_TYPE) X(KEY_ROLE_TYPE)                 \
    X(KEY_VALUE_LOCATION_TYPE) X(KEY_WRAP_TYPE) X(LINK_TYPE) X(MASK_GENERATOR)  \
    X(NAME_TYPE) X(OBJECT_GROUP_MEMBER) X(OBJECT_TYPE) X(OPAQUE_DATA_TYPE)      \
    X(OPERATION) X(PADDING_METHOD) X(PUT_FUNCTION) X(QUERY_FUNCTION)            \
    X(RECOMMENDED_CURVE) X(RESULT_REASON) X(RESULT_STATUS)                      \
    X(REVOCATION_REASON_CODE) X(RNG_ALGORITHM) X(RNG_MODE) X(SECRET_DATA_TYPE)  \
    X(SHREDDING_ALGORITHM) X(SPLIT_KEY_METHOD) X(STATE) X(STORAGE_STATUS_MASK)  \
    X(UNWRAP_MODE) X(USAGE_LIMITS_UNIT) X(VALIDATION_AUTHORITY_TYPE)            \
    X(VALIDATION_TYPE) X(VALIDITY_INDICATOR) X(WRAPPING_METHOD)
#define TTLV_ENUM_DECLARE(set) enum kmip_enum_##set { KMIP_ENUM_##set(TTLV_ENUM_CONST) };
TTLV_ENUM_SETS(TTLV_ENUM_DECLARE)
#undef TTLV_ENUM_DECLARE

/* Table look-ups. Names are the specification's ("Unique Identifier"). */
const char *ttlv_tag_name(uint32_t tag);            /* NULL when unknown */
enum ttlv_type ttlv_tag_type(uint32_t tag);         /* TTLV_ANY when unknown/untyped */
int ttlv_tag_by_name(const char *name, uint32_t *tag_out); /* 0 or KMS_ERR_NOTFOUND */
const char *ttlv_type_name(enum ttlv_type t);       /* "Structure", ...; NULL if invalid */
int ttlv_type_by_name(const char *name, enum ttlv_type *out);
/* Enumeration value names for an Enumeration-typed tag (e.g. KMIP_TAG_OPERATION). */
const char *ttlv_enum_name(uint32_t tag, uint32_t value); /* NULL when unknown */
int ttlv_enum_by_name(uint32_t tag, const char *name, uint32_t *value_out);
/* For a text attribute name ("Cryptographic Algorithm") the tag of its value. */
int ttlv_attr_tag_by_name(const char *attr_name, uint32_t *tag_out);

/* ------------------------------------------------------------- the tree */
typedef struct ttlv_item ttlv_item_t;
struct ttlv_item {
    uint32_t tag;
    enum ttlv_type type;
    union {
        int32_t i32;   /* Integer, Enumeration (as uint32 bits), Interval (uint32) */
        int64_t i64;   /* Long Integer, Date-Time (seconds since the epoch) */
        bool b;        /* Boolean */
        struct {       /* Text String (UTF-8, NOT NUL-terminated on the wire; */
            const uint8_t *ptr; /* the decoder adds a NUL after len for convenience), */
            size_t len;         /* Byte String, Big Integer (two's complement, big-endian) */
        } bytes;
    } v;
    ttlv_item_t *first; /* children of a Structure, in order */
    ttlv_item_t *last;
    ttlv_item_t *next;  /* next sibling */
    ttlv_item_t *parent;
    size_t offset;      /* byte offset of the item's tag in the decoded input (0 if built) */
};

/* Accessors; the enum/interval helpers read v.i32 as uint32. */
static inline uint32_t ttlv_u32(const ttlv_item_t *it) { return (uint32_t)it->v.i32; }
static inline const char *ttlv_text(const ttlv_item_t *it) { return (const char *)it->v.bytes.ptr; }

/* --------------------------------------------------------------- decode */
/* Bounds on one decoded message; 0 in a field means its default. */
typedef struct ttlv_limits {
    size_t max_depth;  /* nesting; default 32 (never above 256) */
    size_t max_items;  /* total items in one message; default 100000 */
    size_t max_size;   /* input bytes, in any encoding; default 64 MiB */
} ttlv_limits_t;
#define TTLV_DEFAULT_MAX_DEPTH 32
#define TTLV_DEFAULT_MAX_ITEMS 100000
#define TTLV_DEFAULT_MAX_SIZE ((size_t)64 << 20)

/*
 * Decode exactly one top-level item occupying all of buf[0..len).
 * The tree (and copies of all values) is allocated from `arena`; the input
 * is never written and may be freed afterwards. Text Strings are validated
 * as UTF-8 and NUL-terminated in the copy. `lim` NULL = defaults.
 * Returns 0, KMS_ERR_PROTO, KMS_ERR_LIMIT (size/depth/items) or KMS_ERR_NOMEM
 * (arena limit); on failure `err` (NULL allowed) holds the same code, the
 * byte offset of the offending item or field and a message such as
 * "non-zero padding in Text String 0x420094".
 */
int ttlv_decode(const uint8_t *buf, size_t len, const ttlv_limits_t *lim, kms_arena_t *arena,
                ttlv_item_t **root_out, kms_error_t *err);

/*
 * Framing: given at least 8 header bytes of a message, the total message
 * size (8 + length) in *total_out. Returns KMS_ERR_PARTIAL with fewer than
 * 8 bytes, KMS_ERR_PROTO when the header is not a Structure with a 0x42
 * tag, KMS_ERR_LIMIT when the total would exceed `max_total`.
 */
int ttlv_frame_need(const uint8_t *hdr, size_t have, size_t max_total, size_t *total_out);

/* ---------------------------------------------------------------- build */
/* All builders allocate from the arena; they return NULL on NOMEM.
 * `parent` may be NULL to make a root; otherwise the child is appended. */
ttlv_item_t *ttlv_new_struct(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag);
ttlv_item_t *ttlv_new_int(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, int32_t v);
ttlv_item_t *ttlv_new_long(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, int64_t v);
ttlv_item_t *ttlv_new_enum(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, uint32_t v);
ttlv_item_t *ttlv_new_bool(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, bool v);
ttlv_item_t *ttlv_new_text(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, const char *s, size_t n);
ttlv_item_t *ttlv_new_textz(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, const char *s);
ttlv_item_t *ttlv_new_bytes(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, const void *p, size_t n);
ttlv_item_t *ttlv_new_bigint(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, const void *p, size_t n);
ttlv_item_t *ttlv_new_datetime(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, int64_t secs);
ttlv_item_t *ttlv_new_interval(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, uint32_t secs);
/* Link an existing item (and its subtree) as the last child of parent. */
void ttlv_append(ttlv_item_t *parent, ttlv_item_t *child);
/* Unlink an item from its parent. */
void ttlv_remove(ttlv_item_t *child);
/* Deep copy of a subtree into arena `a` (e.g. to move an attribute between trees). */
ttlv_item_t *ttlv_clone(kms_arena_t *a, const ttlv_item_t *src);

/* ---------------------------------------------------------------- query */
ttlv_item_t *ttlv_find(const ttlv_item_t *parent, uint32_t tag);        /* first child with tag */
ttlv_item_t *ttlv_find_next(const ttlv_item_t *after, uint32_t tag);    /* next sibling with tag */
size_t ttlv_count(const ttlv_item_t *parent, uint32_t tag);
/* Deep equality of tag, type, value and children. */
bool ttlv_equal(const ttlv_item_t *a, const ttlv_item_t *b);

/* --------------------------------------------------------------- encode */
/* Append the encoding of `root` to `out`; KMS_ERR_LIMIT past out->max. */
int ttlv_encode(const ttlv_item_t *root, kms_buf_t *out);
/* Encoded size of an item in bytes (header + padded value). */
size_t ttlv_encoded_size(const ttlv_item_t *root);

/* ---------------------------------------------------- print and parse text */
/*
 * Printed form, one item per line, two spaces of indent per level, as in the
 * KMIP test-case documents:
 *   Tag: Request Message (0x420078), Type: Structure (0x01), Data:
 *     Tag: Batch Count (0x42000D), Type: Integer (0x02), Data: 0x00000001 (1)
 *     Tag: Operation (0x42005C), Type: Enumeration (0x05), Data: 0x00000001 (Create)
 * The exact per-type Data formats are documented in ttlv/print.c. Byte
 * Strings print as hex. ttlv_parse_text() reads this form back (tag and
 * type by the hex in parentheses, or by name when the hex is absent).
 * `redact` true prints Key Material and other secret values as "<redacted>".
 * ttlv_parse_text() errors carry the byte offset in the text and the line.
 */
int ttlv_print(const ttlv_item_t *root, bool redact, kms_buf_t *out);
int ttlv_parse_text(const char *text, size_t len, kms_arena_t *arena, ttlv_item_t **root_out,
                    kms_error_t *err);

/* ------------------------------------------- JSON and XML message encodings */
/*
 * The JSON and XML encodings of a KMIP message (KMIP Profiles 1.3/1.4), e.g.
 *   {"tag":"Operation","type":"Enumeration","value":"Create"}
 *   <Operation type="Enumeration" value="Create"/>
 * Tags, types, enumeration values and mask bits are written by their
 * normalized names (ttlv_name_normalize), unknown tags and values in hex
 * ("0x540001", "0x0000000A"); integers as numbers, Big Integers and Byte
 * Strings as hex, Date-Times in ISO 8601 ("2012-04-27T08:12:21+00:00").
 * Everything the tree can hold survives TTLV -> JSON/XML -> TTLV byte for
 * byte, with one exception: XML 1.0 cannot carry control characters other
 * than tab, line feed and carriage return, nor U+FFFE/U+FFFF, so
 * ttlv_to_xml() refuses a Text String holding one (KMS_ERR_NOTSUP).
 *
 * Decoding builds the same tree ttlv_decode() builds, from `arena`, under
 * the same limits (`lim` NULL = defaults; max_size bounds the text, and
 * callers serving untrusted peers should pass their own message cap, since
 * the JSON library holds a parse tree several times the text's size until
 * the call returns). The rules the binary decoder applies still hold:
 * tags 0x42xxxx/0x54xxxx (any inside a Vendor Extension), UTF-8 Text
 * Strings without NUL, Big Integers a multiple of 8 bytes (shorter hex is
 * sign-extended). Returns 0, KMS_ERR_PROTO, KMS_ERR_LIMIT or KMS_ERR_NOMEM;
 * `err` (NULL allowed) then names the item's path ("RequestMessage/
 * BatchItem/Operation: ...") and, where the parser knows it, the byte
 * offset in the text (XML always; JSON only for syntax errors, since the
 * JSON library does not keep positions).
 *
 * Encoding appends to `out` (KMS_ERR_LIMIT past out->max; on any failure
 * out is left as it was and what was written is wiped). Flags:
 * TTLV_FORM_PRETTY indents with two spaces, one item per line; without it
 * the text has no whitespace between items. Memory the JSON and XML
 * libraries allocate is wiped before it is freed. Any thread.
 */
#define TTLV_FORM_PRETTY 1u
int ttlv_from_json(const char *text, size_t len, const ttlv_limits_t *lim, kms_arena_t *arena,
                   ttlv_item_t **root_out, kms_error_t *err);
int ttlv_to_json(const ttlv_item_t *root, unsigned flags, kms_buf_t *out, kms_error_t *err);
int ttlv_from_xml(const char *text, size_t len, const ttlv_limits_t *lim, kms_arena_t *arena,
                  ttlv_item_t **root_out, kms_error_t *err);
int ttlv_to_xml(const ttlv_item_t *root, unsigned flags, kms_buf_t *out, kms_error_t *err);

/*
 * The Profiles' normalized form of a specification name, as the JSON and
 * XML encodings write it: "Cryptographic Usage Mask" ->
 * "CryptographicUsageMask", "3DES" -> "DES3", "X.509" -> "X_509",
 * "Pre-Active" -> "PreActive". Writes a NUL-terminated result into
 * out[outsz] and returns its length, or SIZE_MAX (out = "") when it does not
 * fit or the name is longer than 255 bytes.
 */
size_t ttlv_name_normalize(const char *name, char *out, size_t outsz);

#endif /* KMS_TTLV_H */
