/* common/hex.c: hex encoding for test vectors, the printer and kmsctl. */
#include "common/kms.h"

#include <stdlib.h>

void kms_hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int kms_hex_decode(const char *s, size_t slen, uint8_t **out, size_t *len_out)
{
    uint8_t *buf = malloc(slen / 2 + 1);
    size_t n = 0;
    int hi = -1;
    if (!buf)
        return KMS_ERR_NOMEM;
    for (size_t i = 0; i < slen; i++) {
        char c = s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        int v = hexval(c);
        if (v < 0)
            goto bad;
        if (hi < 0) {
            hi = v;
        } else {
            buf[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    if (hi >= 0)
        goto bad;
    *out = buf;
    *len_out = n;
    return 0;
bad:
    free(buf);
    return KMS_ERR_PROTO;
}
