/*
 * kmip/keywrap.c: AES Key Wrap (RFC 3394) and AES Key Wrap with Padding
 * (RFC 5649) through OpenSSL's EVP wrap ciphers.
 *
 * Only the primitive: which key wraps which, and the Key Wrapping Data
 * structure around the result, are in keyformat_build.c. No other wrapping
 * methods (MAC/sign, TR-31) are implemented.
 */
#include <limits.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "kmip/kmip_crypto.h"

static const EVP_CIPHER *wrap_cipher(size_t kek_len, bool pad)
{
    switch (kek_len) {
    case 16: return pad ? EVP_aes_128_wrap_pad() : EVP_aes_128_wrap();
    case 24: return pad ? EVP_aes_192_wrap_pad() : EVP_aes_192_wrap();
    case 32: return pad ? EVP_aes_256_wrap_pad() : EVP_aes_256_wrap();
    default: return NULL;
    }
}

/* One pass of the wrap cipher over `in` into `out` (room for in_len + 16). */
static int wrap_run(const uint8_t *kek, size_t kek_len, bool pad, int enc, const uint8_t *in,
                    size_t in_len, uint8_t *out, size_t *out_len)
{
    const EVP_CIPHER *c = wrap_cipher(kek_len, pad);
    EVP_CIPHER_CTX *ctx = NULL;
    int n = 0, fin = 0, rc = KMS_ERR_CRYPTO;

    if (!c)
        return KMS_ERR_INVAL;
    if (in_len > INT_MAX - 16)
        return KMS_ERR_LIMIT;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return KMS_ERR_NOMEM;
    EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_CipherInit_ex(ctx, c, NULL, kek, NULL, enc) != 1)
        goto out;
    if (EVP_CipherUpdate(ctx, out, &n, in, (int)in_len) != 1 || n < 0)
        goto out;
    if (EVP_CipherFinal_ex(ctx, out + n, &fin) != 1)
        goto out;
    *out_len = (size_t)n + (size_t)fin;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int kmip_crypto_aes_wrap(const uint8_t *kek, size_t kek_len, bool pad, const uint8_t *in,
                         size_t in_len, kms_buf_t *out)
{
    size_t n = 0;
    int rc;

    if (!wrap_cipher(kek_len, pad))
        return KMS_ERR_INVAL;
    /* RFC 3394 needs at least two 64-bit blocks; RFC 5649 at least one byte. */
    if ((!pad && (in_len < 16 || in_len % 8 != 0)) || (pad && in_len == 0))
        return KMS_ERR_INVAL;
    if (in_len > INT_MAX - 16)
        return KMS_ERR_LIMIT;
    rc = kms_buf_reserve(out, in_len + 16);
    if (rc < 0)
        return rc;
    rc = wrap_run(kek, kek_len, pad, 1, in, in_len, out->data + out->len, &n);
    if (rc < 0)
        return rc;
    out->len += n;
    return 0;
}

int kmip_crypto_aes_unwrap(const uint8_t *kek, size_t kek_len, bool pad, const uint8_t *in,
                           size_t in_len, kms_secret_t **out)
{
    kms_secret_t *s = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    if (!wrap_cipher(kek_len, pad))
        return KMS_ERR_INVAL;
    if (in_len < 16 || in_len % 8 != 0)
        return KMS_ERR_CRYPTO;
    if (in_len > INT_MAX - 16)
        return KMS_ERR_LIMIT;
    s = kms_secret_new(in_len + 16);
    if (!s)
        return KMS_ERR_NOMEM;
    rc = wrap_run(kek, kek_len, pad, 0, in, in_len, s->data, &n);
    if (rc < 0) {
        kms_secret_free(s);
        return KMS_ERR_CRYPTO;
    }
    /* Copy to an exact-size secret: kms_secret_free wipes only `len`. */
    *out = kms_secret_dup(s->data, n);
    kms_secret_free(s);
    return *out ? 0 : KMS_ERR_NOMEM;
}
