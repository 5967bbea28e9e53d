/*
 * crypto/keywrap.c: AES Key Wrap (RFC 3394) and AES Key Wrap with Padding
 * (RFC 5649) through OpenSSL's EVP wrap ciphers.
 *
 * Only the primitive: which key wraps which is kmip/'s decision, and the
 * Key Wrapping Data structure around the result is built in
 * keyformat_build.c and read in keyformat_parse.c. No other wrapping
 * methods (MAC/sign, TR-31) are implemented.
 */
#include <limits.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto/crypto_int.h"

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

int crypto_aes_wrap(const uint8_t *kek, size_t kek_len, bool pad, const uint8_t *in, size_t in_len,
                    kms_buf_t *wrapped_out, kms_error_t *err)
{
    size_t n = 0;
    int rc;

    if (!wrap_cipher(kek_len, pad))
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "a wrapping key must be 16, 24 or 32 bytes");
    /* RFC 3394 needs at least two 64-bit blocks; RFC 5649 at least one byte. */
    if ((!pad && (in_len < 16 || in_len % 8 != 0)) || (pad && in_len == 0))
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    pad ? "nothing to wrap"
                                        : "NIST Key Wrap needs a multiple of 8 bytes, at "
                                          "least 16");
    if (in_len > INT_MAX - 16)
        return kms_error_set_reason(err, KMS_ERR_LIMIT, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "too much data to wrap");
    rc = kms_buf_reserve(wrapped_out, in_len + 16);
    if (rc < 0)
        return kms_error_set(err, rc, "no room for the wrapped key");
    rc = wrap_run(kek, kek_len, pad, 1, in, in_len, wrapped_out->data + wrapped_out->len, &n);
    if (rc < 0)
        return kms_error_set_reason(
            err, rc, rc == KMS_ERR_CRYPTO ? KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE : 0,
            "key wrapping failed");
    wrapped_out->len += n;
    return 0;
}

int crypto_aes_unwrap(const uint8_t *kek, size_t kek_len, bool pad, const uint8_t *in,
                      size_t in_len, kms_secret_t **plain_out, kms_error_t *err)
{
    kms_secret_t *s = NULL;
    size_t n = 0;
    int rc;

    *plain_out = NULL;
    if (!wrap_cipher(kek_len, pad))
        return kms_error_set_reason(err, KMS_ERR_INVAL, KMIP_RESULT_REASON_INVALID_FIELD,
                                    "a wrapping key must be 16, 24 or 32 bytes");
    if (in_len < 16 || in_len % 8 != 0 || in_len > INT_MAX - 16)
        return kms_error_set_reason(err, KMS_ERR_CRYPTO, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                                    "wrapped data of %zu bytes cannot be AES key wrap output",
                                    in_len);
    s = kms_secret_new(in_len + 16);
    if (!s)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL);
    rc = wrap_run(kek, kek_len, pad, 0, in, in_len, s->data, &n);
    if (rc < 0) {
        kms_secret_free(s);
        return kms_error_set_reason(err, KMS_ERR_CRYPTO, KMIP_RESULT_REASON_CRYPTOGRAPHIC_FAILURE,
                                    "unwrapping failed (wrong key or corrupted data)");
    }
    /* Copy to an exact-size secret: kms_secret_free wipes only `len`. */
    *plain_out = kms_secret_dup(s->data, n);
    kms_secret_free(s);
    return *plain_out ? 0 : kms_error_set(err, KMS_ERR_NOMEM, NULL);
}
