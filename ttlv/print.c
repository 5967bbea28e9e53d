/*
 * ttlv/print.c: the human-readable form of a tree, as in the KMIP 1.1
 * test-case document. One item per line, two spaces of indent per level:
 *
 *   Tag: <name> (0xTTTTTT), Type: <type name> (0xTT), Data: <value>
 *
 * Per-type Data formats:
 *   Structure     nothing after "Data:" (children follow), or "null" when empty
 *   Integer       0x0000000C (12); for Cryptographic Usage Mask and Storage
 *                 Status Mask the bits by name: 0x0000000C (Encrypt, Decrypt)
 *                 (bits with no name are listed in hex)
 *   Long Integer  0x00000000000001F4 (500)
 *   Big Integer   upper-case hex of all bytes and the signed decimal value:
 *                 0000000000010001 (65537); hex only above 1024 bytes
 *                 (the decimal conversion is quadratic)
 *   Enumeration   0x00000003 (AES), or 0x00000003 alone when the value has no name
 *                 (an Attribute Value is named after its sibling Attribute Name,
 *                 as the document does: "Cryptographic Algorithm" -> (AES))
 *   Boolean       TRUE or FALSE
 *   Text String   as-is; when the text is empty, has control characters,
 *                 leading/trailing blanks, starts with a double quote or is
 *                 "<redacted>", it
 *                 is printed quoted with C escapes ("a\nb", \" \\ \xNN)
 *   Byte String   upper-case hex (nothing when empty)
 *   Date-Time     0x000000004F9A54E5 (Fri Apr 27 08:12:21 UTC 2012), always UTC
 *   Interval      0x00000000 (seconds, hex only, as in the document)
 * Tags not in the tables print as "Unknown tag (0x540001)".
 * With redact, values of secret-bearing tags (Key Material and everything
 * under it, Password, private key parts, ...) print as "<redacted>".
 *
 * It deliberately prints every item it is given, lines of any length, and
 * no byte offsets: it is for people and for `kmsctl ttlv`, not for logs of
 * untrusted peers (those must redact).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ttlv/ttlv_int.h"

/* True when the text can be printed raw and read back unchanged. */
static bool text_is_plain(const uint8_t *p, size_t n)
{
    if (n == 0 || p[0] == '"' || p[0] == ' ' || p[n - 1] == ' ')
        return false;
    if (n == 10 && memcmp(p, "<redacted>", 10) == 0) /* would read back as a redaction */
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == 0x7F)
            return false;
    return true;
}

static int put_quoted(kms_buf_t *out, const uint8_t *p, size_t n)
{
    int rc = kms_buf_append_byte(out, '"');
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\')
            rc = kms_buf_printf(out, "\\%c", c);
        else if (c == '\n')
            rc = kms_buf_append(out, "\\n", 2);
        else if (c == '\t')
            rc = kms_buf_append(out, "\\t", 2);
        else if (c == '\r')
            rc = kms_buf_append(out, "\\r", 2);
        else if (c < 0x20 || c == 0x7F)
            rc = kms_buf_printf(out, "\\x%02X", c);
        else
            rc = kms_buf_append_byte(out, c);
    }
    return rc ? rc : kms_buf_append_byte(out, '"');
}

static int put_mask(kms_buf_t *out, uint32_t tag, uint32_t v)
{
    int rc = kms_buf_printf(out, "0x%08X (", v);
    bool first = true;
    uint32_t rest = v;
    for (int bit = 0; rc == 0 && bit < 32; bit++) {
        uint32_t m = (uint32_t)1 << bit;
        const char *name = (v & m) ? ttlv_enum_name(tag, m) : NULL;
        if (!name)
            continue;
        rc = kms_buf_printf(out, "%s%s", first ? "" : ", ", name);
        first = false;
        rest &= ~m;
    }
    if (rc == 0 && (rest || first))
        rc = kms_buf_printf(out, "%s0x%X", first ? "" : ", ", rest);
    return rc ? rc : kms_buf_append_byte(out, ')');
}

/* Big Integers longer than this print as hex only: the decimal conversion
 * is quadratic, and the printer must stay cheap on hostile input. */
#define BIGINT_DECIMAL_MAX 1024

/*
 * Decimal form of a big-endian two's complement number. Works on a copy
 * of the magnitude in base 10^9 limbs by repeated division; n is bounded
 * by BIGINT_DECIMAL_MAX.
 */
static int put_bigint_decimal(kms_buf_t *out, const uint8_t *p, size_t n)
{
    int rc = 0;
    uint8_t mag[BIGINT_DECIMAL_MAX];
    /* 10^9 < 2^30, so each limb takes at most 30 bits: n*8/29+1 limbs is plenty */
    uint32_t dig[BIGINT_DECIMAL_MAX * 8 / 29 + 2];
    size_t nd = 0;
    bool neg = n > 0 && (p[0] & 0x80);

    memcpy(mag, p, n);
    if (neg) { /* magnitude = ~x + 1 */
        for (size_t i = 0; i < n; i++)
            mag[i] = (uint8_t)~mag[i];
        for (size_t i = n; i-- > 0;)
            if (++mag[i] != 0)
                break;
    }
    /* schoolbook: for each byte, dig = dig * 256 + byte, in base 10^9 */
    for (size_t i = 0; i < n; i++) {
        uint64_t carry = mag[i];
        for (size_t k = 0; k < nd; k++) {
            uint64_t v = (uint64_t)dig[k] * 256 + carry;
            dig[k] = (uint32_t)(v % 1000000000u);
            carry = v / 1000000000u;
        }
        while (carry) {
            dig[nd++] = (uint32_t)(carry % 1000000000u);
            carry /= 1000000000u;
        }
    }
    kms_wipe(mag, n);
    if (neg)
        rc = kms_buf_append_byte(out, '-');
    if (rc == 0)
        rc = kms_buf_printf(out, "%u", nd ? dig[nd - 1] : 0u);
    for (size_t k = nd > 0 ? nd - 1 : 0; rc == 0 && k-- > 0;)
        rc = kms_buf_printf(out, "%09u", dig[k]);
    kms_wipe(dig, nd * sizeof(dig[0]));
    return rc;
}

static int put_value(kms_buf_t *out, const ttlv_item_t *it)
{
    uint32_t ntag = ttlv_naming_tag(it);
    switch (it->type) {
    case TTLV_INTEGER:
        if (ntag == KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK || ntag == KMIP_TAG_STORAGE_STATUS_MASK)
            return put_mask(out, ntag, ttlv_u32(it));
        return kms_buf_printf(out, "0x%08X (%d)", ttlv_u32(it), it->v.i32);
    case TTLV_LONG_INTEGER:
        return kms_buf_printf(out, "0x%016llX (%lld)", (unsigned long long)it->v.i64,
                              (long long)it->v.i64);
    case TTLV_BIG_INTEGER: {
        int rc = ttlv_put_hex(out, it->v.bytes.ptr, it->v.bytes.len, true);
        if (rc == 0 && it->v.bytes.len > 0 && it->v.bytes.len <= BIGINT_DECIMAL_MAX) {
            rc = kms_buf_append(out, " (", 2);
            if (rc == 0)
                rc = put_bigint_decimal(out, it->v.bytes.ptr, it->v.bytes.len);
            if (rc == 0)
                rc = kms_buf_append_byte(out, ')');
        }
        return rc;
    }
    case TTLV_ENUMERATION: {
        const char *name = ttlv_enum_name(ntag, ttlv_u32(it));
        if (name)
            return kms_buf_printf(out, "0x%08X (%s)", ttlv_u32(it), name);
        return kms_buf_printf(out, "0x%08X", ttlv_u32(it));
    }
    case TTLV_BOOLEAN:
        return kms_buf_printf(out, "%s", it->v.b ? "TRUE" : "FALSE");
    case TTLV_TEXT_STRING:
        if (text_is_plain(it->v.bytes.ptr, it->v.bytes.len))
            return kms_buf_append(out, it->v.bytes.ptr, it->v.bytes.len);
        return put_quoted(out, it->v.bytes.ptr, it->v.bytes.len);
    case TTLV_BYTE_STRING:
        return ttlv_put_hex(out, it->v.bytes.ptr, it->v.bytes.len, true);
    case TTLV_DATE_TIME: {
        struct tm tm;
        char when[64];
        time_t t = (time_t)it->v.i64;
        int rc = kms_buf_printf(out, "0x%016llX", (unsigned long long)it->v.i64);
        if (rc == 0 && (int64_t)t == it->v.i64 && gmtime_r(&t, &tm) &&
            strftime(when, sizeof(when), "%a %b %d %H:%M:%S UTC %Y", &tm) > 0)
            rc = kms_buf_printf(out, " (%s)", when);
        return rc;
    }
    case TTLV_INTERVAL:
        return kms_buf_printf(out, "0x%08X", ttlv_u32(it)); /* as the document does */
    default:
        return KMS_ERR_INVAL;
    }
}

static int print_item(const ttlv_item_t *it, size_t depth, bool redact, bool secret, kms_buf_t *out)
{
    int rc = 0;
    if (depth > TTLV_HARD_MAX_DEPTH)
        return KMS_ERR_LIMIT;
    const char *tname = ttlv_type_name(it->type);
    if (!tname)
        return KMS_ERR_INVAL;
    for (size_t i = 0; rc == 0 && i < depth; i++)
        rc = kms_buf_append(out, "  ", 2);
    if (rc)
        return rc;
    const char *name = ttlv_tag_name(it->tag);
    rc = kms_buf_printf(out, "Tag: %s (0x%06X), Type: %s (0x%02X), Data:", name ? name : "Unknown tag",
                        (unsigned)it->tag, tname, (unsigned)it->type);
    if (rc)
        return rc;
    secret = secret || (redact && ttlv_tag_is_secret(it->tag));
    if (it->type == TTLV_STRUCTURE) {
        rc = kms_buf_append(out, it->first ? "\n" : " null\n", it->first ? 1 : 6);
        for (const ttlv_item_t *c = it->first; rc == 0 && c; c = c->next)
            rc = print_item(c, depth + 1, redact, secret, out);
        return rc;
    }
    bool empty = (it->type == TTLV_BYTE_STRING) && it->v.bytes.len == 0;
    if (!empty)
        rc = kms_buf_append_byte(out, ' ');
    if (rc == 0)
        rc = secret ? kms_buf_append(out, "<redacted>", 10) : put_value(out, it);
    return rc ? rc : kms_buf_append_byte(out, '\n');
}

int ttlv_print(const ttlv_item_t *root, bool redact, kms_buf_t *out)
{
    if (!root || !out)
        return KMS_ERR_INVAL;
    size_t before = out->len;
    int rc = print_item(root, 0, redact, false, out);
    if (rc) {
        if (out->data && out->len > before)
            kms_wipe(out->data + before, out->len - before);
        out->len = before;
    }
    return rc;
}
