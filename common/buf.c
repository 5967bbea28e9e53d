/*
 * common/buf.c: growable byte buffers with a hard cap, and bounded readers.
 * Size arithmetic is checked for overflow before anything is allocated.
 */
#include "common/kms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kms_buf_init(kms_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : SIZE_MAX / 2;
}

void kms_buf_dispose(kms_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void kms_buf_dispose_wipe(kms_buf_t *b)
{
    if (b->data)
        kms_wipe(b->data, b->cap);
    kms_buf_dispose(b);
}

void kms_buf_reset(kms_buf_t *b) { b->len = 0; }

int kms_buf_reserve(kms_buf_t *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return KMS_ERR_LIMIT;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > b->max)
        ncap = b->max;
    uint8_t *p = realloc(b->data, ncap);
    if (!p)
        return KMS_ERR_NOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int kms_buf_append(kms_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = kms_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int kms_buf_append_byte(kms_buf_t *b, uint8_t v) { return kms_buf_append(b, &v, 1); }

int kms_buf_append_u32be(kms_buf_t *b, uint32_t v)
{
    uint8_t t[4];
    kms_put_be32(t, v);
    return kms_buf_append(b, t, 4);
}

int kms_buf_append_u64be(kms_buf_t *b, uint64_t v)
{
    uint8_t t[8];
    kms_put_be64(t, v);
    return kms_buf_append(b, t, 8);
}

int kms_buf_printf(kms_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return KMS_ERR_INVAL;
    int rc = kms_buf_reserve(b, (size_t)n + 1);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void kms_buf_consume(kms_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

uint8_t *kms_buf_take(kms_buf_t *b, size_t *len_out)
{
    uint8_t *p = b->data;
    if (len_out)
        *len_out = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void kms_reader_init(kms_reader_t *r, const uint8_t *data, size_t len)
{
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->base = 0;
}

int kms_reader_bytes(kms_reader_t *r, size_t n, const uint8_t **out)
{
    if (n > kms_reader_left(r))
        return KMS_ERR_PROTO;
    *out = r->data + r->pos;
    r->pos += n;
    return 0;
}

int kms_reader_skip(kms_reader_t *r, size_t n)
{
    const uint8_t *p;
    return kms_reader_bytes(r, n, &p);
}

int kms_reader_u8(kms_reader_t *r, uint8_t *out)
{
    const uint8_t *p;
    int rc = kms_reader_bytes(r, 1, &p);
    if (rc == 0)
        *out = p[0];
    return rc;
}

int kms_reader_u32be(kms_reader_t *r, uint32_t *out)
{
    const uint8_t *p;
    int rc = kms_reader_bytes(r, 4, &p);
    if (rc == 0)
        *out = kms_be32(p);
    return rc;
}

int kms_reader_u64be(kms_reader_t *r, uint64_t *out)
{
    const uint8_t *p;
    int rc = kms_reader_bytes(r, 8, &p);
    if (rc == 0)
        *out = kms_be64(p);
    return rc;
}

int kms_reader_sub(kms_reader_t *r, size_t n, kms_reader_t *sub_out)
{
    const uint8_t *p;
    size_t off = kms_reader_offset(r);
    int rc = kms_reader_bytes(r, n, &p);
    if (rc)
        return rc;
    sub_out->data = p;
    sub_out->len = n;
    sub_out->pos = 0;
    sub_out->base = off;
    return 0;
}

size_t kms_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);
    if (size) {
        size_t k = n < size ? n : size - 1;
        memcpy(dst, src, k);
        dst[k] = '\0';
    }
    return n;
}
