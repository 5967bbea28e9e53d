/*
 * ttlv/write.c: tree builders and the encoder.
 *
 * Builders allocate items (and copies of their values) from an arena and
 * append them to a parent. The encoder writes a tree into a capped
 * kms_buf_t in one pass: each Structure's header is written with a zero
 * length that is back-patched once its children are out, so no size pass
 * is needed. On any failure the output buffer is restored to its previous
 * length, so a caller never sees half a message.
 *
 * It deliberately does not check that a tag's type matches the tables:
 * kmip/ builds only what it means, and tests need to build odd items.
 * It does refuse what cannot be encoded at all (TTLV_ANY, a Big Integer
 * whose length is not a multiple of 8, a value longer than 4 GiB).
 */
#include <string.h>

#include "ttlv/ttlv_int.h"

ttlv_item_t *ttlv_new_struct(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag)
{
    return ttlv_item_alloc(a, parent, tag, TTLV_STRUCTURE);
}

ttlv_item_t *ttlv_new_int(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, int32_t v)
{
    ttlv_item_t *it = ttlv_item_alloc(a, parent, tag, TTLV_INTEGER);
    if (it)
        it->v.i32 = v;
    return it;
}

ttlv_item_t *ttlv_new_long(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, int64_t v)
{
    ttlv_item_t *it = ttlv_item_alloc(a, parent, tag, TTLV_LONG_INTEGER);
    if (it)
        it->v.i64 = v;
    return it;
}

ttlv_item_t *ttlv_new_enum(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, uint32_t v)
{
    ttlv_item_t *it = ttlv_item_alloc(a, parent, tag, TTLV_ENUMERATION);
    if (it)
        it->v.i32 = (int32_t)v;
    return it;
}

ttlv_item_t *ttlv_new_bool(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, bool v)
{
    ttlv_item_t *it = ttlv_item_alloc(a, parent, tag, TTLV_BOOLEAN);
    if (it)
        it->v.b = v;
    return it;
}

/* Copy n bytes plus a terminating NUL into the arena; the item is linked
 * only once the copy succeeded, so a NOMEM leaves the parent unchanged. */
static ttlv_item_t *new_blob(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, enum ttlv_type t,
                             const void *p, size_t n)
{
    if (n == SIZE_MAX || (n && !p))
        return NULL;
    uint8_t *c = kms_arena_alloc(a, n + 1);
    if (!c)
        return NULL;
    if (n)
        memcpy(c, p, n);
    ttlv_item_t *it = ttlv_item_alloc(a, NULL, tag, t);
    if (!it)
        return NULL;
    it->v.bytes.ptr = c;
    it->v.bytes.len = n;
    if (parent)
        ttlv_append(parent, it);
    return it;
}

ttlv_item_t *ttlv_new_text(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, const char *s, size_t n)
{
    return new_blob(a, parent, tag, TTLV_TEXT_STRING, s, n);
}

ttlv_item_t *ttlv_new_textz(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, const char *s)
{
    if (!s)
        return NULL;
    return new_blob(a, parent, tag, TTLV_TEXT_STRING, s, strlen(s));
}

ttlv_item_t *ttlv_new_bytes(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, const void *p, size_t n)
{
    return new_blob(a, parent, tag, TTLV_BYTE_STRING, p, n);
}

ttlv_item_t *ttlv_new_bigint(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, const void *p, size_t n)
{
    return new_blob(a, parent, tag, TTLV_BIG_INTEGER, p, n);
}

ttlv_item_t *ttlv_new_datetime(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, int64_t secs)
{
    ttlv_item_t *it = ttlv_item_alloc(a, parent, tag, TTLV_DATE_TIME);
    if (it)
        it->v.i64 = secs;
    return it;
}

ttlv_item_t *ttlv_new_interval(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, uint32_t secs)
{
    ttlv_item_t *it = ttlv_item_alloc(a, parent, tag, TTLV_INTERVAL);
    if (it)
        it->v.i32 = (int32_t)secs;
    return it;
}

/* ---------------------------------------------------------------- encode */

static const uint8_t zeros[8];

static int put_header(kms_buf_t *out, uint32_t tag, enum ttlv_type t, uint32_t len)
{
    uint8_t h[8];
    h[0] = (uint8_t)(tag >> 16);
    h[1] = (uint8_t)(tag >> 8);
    h[2] = (uint8_t)tag;
    h[3] = (uint8_t)t;
    kms_put_be32(h + 4, len);
    return kms_buf_append(out, h, 8);
}

static int encode_item(const ttlv_item_t *it, kms_buf_t *out, size_t depth)
{
    int rc;
    uint8_t v[8];
    if (it->tag > 0xFFFFFF || depth > TTLV_HARD_MAX_DEPTH)
        return KMS_ERR_INVAL;
    switch (it->type) {
    case TTLV_STRUCTURE: {
        size_t start = out->len;
        rc = put_header(out, it->tag, it->type, 0);
        if (rc)
            return rc;
        for (const ttlv_item_t *c = it->first; c; c = c->next) {
            rc = encode_item(c, out, depth + 1);
            if (rc)
                return rc;
        }
        size_t body = out->len - start - 8;
        if (body > UINT32_MAX)
            return KMS_ERR_LIMIT;
        kms_put_be32(out->data + start + 4, (uint32_t)body);
        return 0;
    }
    case TTLV_INTEGER:
    case TTLV_ENUMERATION:
    case TTLV_INTERVAL:
        kms_put_be32(v, (uint32_t)it->v.i32);
        memset(v + 4, 0, 4);
        rc = put_header(out, it->tag, it->type, 4);
        return rc ? rc : kms_buf_append(out, v, 8);
    case TTLV_LONG_INTEGER:
    case TTLV_DATE_TIME:
        kms_put_be64(v, (uint64_t)it->v.i64);
        rc = put_header(out, it->tag, it->type, 8);
        return rc ? rc : kms_buf_append(out, v, 8);
    case TTLV_BOOLEAN:
        kms_put_be64(v, it->v.b ? 1 : 0);
        rc = put_header(out, it->tag, it->type, 8);
        return rc ? rc : kms_buf_append(out, v, 8);
    case TTLV_BIG_INTEGER:
    case TTLV_TEXT_STRING:
    case TTLV_BYTE_STRING: {
        size_t n = it->v.bytes.len;
        if (n > UINT32_MAX - 7 || (n && !it->v.bytes.ptr))
            return KMS_ERR_INVAL;
        if (it->type == TTLV_BIG_INTEGER && n % 8 != 0)
            return KMS_ERR_INVAL;
        size_t pad = (size_t)ttlv_padded(n) - n;
        rc = kms_buf_reserve(out, 8 + n + pad);
        if (rc)
            return rc;
        rc = put_header(out, it->tag, it->type, (uint32_t)n);
        if (rc == 0)
            rc = kms_buf_append(out, it->v.bytes.ptr, n);
        if (rc == 0)
            rc = kms_buf_append(out, zeros, pad);
        return rc;
    }
    default:
        return KMS_ERR_INVAL;
    }
}

int ttlv_encode(const ttlv_item_t *root, kms_buf_t *out)
{
    if (!root || !out)
        return KMS_ERR_INVAL;
    size_t before = out->len;
    int rc = encode_item(root, out, 1);
    if (rc) {
        /* Do not leave half an encoding (which may hold key material). */
        if (out->data && out->len > before)
            kms_wipe(out->data + before, out->len - before);
        out->len = before;
    }
    return rc;
}

static size_t add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

size_t ttlv_encoded_size(const ttlv_item_t *root)
{
    if (!root)
        return 0;
    switch (root->type) {
    case TTLV_STRUCTURE: {
        size_t n = 8;
        for (const ttlv_item_t *c = root->first; c; c = c->next)
            n = add_sat(n, ttlv_encoded_size(c));
        return n;
    }
    case TTLV_BIG_INTEGER:
    case TTLV_TEXT_STRING:
    case TTLV_BYTE_STRING:
        if (root->v.bytes.len > SIZE_MAX - 16)
            return SIZE_MAX;
        return 8 + (size_t)ttlv_padded(root->v.bytes.len);
    default:
        return 16;
    }
}
