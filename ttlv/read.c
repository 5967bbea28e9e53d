/*
 * ttlv/read.c: the strict TTLV decoder and the framing helper.
 *
 * Bytes in, a tree out, all from one arena. Every field goes through a
 * bounded kms_reader_t; a Structure's children are parsed from a
 * sub-reader clipped to its declared length, so a child can never read
 * past its parent. Anything the specification does not allow is refused
 * with an error naming what was wrong and the absolute byte offset of the
 * offending field: unknown types, wrong fixed lengths, non-zero padding,
 * Booleans other than 0/1, lengths past the input or the parent, invalid
 * UTF-8, tags outside 0x42xxxx/0x54xxxx, trailing bytes, too deep or too
 * many items. The input is never written.
 *
 * One exception to the tag rule: inside a Vendor Extension (0x42009C) the
 * content is vendor-defined, so any tag is accepted there (the KMIP 1.1
 * test cases 7.1/7.2 carry tag 0x014242 in one, and a server must be able
 * to read the message to answer "Unsupported Extension" or ignore it).
 * Every other rule still applies inside it.
 *
 * It deliberately does not check KMIP semantics (which tag may appear
 * where, whether a tag's type matches the tables): that is kmip/'s job,
 * and unknown or extension tags must still decode.
 */
#include <string.h>

#include "ttlv/ttlv_int.h"

struct dec {
    kms_arena_t *arena;
    size_t max_depth;
    size_t max_items;
    size_t items;
    kms_error_t *err;
};

int ttlv_fixed_len(enum ttlv_type t)
{
    switch (t) {
    case TTLV_INTEGER:
    case TTLV_ENUMERATION:
    case TTLV_INTERVAL:
        return 4;
    case TTLV_LONG_INTEGER:
    case TTLV_BOOLEAN:
    case TTLV_DATE_TIME:
        return 8;
    default:
        return -1;
    }
}

static bool type_valid(uint8_t t) { return t >= TTLV_STRUCTURE && t <= TTLV_INTERVAL; }

size_t ttlv_utf8_check(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == 0)
            return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t min, cp;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1, min = 0x80, cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2, min = 0x800, cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return i; /* continuation byte, overlong C0/C1, or F5..FF */
        }
        if (n - i - 1 < need)
            return i;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return i + k;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += need + 1;
    }
    return n;
}

ttlv_item_t *ttlv_item_alloc(kms_arena_t *a, ttlv_item_t *parent, uint32_t tag, enum ttlv_type type)
{
    ttlv_item_t *it = kms_arena_alloc(a, sizeof(*it));
    if (!it)
        return NULL;
    it->tag = tag;
    it->type = type;
    if (parent)
        ttlv_append(parent, it);
    return it;
}

static int decode_items(struct dec *d, kms_reader_t *r, ttlv_item_t *parent, size_t depth,
                        bool vendor);

/* Checks that the pad bytes p[0..n) are zero; `off` is the offset of p[0]. */
static int check_padding(struct dec *d, const uint8_t *p, size_t n, size_t off, uint32_t tag,
                         enum ttlv_type type)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return kms_error_set_at(d->err, KMS_ERR_PROTO, off + i, "non-zero padding in %s 0x%06X",
                                    ttlv_type_name(type), (unsigned)tag);
    return 0;
}

/* Decode one item at r's position and append it to parent (NULL for the root). */
static int decode_one(struct dec *d, kms_reader_t *r, ttlv_item_t *parent, size_t depth,
                      bool vendor, ttlv_item_t **out)
{
    size_t off = kms_reader_offset(r);
    const uint8_t *h;
    if (kms_reader_bytes(r, 8, &h) != 0) {
        if (parent)
            return kms_error_set_at(d->err, KMS_ERR_PROTO, off,
                                    "truncated item header (%zu bytes left in parent 0x%06X)",
                                    kms_reader_left(r), (unsigned)parent->tag);
        return kms_error_set_at(d->err, KMS_ERR_PROTO, off, "truncated item header (%zu bytes)",
                                kms_reader_left(r));
    }
    uint32_t tag = ((uint32_t)h[0] << 16) | ((uint32_t)h[1] << 8) | h[2];
    uint8_t type = h[3];
    uint32_t len = kms_be32(h + 4);

    if (h[0] != 0x42 && h[0] != 0x54 && !vendor)
        return kms_error_set_at(d->err, KMS_ERR_PROTO, off,
                                "tag 0x%06X is neither 0x42xxxx nor 0x54xxxx", (unsigned)tag);
    if (!type_valid(type))
        return kms_error_set_at(d->err, KMS_ERR_PROTO, off + 3,
                                "unknown item type 0x%02X in tag 0x%06X", type, (unsigned)tag);
    if (depth > d->max_depth)
        return kms_error_set_at(d->err, KMS_ERR_LIMIT, off, "nesting deeper than %zu at tag 0x%06X",
                                d->max_depth, (unsigned)tag);
    if (d->items >= d->max_items)
        return kms_error_set_at(d->err, KMS_ERR_LIMIT, off, "more than %zu items", d->max_items);
    enum ttlv_type t = (enum ttlv_type)type;
    int fixed = ttlv_fixed_len(t);
    if (fixed >= 0 && len != (uint32_t)fixed)
        return kms_error_set_at(d->err, KMS_ERR_PROTO, off + 4,
                                "%s 0x%06X has length %u, must be %d", ttlv_type_name(t),
                                (unsigned)tag, (unsigned)len, fixed);
    if ((t == TTLV_BIG_INTEGER || t == TTLV_STRUCTURE) && len % 8 != 0)
        return kms_error_set_at(d->err, KMS_ERR_PROTO, off + 4,
                                "%s 0x%06X has length %u, not a multiple of 8", ttlv_type_name(t),
                                (unsigned)tag, (unsigned)len);
    uint64_t padded = ttlv_padded(len);
    if (padded > kms_reader_left(r)) {
        if (parent)
            return kms_error_set_at(
                d->err, KMS_ERR_PROTO, off + 4,
                "length %u of 0x%06X overruns its parent 0x%06X (%zu bytes left)", (unsigned)len,
                (unsigned)tag, (unsigned)parent->tag, kms_reader_left(r));
        return kms_error_set_at(d->err, KMS_ERR_PROTO, off + 4,
                                "length %u of 0x%06X runs past the input (%zu bytes left)",
                                (unsigned)len, (unsigned)tag, kms_reader_left(r));
    }

    ttlv_item_t *it = ttlv_item_alloc(d->arena, NULL, tag, t);
    if (!it)
        return KMS_ERR_NOMEM;
    it->offset = off;
    d->items++;

    size_t voff = off + 8;
    const uint8_t *v = NULL;
    int rc;
    if (t == TTLV_STRUCTURE) {
        kms_reader_t sub;
        rc = kms_reader_sub(r, len, &sub);
        if (rc)
            return rc; /* cannot happen: checked above */
        rc = decode_items(d, &sub, it, depth + 1, vendor || tag == KMIP_TAG_VENDOR_EXTENSION);
        if (rc)
            return rc;
        goto done;
    }
    rc = kms_reader_bytes(r, (size_t)padded, &v);
    if (rc)
        return rc;
    rc = check_padding(d, v + len, (size_t)padded - len, voff + len, tag, t);
    if (rc)
        return rc;

    switch (t) {
    case TTLV_INTEGER:
    case TTLV_ENUMERATION:
    case TTLV_INTERVAL:
        it->v.i32 = (int32_t)kms_be32(v);
        break;
    case TTLV_LONG_INTEGER:
    case TTLV_DATE_TIME:
        it->v.i64 = (int64_t)kms_be64(v);
        break;
    case TTLV_BOOLEAN: {
        uint64_t b = kms_be64(v);
        if (b > 1)
            return kms_error_set_at(d->err, KMS_ERR_PROTO, voff,
                                    "Boolean 0x%06X is 0x%016llX, must be 0 or 1", (unsigned)tag,
                                    (unsigned long long)b);
        it->v.b = b == 1;
        break;
    }
    case TTLV_TEXT_STRING: {
        size_t bad = ttlv_utf8_check(v, len);
        if (bad != len)
            return kms_error_set_at(d->err, KMS_ERR_PROTO, voff + bad,
                                    "invalid UTF-8 (byte 0x%02X) in Text String 0x%06X", v[bad],
                                    (unsigned)tag);
        it->v.bytes.ptr = (const uint8_t *)kms_arena_strndup(d->arena, (const char *)v, len);
        if (!it->v.bytes.ptr)
            return KMS_ERR_NOMEM;
        it->v.bytes.len = len;
        break;
    }
    case TTLV_BYTE_STRING:
    case TTLV_BIG_INTEGER:
        /* One spare zero byte after the value, as for text, so that an
         * empty value still has a non-NULL pointer. */
        {
            uint8_t *c = kms_arena_alloc(d->arena, (size_t)len + 1);
            if (!c)
                return KMS_ERR_NOMEM;
            memcpy(c, v, len);
            it->v.bytes.ptr = c;
            it->v.bytes.len = len;
        }
        break;
    default:
        return KMS_ERR_INTERNAL;
    }
done:
    if (parent)
        ttlv_append(parent, it);
    *out = it;
    return 0;
}

static int decode_items(struct dec *d, kms_reader_t *r, ttlv_item_t *parent, size_t depth,
                        bool vendor)
{
    while (kms_reader_left(r) > 0) {
        ttlv_item_t *child;
        int rc = decode_one(d, r, parent, depth, vendor, &child);
        if (rc)
            return rc;
    }
    return 0;
}

int ttlv_decode_begin(const void *in, size_t len, const ttlv_limits_t *lim, kms_arena_t *arena,
                      ttlv_item_t **root_out, const char *what, size_t *depth_out, size_t *items_out,
                      kms_error_t *err)
{
    size_t max_size = lim && lim->max_size ? lim->max_size : TTLV_DEFAULT_MAX_SIZE;
    *depth_out = lim && lim->max_depth ? lim->max_depth : TTLV_DEFAULT_MAX_DEPTH;
    if (*depth_out > TTLV_HARD_MAX_DEPTH)
        *depth_out = TTLV_HARD_MAX_DEPTH;
    *items_out = lim && lim->max_items ? lim->max_items : TTLV_DEFAULT_MAX_ITEMS;
    kms_error_clear(err);
    if (!arena || !root_out || (!in && len))
        return kms_error_set_at(err, KMS_ERR_INVAL, 0, "invalid arguments");
    *root_out = NULL;
    if (len > max_size)
        return kms_error_set_at(err, KMS_ERR_LIMIT, max_size, "%s message of %zu bytes is over %zu",
                                what, len, max_size);
    return 0;
}

int ttlv_decode(const uint8_t *buf, size_t len, const ttlv_limits_t *lim, kms_arena_t *arena,
                ttlv_item_t **root_out, kms_error_t *err)
{
    struct dec d = {.arena = arena, .err = err};
    int rc = ttlv_decode_begin(buf, len, lim, arena, root_out, "TTLV", &d.max_depth, &d.max_items, err);
    if (rc)
        return rc;
    kms_reader_t r;
    kms_reader_init(&r, buf, len);
    ttlv_item_t *root = NULL;
    rc = decode_one(&d, &r, NULL, 1, false, &root);
    if (rc == KMS_ERR_NOMEM)
        return kms_error_set_at(err, rc, kms_reader_offset(&r), "out of memory (arena limit)");
    if (rc)
        return rc;
    if (kms_reader_left(&r) != 0)
        return kms_error_set_at(err, KMS_ERR_PROTO, kms_reader_offset(&r),
                                "%zu trailing bytes after the top-level item", kms_reader_left(&r));
    *root_out = root;
    return 0;
}

int ttlv_frame_need(const uint8_t *hdr, size_t have, size_t max_total, size_t *total_out)
{
    if (!hdr || have < 8)
        return KMS_ERR_PARTIAL;
    if (hdr[0] != 0x42 || hdr[3] != TTLV_STRUCTURE)
        return KMS_ERR_PROTO;
    uint64_t total = 8 + (uint64_t)kms_be32(hdr + 4);
    if (total > max_total)
        return KMS_ERR_LIMIT;
    if (total_out)
        *total_out = (size_t)total;
    return 0;
}
