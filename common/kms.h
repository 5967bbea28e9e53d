/*
 * common/kms.h: the shared foundation every kmsd module builds on.
 *
 * Error codes, bounded byte buffers and readers, a per-request arena, the
 * secret type for key material, hex helpers and logging. libc only: this
 * module must build without OpenSSL, SQLite or libuv so that the fuzzers
 * link only common/ and ttlv/.  It deliberately holds no protocol knowledge.
 */
#ifndef KMS_COMMON_H
#define KMS_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- errors */
/* Functions return 0 on success or a negative KMS_ERR_* value. */
#define KMS_ERR_MAP(XX)                                              \
    XX(NOMEM, -1, "out of memory")                                   \
    XX(INVAL, -2, "invalid argument")                                \
    XX(PROTO, -3, "malformed input")                                 \
    XX(PARTIAL, -4, "need more bytes")                               \
    XX(LIMIT, -5, "limit exceeded")                                  \
    XX(IO, -6, "input/output error")                                 \
    XX(NOTFOUND, -7, "not found")                                    \
    XX(EXISTS, -8, "already exists")                                 \
    XX(CRYPTO, -9, "cryptographic failure")                          \
    XX(CONFIG, -10, "configuration error")                           \
    XX(PERM, -11, "permission denied")                               \
    XX(UNAVAIL, -12, "service unavailable")                          \
    XX(STATE, -13, "wrong state")                                    \
    XX(CONFLICT, -14, "concurrent modification")                     \
    XX(NOTSUP, -15, "not supported")                                 \
    XX(BUSY, -16, "busy")                                            \
    XX(TIMEOUT, -17, "timed out")                                    \
    XX(INTERNAL, -18, "internal error")                              \
    XX(AGAIN, -19, "would block")                                    \
    XX(NOSPC, -20, "no space left on device")

enum kms_err {
    KMS_OK = 0,
#define XX(name, val, msg) KMS_ERR_##name = (val),
    KMS_ERR_MAP(XX)
#undef XX
};

/* Static string for an error code; never NULL. */
const char *kms_strerror(int err);

/* ------------------------------------------------------- error detail */
/*
 * Detail for an error, where a caller needs more than the code: one line
 * for a human, and where they apply the byte offset of malformed input and
 * a protocol reason (for kmip/ and crypto/: the KMIP Result Reason the
 * request is answered with). A function that can give detail takes
 * `kms_error_t *err` as its last parameter (NULL = no detail wanted) and
 * returns the same negative code it records there. This is the one error
 * convention of the tree: negative KMS_ERR_* codes, detail in this struct.
 */
#define KMS_ERROR_NO_OFFSET SIZE_MAX
typedef struct kms_error {
    int code;            /* KMS_ERR_* recorded; 0 = none */
    uint32_t reason;     /* protocol reason (KMIP Result Reason); 0 = derive from code */
    size_t offset;       /* byte offset in the input, or KMS_ERROR_NO_OFFSET */
    char msg[256];       /* "" when none */
} kms_error_t;

/* Reset to "nothing recorded". NULL ok. */
void kms_error_clear(kms_error_t *e);
/* Record code and message (printf) in e (NULL ok); returns code. */
int kms_error_set(kms_error_t *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with a protocol reason. */
int kms_error_set_reason(kms_error_t *e, int code, uint32_t reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with the byte offset of malformed input. */
int kms_error_set_at(kms_error_t *e, int code, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The message, or kms_strerror(code) when none was given; never NULL. */
const char *kms_error_msg(const kms_error_t *e);

/* ------------------------------------------------------------------ I/O */
/* Write all n bytes to a blocking fd, retrying on EINTR and short writes.
 * 0, or KMS_ERR_IO with errno left as the failed write(2) set it (ENOSPC,
 * EIO...) for the caller's message. */
int kms_write_all(int fd, const void *p, size_t n);

/* ---------------------------------------------------------------- buffer */
/*
 * A growable byte buffer with a hard cap. Appends that would exceed `max`
 * fail with KMS_ERR_LIMIT and leave the buffer unchanged. Buffers that held
 * secrets must be disposed with kms_buf_dispose_wipe().
 */
typedef struct kms_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len */
} kms_buf_t;

void kms_buf_init(kms_buf_t *b, size_t max);
void kms_buf_dispose(kms_buf_t *b);
void kms_buf_dispose_wipe(kms_buf_t *b);
void kms_buf_reset(kms_buf_t *b); /* len = 0, memory kept */
int kms_buf_reserve(kms_buf_t *b, size_t extra);
int kms_buf_append(kms_buf_t *b, const void *p, size_t n);
int kms_buf_append_byte(kms_buf_t *b, uint8_t v);
int kms_buf_append_u32be(kms_buf_t *b, uint32_t v);
int kms_buf_append_u64be(kms_buf_t *b, uint64_t v);
int kms_buf_printf(kms_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Remove the first n bytes (n <= len). */
void kms_buf_consume(kms_buf_t *b, size_t n);
/* Hands the data out (caller frees); buffer becomes empty. */
uint8_t *kms_buf_take(kms_buf_t *b, size_t *len_out);

/* ---------------------------------------------------------------- reader */
/*
 * A bounded, read-only cursor over bytes. Every read checks the remaining
 * length first and fails with KMS_ERR_PROTO (nothing consumed) when short.
 * `base` is the absolute offset of data[0] in the original message, so that
 * errors can name the byte offset of a nested structure.
 */
typedef struct kms_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;
    size_t base;
} kms_reader_t;

void kms_reader_init(kms_reader_t *r, const uint8_t *data, size_t len);
static inline size_t kms_reader_left(const kms_reader_t *r) { return r->len - r->pos; }
static inline size_t kms_reader_offset(const kms_reader_t *r) { return r->base + r->pos; }
int kms_reader_u8(kms_reader_t *r, uint8_t *out);
int kms_reader_u32be(kms_reader_t *r, uint32_t *out);
int kms_reader_u64be(kms_reader_t *r, uint64_t *out);
/* Points *out at the next n bytes (no copy). */
int kms_reader_bytes(kms_reader_t *r, size_t n, const uint8_t **out);
int kms_reader_skip(kms_reader_t *r, size_t n);
/* A sub-reader clipped to the next n bytes; advances r past them. */
int kms_reader_sub(kms_reader_t *r, size_t n, kms_reader_t *sub_out);

/* Big-endian helpers on raw memory (callers have checked lengths). */
static inline uint32_t kms_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t kms_be64(const uint8_t *p)
{
    return ((uint64_t)kms_be32(p) << 32) | kms_be32(p + 4);
}
static inline void kms_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void kms_put_be64(uint8_t *p, uint64_t v)
{
    kms_put_be32(p, (uint32_t)(v >> 32)); kms_put_be32(p + 4, (uint32_t)v);
}

/* ----------------------------------------------------------------- arena */
/*
 * Per-request bump allocator. Everything allocated from it is released by
 * one kms_arena_free()/kms_arena_reset(). `limit` caps the total bytes
 * (0 = unlimited); past it allocation returns NULL. An arena is always
 * wiped when reset or freed, because request trees may hold key material.
 * Not thread-safe: one arena per request.
 */
typedef struct kms_arena kms_arena_t;

kms_arena_t *kms_arena_new(size_t limit);
void kms_arena_free(kms_arena_t *a);  /* NULL is a no-op */
void kms_arena_reset(kms_arena_t *a); /* wipe and keep the first block */
void *kms_arena_alloc(kms_arena_t *a, size_t n);  /* 16-byte aligned, zeroed */
void *kms_arena_memdup(kms_arena_t *a, const void *p, size_t n);
char *kms_arena_strndup(kms_arena_t *a, const char *s, size_t n); /* NUL-terminated */
char *kms_arena_strdup(kms_arena_t *a, const char *s);
size_t kms_arena_used(const kms_arena_t *a);
/* A point to come back to: kms_arena_rewind() wipes and releases whatever
 * was allocated after kms_arena_mark(), so a loop over many candidates
 * (a Locate's post-filter) keeps only what it decides to keep. Nothing
 * allocated after the mark may be used after the rewind. */
typedef struct kms_arena_mark {
    void *block;  /* the newest block at the mark, NULL if none */
    size_t used;  /* its bytes in use then */
    size_t total; /* the arena's total then */
} kms_arena_mark_t;
kms_arena_mark_t kms_arena_mark(const kms_arena_t *a);
void kms_arena_rewind(kms_arena_t *a, kms_arena_mark_t m);

/* ---------------------------------------------------------------- secret */
/*
 * Key material lives only in kms_secret_t: memory that is mlock'ed (best
 * effort: RLIMIT_MEMLOCK can refuse) and wiped on free. Never log its
 * contents. Secrets up to 4 KiB come from a pool of pages locked once
 * (size classes with free lists), so the hot path takes no mlock/munlock
 * system call and no process-wide mmap lock; larger ones are locked one by
 * one. Thread-safe.
 */
typedef struct kms_secret {
    uint8_t *data;
    size_t len;
    int pool_;   /* private: size class, or -1 for a separately locked block */
} kms_secret_t;

kms_secret_t *kms_secret_new(size_t len);                 /* zeroed */
kms_secret_t *kms_secret_dup(const void *p, size_t len);
void kms_secret_free(kms_secret_t *s);                     /* NULL is a no-op */
/* Wipe memory that the compiler may not elide. */
void kms_wipe(void *p, size_t n);
/* Constant-time comparison: 0 when equal. */
int kms_ct_memcmp(const void *a, const void *b, size_t n);

/* ---------------------------------------------------------------- sealed */
/*
 * Key material as an object row holds it: sealed by hsm/ (hsm_row_seal,
 * hsm_row_open), kept by store/ in the row without looking inside. It is a
 * plain value type here because those two modules never include each
 * other.
 */
typedef struct kms_sealed {
    uint32_t dsk_id;      /* data-store key that sealed `blob`; 0 = no material */
    int64_t gen;          /* seal generation, bound by the seal: 1 when first
                             sealed, +1 each time the material is re-sealed */
    const uint8_t *blob;  /* nonce || ciphertext || tag; NULL when dsk_id is 0 */
    size_t len;
} kms_sealed_t;

/* --------------------------------------------------------------- strings */
/* Copy src into dst[size] (size > 0), cut to fit, always NUL-terminated;
 * returns strlen(src), so >= size means it was cut. For fixed-size fields
 * on per-request paths, where snprintf("%s") costs a format parse. */
size_t kms_strlcpy(char *dst, const char *src, size_t size);

/* ------------------------------------------------------------------- hex */
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void kms_hex_encode(const uint8_t *p, size_t n, char *out);
/*
 * Decode hex text (whitespace ignored) into a malloc'ed buffer.
 * Returns KMS_ERR_PROTO on an odd count or a non-hex character.
 */
int kms_hex_decode(const char *s, size_t slen, uint8_t **out, size_t *len_out);

/* ------------------------------------------------------------------- log */
enum kms_log_level { KMS_LOG_ERROR = 0, KMS_LOG_WARN, KMS_LOG_INFO, KMS_LOG_DEBUG };

/* log.format: text lines for people, or one JSON object per line for a
 * log pipeline (stable members: ts, level, component, msg, plus the
 * fields of kms_log_fields). */
enum kms_log_format { KMS_LOG_TEXT = 0, KMS_LOG_JSON = 1 };

void kms_log_set_level(enum kms_log_level lvl);
enum kms_log_level kms_log_get_level(void);
void kms_log_set_format(enum kms_log_format f);
enum kms_log_format kms_log_get_format(void);
/* "error" | "warn" | "info" | "debug" -> level; -1 when unknown. */
int kms_log_level_parse(const char *s);
/*
 * One record to stderr, written with one write(2). Text:
 *   "2026-11-22T07:40:00.123Z LEVEL component: message"
 * JSON:
 *   {"ts":"2026-11-22T07:40:00.123Z","level":"info","component":"kmsd","msg":"message"}
 * Thread-safe.
 */
void kms_log(enum kms_log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kms_vlog(enum kms_log_level lvl, const char *component, const char *fmt, va_list ap);

/* A named value of a structured record: text when `str` is non-NULL,
 * else the integer `num`. */
typedef struct kms_log_field {
    const char *key;
    const char *str;
    int64_t num;
} kms_log_field_t;
/* kms_log with fields: the JSON format adds each as a member after "msg"
 * (keys must be plain names that are not ts/level/component/msg); the
 * text format prints the message only, which should already say what the
 * fields hold. */
void kms_log_fields(enum kms_log_level lvl, const char *component, const kms_log_field_t *fields,
                    size_t n_fields, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define KMS_LOG_ENABLED(lvl) ((int)(lvl) <= (int)kms_log_get_level())

/* ------------------------------------------------------------------ time */
/* Wall clock in microseconds since the epoch, and a monotonic clock in ns. */
int64_t kms_now_us(void);
uint64_t kms_mono_ns(void);

#define KMS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif /* KMS_COMMON_H */
