/*
 * ttlv/form.c: value text shared by the JSON and XML encodings (and the
 * number and hex readers the printed form's parser uses too).
 *
 * One item value <-> one scalar in the form's conventions (ttlv_fval_*):
 *   Integer      number; Cryptographic Usage Mask and Storage Status Mask
 *                as bit names joined by '|' (JSON) or ' ' (XML), bits with
 *                no name as a "0x0000XXXX" token; any Integer may also be
 *                read from "0x" hex (and in XML from decimal text)
 *   Long Integer number (JSON: only while |v| < 2^52, which a JSON double
 *                holds exactly; hex "0x" + 16 digits beyond); XML decimal
 *   Big Integer  hex of all bytes, two's complement big-endian: "0x..." in
 *                JSON, bare in XML; read with or without "0x", or from a
 *                JSON number; shorter hex is sign-extended to 8-byte blocks
 *   Enumeration  normalized value name, or "0x" + 8 hex digits when the
 *                value has no name (or the tag no table); a JSON number is
 *                read too. An Attribute Value is named after its sibling
 *                Attribute Name ("Cryptographic Algorithm" -> "AES").
 *   Boolean      true / false (XML also 1 / 0); "0x000...0" / "0x000...1"
 *   Text String  the text
 *   Byte String  hex, no prefix (lower case out, either case in)
 *   Date-Time    ISO 8601 "YYYY-MM-DDThh:mm:ss+00:00" (UTC) for years
 *                0001-9999, "0x" + 16 hex digits outside them; read with
 *                "Z" or any +-hh:mm offset, fractions only if all zero
 *   Interval     number (seconds), or "0x" hex
 * The wiping allocator for the JSON and XML libraries lives here too.
 *
 * It deliberately checks only what a value can hold, not KMIP semantics
 * (which tag may carry which type): that is kmip/'s job, as for TTLV.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ttlv/ttlv_int.h"

/* ------------------------------------------------------- numbers and hex */
int ttlv_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20); /* 'A'-'F' to 'a'-'f'; nothing else lands there */
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool ttlv_form_hexnum(const char *s, size_t n, unsigned maxdig, uint64_t *v_out)
{
    if (n < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || n - 2 > maxdig)
        return false;
    uint64_t u = 0;
    for (size_t i = 2; i < n; i++) {
        int h = ttlv_hexval(s[i]);
        if (h < 0)
            return false;
        u = (u << 4) | (uint64_t)h;
    }
    *v_out = u;
    return true;
}

bool ttlv_form_decnum(const char *s, size_t n, int64_t min, int64_t max, int64_t *v_out)
{
    size_t i = 0;
    bool neg = false;
    if (n && s[0] == '-')
        neg = true, i = 1;
    if (i >= n || n - i > 19)
        return false;
    uint64_t u = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        u = u * 10 + (uint64_t)(s[i] - '0');
    }
    int64_t v;
    if (neg) {
        if (u > (uint64_t)INT64_MAX + 1)
            return false;
        v = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX)
            return false;
        v = (int64_t)u;
    }
    if (v < min || v > max)
        return false;
    *v_out = v;
    return true;
}

int ttlv_form_hexbytes(kms_arena_t *a, const char *s, size_t n, uint8_t **out, size_t *n_out)
{
    if (n % 2)
        return KMS_ERR_PROTO;
    uint8_t *b = kms_arena_alloc(a, n / 2 + 1);
    if (!b)
        return KMS_ERR_NOMEM;
    for (size_t i = 0; i < n; i += 2) {
        int h = ttlv_hexval(s[i]), l = ttlv_hexval(s[i + 1]);
        if (h < 0 || l < 0)
            return KMS_ERR_PROTO;
        b[i / 2] = (uint8_t)(h << 4 | l);
    }
    *out = b;
    *n_out = n / 2;
    return 0;
}

int ttlv_bigint_blocks(kms_arena_t *a, uint8_t **b, size_t *n)
{
    if (*n % 8 == 0)
        return 0;
    size_t pad = 8 - *n % 8;
    uint8_t *w = kms_arena_alloc(a, *n + pad + 1);
    if (!w)
        return KMS_ERR_NOMEM;
    memset(w, *n && ((*b)[0] & 0x80) ? 0xFF : 0x00, pad);
    memcpy(w + pad, *b, *n);
    kms_wipe(*b, *n);
    *b = w;
    *n += pad;
    return 0;
}

int ttlv_put_hex(kms_buf_t *out, const uint8_t *p, size_t n, bool upper)
{
    const char *hx = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    if (n > (SIZE_MAX - 1) / 2)
        return KMS_ERR_LIMIT;
    int rc = kms_buf_reserve(out, 2 * n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        out->data[out->len++] = (uint8_t)hx[p[i] >> 4];
        out->data[out->len++] = (uint8_t)hx[p[i] & 15];
    }
    return 0;
}

/* --------------------------------------------------------------- dates */
/* Days since 1970-01-01 of a proleptic Gregorian date, and back (the
 * civil-from-days algorithms of H. Hinnant, exact for any int64 day). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the span ISO 8601's
 * four-digit years cover. */
#define ISO_MIN_SECS (-62135596800LL)
#define ISO_MAX_SECS 253402300799LL

static int put_date(kms_buf_t *out, int64_t secs)
{
    if (secs < ISO_MIN_SECS || secs > ISO_MAX_SECS)
        return kms_buf_printf(out, "0x%016llX", (unsigned long long)secs);
    int64_t days = secs / 86400, rem = secs % 86400, y;
    if (rem < 0)
        rem += 86400, days--;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    return kms_buf_printf(out, "%04d-%02d-%02dT%02d:%02d:%02d+00:00", (int)y, m, d, (int)(rem / 3600),
                          (int)(rem / 60 % 60), (int)(rem % 60));
}

/* n decimal digits at s into *v. */
static bool digits(const char *s, size_t n, int *v)
{
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

static bool parse_date(const char *s, size_t n, int64_t *secs_out, const char **why)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    *why = "bad Date-Time (want ISO 8601 \"YYYY-MM-DDThh:mm:ss+00:00\" or 0x + 16 hex digits)";
    if (n < 19 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return false;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        size_t f = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (s[i] != '0') {
                *why = "Date-Time has fractions of a second, which TTLV cannot carry";
                return false;
            }
            i++;
        }
        if (i == f)
            return false;
    }
    int sign = 0;
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z'))
        sign = 0;
    else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2, &oh) &&
             s[i + 3] == ':' && digits(s + i + 4, 2, &om))
        sign = s[i] == '+' ? 1 : -1;
    else {
        *why = "Date-Time needs a zone: Z or +hh:mm";
        return false;
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
        mi > 59 || sec > 59 || oh > 23 || om > 59) {
        *why = "Date-Time field out of range";
        return false;
    }
    *secs_out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
                sign * (oh * 3600 + om * 60);
    return true;
}

/* --------------------------------------------------------------- masks */
static bool is_mask_tag(uint32_t tag)
{
    return tag == KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK || tag == KMIP_TAG_STORAGE_STATUS_MASK;
}

/* Names of the set bits, lowest first, then any unnamed rest in hex. */
static int put_mask(kms_buf_t *out, uint32_t tag, uint32_t v, char sep)
{
    char nb[TTLV_NORM_MAX];
    uint32_t rest = v;
    int rc = 0;
    for (int bit = 0; rc == 0 && bit < 32; bit++) {
        uint32_t m = (uint32_t)1 << bit;
        const char *name = (v & m) ? ttlv_enum_norm(tag, m, nb) : NULL;
        if (!name)
            continue;
        if (out->len)
            rc = kms_buf_append_byte(out, (uint8_t)sep);
        if (rc == 0)
            rc = kms_buf_append(out, name, strlen(name));
        rest &= ~m;
    }
    if (rc == 0 && rest) {
        if (out->len)
            rc = kms_buf_append_byte(out, (uint8_t)sep);
        if (rc == 0)
            rc = kms_buf_printf(out, "0x%08X", rest);
    }
    return rc;
}

static bool is_sep(char c, enum ttlv_form f)
{
    return c == '|' || (f == TTLV_FORM_XML && (c == ' ' || c == '\t' || c == '\n' || c == '\r'));
}

/* Tokens of mask bit names and hex, OR'ed together; tag is a mask tag.
 * JSON joins them by single '|'s, XML by any run of whitespace and '|'. */
static bool parse_mask(uint32_t tag, const char *s, size_t n, enum ttlv_form f, uint32_t *v_out,
                       const char **why)
{
    uint32_t v = 0;
    size_t i = 0;
    bool any = false;
    while (i < n) {
        if (f == TTLV_FORM_XML && is_sep(s[i], f)) {
            i++; /* XML: any run of whitespace and '|' separates */
            continue;
        }
        size_t j = i;
        while (j < n && !is_sep(s[j], f))
            j++;
        if (j == i) {
            *why = "empty name in a mask (want names joined by '|')";
            return false;
        }
        uint64_t u;
        uint32_t bit;
        char name[TTLV_NORM_MAX];
        if (ttlv_form_hexnum(s + i, j - i, 8, &u)) {
            v |= (uint32_t)u;
        } else if (j - i < sizeof(name)) {
            memcpy(name, s + i, j - i);
            name[j - i] = 0;
            if (ttlv_enum_by_norm(tag, name, &bit) != 0) {
                *why = "unknown mask bit name";
                return false;
            }
            v |= bit;
        } else {
            *why = "unknown mask bit name";
            return false;
        }
        any = true;
        i = j;
        if (i < n && s[i] == '|') {
            i++;
            if (i == n) {
                *why = "empty name in a mask (want names joined by '|')";
                return false;
            }
        }
    }
    if (!any) {
        *why = "empty Integer value";
        return false;
    }
    *v_out = v;
    return true;
}

/* -------------------------------------------------------------- format */
#define JSON_EXACT_MAX ((int64_t)1 << 52)

static void fval_text(struct ttlv_fval *v, const kms_buf_t *b)
{
    v->kind = TTLV_FVAL_TEXT;
    v->s = b->data ? (const char *)b->data : "";
    v->n = b->len;
}

int ttlv_fval_format(const ttlv_item_t *it, enum ttlv_form f, kms_buf_t *sc, struct ttlv_fval *v)
{
    char nb[TTLV_NORM_MAX];
    uint32_t ntag = ttlv_naming_tag(it);
    int rc = 0;
    kms_buf_reset(sc);
    memset(v, 0, sizeof(*v));
    v->kind = TTLV_FVAL_INT;
    switch (it->type) {
    case TTLV_INTEGER:
        if (is_mask_tag(ntag) && it->v.i32 != 0) {
            rc = put_mask(sc, ntag, ttlv_u32(it), f == TTLV_FORM_JSON ? '|' : ' ');
            fval_text(v, sc);
        } else {
            v->i = it->v.i32;
        }
        return rc;
    case TTLV_LONG_INTEGER:
        if (f == TTLV_FORM_JSON && (it->v.i64 <= -JSON_EXACT_MAX || it->v.i64 >= JSON_EXACT_MAX)) {
            rc = kms_buf_printf(sc, "0x%016llX", (unsigned long long)it->v.i64);
            fval_text(v, sc);
        } else {
            v->i = it->v.i64;
        }
        return rc;
    case TTLV_INTERVAL:
        v->i = ttlv_u32(it);
        return 0;
    case TTLV_BOOLEAN:
        v->kind = TTLV_FVAL_BOOL;
        v->b = it->v.b;
        return 0;
    case TTLV_ENUMERATION: {
        const char *name = ttlv_enum_norm(ntag, ttlv_u32(it), nb);
        rc = name ? kms_buf_append(sc, name, strlen(name)) : kms_buf_printf(sc, "0x%08X", ttlv_u32(it));
        fval_text(v, sc);
        return rc;
    }
    case TTLV_BIG_INTEGER:
        if (f == TTLV_FORM_JSON)
            rc = kms_buf_append(sc, "0x", 2);
        /* fall through */
    case TTLV_BYTE_STRING:
        if (rc == 0)
            rc = ttlv_put_hex(sc, it->v.bytes.ptr, it->v.bytes.len, false);
        fval_text(v, sc);
        return rc;
    case TTLV_TEXT_STRING:
        v->kind = TTLV_FVAL_TEXT;
        v->s = it->v.bytes.len ? (const char *)it->v.bytes.ptr : "";
        v->n = it->v.bytes.len;
        return 0;
    case TTLV_DATE_TIME:
        rc = put_date(sc, it->v.i64);
        fval_text(v, sc);
        return rc;
    default:
        return KMS_ERR_INVAL;
    }
}

/* --------------------------------------------------------------- parse */
static int set_bytes(ttlv_item_t *it, kms_arena_t *a, const char *s, size_t n, bool big, const char **why)
{
    uint8_t *b;
    size_t len;
    if (big && n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2, n -= 2;
    int rc = ttlv_form_hexbytes(a, s, n, &b, &len);
    if (rc == KMS_ERR_PROTO)
        *why = big ? "bad Big Integer (want hex digits in pairs)"
                   : "bad Byte String (want hex digits in pairs, no 0x)";
    if (rc)
        return rc;
    if (big && (rc = ttlv_bigint_blocks(a, &b, &len)) != 0)
        return rc;
    it->v.bytes.ptr = b;
    it->v.bytes.len = len;
    return 0;
}

static int set_text(ttlv_item_t *it, kms_arena_t *a, const char *s, size_t n, const char **why)
{
    if (ttlv_utf8_check((const uint8_t *)s, n) != n) {
        *why = "Text String is not UTF-8 or holds NUL";
        return KMS_ERR_PROTO;
    }
    char *c = kms_arena_strndup(a, s, n);
    if (!c)
        return KMS_ERR_NOMEM;
    it->v.bytes.ptr = (const uint8_t *)c;
    it->v.bytes.len = n;
    return 0;
}

/* A 32-bit field from a JSON number in [min, max], "0x" + 1..8 hex digits
 * (two's complement when min < 0), or decimal text when `decimal`. */
static bool num32(const struct ttlv_fval *v, bool decimal, int64_t min, int64_t max, int64_t *out)
{
    uint64_t u;
    if (v->kind == TTLV_FVAL_INT) {
        if (v->i < min || v->i > max)
            return false;
        *out = v->i;
        return true;
    }
    if (v->kind != TTLV_FVAL_TEXT)
        return false;
    if (ttlv_form_hexnum(v->s, v->n, 8, &u)) {
        *out = min < 0 ? (int32_t)(uint32_t)u : (int64_t)u;
        return true;
    }
    return decimal && ttlv_form_decnum(v->s, v->n, min, max, out);
}

int ttlv_fval_parse(ttlv_item_t *it, enum ttlv_form f, const struct ttlv_fval *v, kms_arena_t *a,
                    const char **why)
{
    uint32_t ntag = ttlv_naming_tag(it);
    uint64_t u;
    int64_t x;
    uint32_t m32;
    bool text = v->kind == TTLV_FVAL_TEXT;
    char name[TTLV_NORM_MAX];
    *why = "bad value";
    switch (it->type) {
    case TTLV_INTEGER:
        if (num32(v, f == TTLV_FORM_XML, INT32_MIN, INT32_MAX, &x)) {
            it->v.i32 = (int32_t)x;
            return 0;
        }
        if (text && is_mask_tag(ntag) && parse_mask(ntag, v->s, v->n, f, &m32, why)) {
            it->v.i32 = (int32_t)m32;
            return 0;
        }
        if (!text)
            *why = "Integer out of range (32 bits, signed)";
        else if (!is_mask_tag(ntag))
            *why = "bad Integer (want a number or 0x + 8 hex digits)";
        return KMS_ERR_PROTO;
    case TTLV_INTERVAL:
        if (num32(v, f == TTLV_FORM_XML, 0, UINT32_MAX, &x)) {
            it->v.i32 = (int32_t)(uint32_t)x;
            return 0;
        }
        *why = "bad Interval (want 0..4294967295 seconds or 0x + 8 hex digits)";
        return KMS_ERR_PROTO;
    case TTLV_LONG_INTEGER:
        if (v->kind == TTLV_FVAL_INT) {
            it->v.i64 = v->i;
            return 0;
        }
        if (text && ttlv_form_hexnum(v->s, v->n, 16, &u)) {
            it->v.i64 = (int64_t)u;
            return 0;
        }
        if (text && f == TTLV_FORM_XML && ttlv_form_decnum(v->s, v->n, INT64_MIN, INT64_MAX, &x)) {
            it->v.i64 = x;
            return 0;
        }
        *why = "bad Long Integer (want a number or 0x + 16 hex digits)";
        return KMS_ERR_PROTO;
    case TTLV_ENUMERATION:
        /* no decimal text: "00000010" would be read as ten where hex was meant */
        if (num32(v, false, 0, UINT32_MAX, &x)) {
            it->v.i32 = (int32_t)(uint32_t)x;
            return 0;
        }
        if (text && v->n < sizeof(name)) {
            memcpy(name, v->s, v->n);
            name[v->n] = 0;
            uint32_t ev;
            if (ttlv_enum_by_norm(ntag, name, &ev) == 0) {
                it->v.i32 = (int32_t)ev;
                return 0;
            }
        }
        *why = text ? "unknown enumeration name for this tag (or want 0x + 8 hex digits)"
                    : "Enumeration out of range (0..4294967295)";
        return KMS_ERR_PROTO;
    case TTLV_BOOLEAN:
        if (v->kind == TTLV_FVAL_BOOL) {
            it->v.b = v->b;
            return 0;
        }
        if (text && ttlv_form_hexnum(v->s, v->n, 16, &u) && u <= 1) {
            it->v.b = u == 1;
            return 0;
        }
        if (text && f == TTLV_FORM_XML && ((v->n == 4 && memcmp(v->s, "true", 4) == 0) ||
                                           (v->n == 1 && v->s[0] == '1'))) {
            it->v.b = true;
            return 0;
        }
        if (text && f == TTLV_FORM_XML && ((v->n == 5 && memcmp(v->s, "false", 5) == 0) ||
                                           (v->n == 1 && v->s[0] == '0'))) {
            it->v.b = false;
            return 0;
        }
        *why = "bad Boolean (want true or false)";
        return KMS_ERR_PROTO;
    case TTLV_BIG_INTEGER:
        if (v->kind == TTLV_FVAL_INT) {
            uint8_t *b = kms_arena_alloc(a, 9);
            if (!b)
                return KMS_ERR_NOMEM;
            kms_put_be64(b, (uint64_t)v->i);
            it->v.bytes.ptr = b;
            it->v.bytes.len = 8;
            return 0;
        }
        if (text)
            return set_bytes(it, a, v->s, v->n, true, why);
        *why = "bad Big Integer (want hex or a number)";
        return KMS_ERR_PROTO;
    case TTLV_BYTE_STRING:
        if (text)
            return set_bytes(it, a, v->s, v->n, false, why);
        *why = "bad Byte String (want a string of hex digits)";
        return KMS_ERR_PROTO;
    case TTLV_TEXT_STRING:
        if (text)
            return set_text(it, a, v->s, v->n, why);
        *why = "a Text String takes a string";
        return KMS_ERR_PROTO;
    case TTLV_DATE_TIME:
        if (text && ttlv_form_hexnum(v->s, v->n, 16, &u)) {
            it->v.i64 = (int64_t)u;
            return 0;
        }
        if (text && parse_date(v->s, v->n, &it->v.i64, why))
            return 0;
        if (!text)
            *why = "a Date-Time takes an ISO 8601 string";
        return KMS_ERR_PROTO;
    default:
        *why = "invalid type";
        return KMS_ERR_PROTO;
    }
}

/* ---------------------------------------------------------------- paths */
void ttlv_form_path(const ttlv_item_t *it, char *buf, size_t n)
{
    const ttlv_item_t *chain[TTLV_HARD_MAX_DEPTH + 1];
    size_t k = 0, o = 0;
    char nb[TTLV_NORM_MAX];
    for (; it && k < KMS_ARRAY_SIZE(chain); it = it->parent)
        chain[k++] = it;
    if (n == 0)
        return;
    buf[0] = 0;
    while (k-- > 0 && o + 1 < n) {
        const char *name = ttlv_tag_norm(chain[k]->tag, nb);
        int w = name ? snprintf(buf + o, n - o, "%s%s", o ? "/" : "", name)
                     : snprintf(buf + o, n - o, "%s0x%06X", o ? "/" : "", (unsigned)chain[k]->tag);
        if (w < 0)
            break;
        o += (size_t)w < n - o ? (size_t)w : n - o - 1;
    }
}

int ttlv_form_fail(kms_error_t *err, int code, const char *form, size_t offset,
                   const ttlv_item_t *it, const char *what)
{
    char path[200];
    ttlv_form_path(it, path, sizeof(path));
    if (!path[0])
        return kms_error_set_at(err, code, offset, "%s: %s", form, what);
    return kms_error_set_at(err, code, offset, "%s %s: %s", form, path, what);
}

/* ----------------------------------------------------------- allocation */
/* Blocks from plain malloc, wiped (to their usable size) before free, so
 * that no copy of a parsed key lingers in freed heap memory. */
void *ttlv_form_malloc(size_t n) { return malloc(n); }

void ttlv_form_free(void *p)
{
    if (!p)
        return;
    kms_wipe(p, malloc_usable_size(p));
    free(p);
}

void *ttlv_form_realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (n == 0) {
        ttlv_form_free(p);
        return NULL;
    }
    size_t old = malloc_usable_size(p);
    void *q = malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    ttlv_form_free(p);
    return q;
}
